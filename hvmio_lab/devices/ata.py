"""The ATA/IDE primary channel (PIO)."""

from __future__ import annotations

from .. import resources
from ..errors import DeviceError
from .bus import Bus, Location, ones

_IDENTIFY: dict[tuple[type, int], bytes] = {}  # (disk class, sectors) → its IDENTIFY block


class AtaDisk:
    """ATA/IDE primary channel, master drive, PIO only (ATA/ATAPI-6, T13/1410D).

    Command block 0x1F0–0x1F7, control block 0x3F6. IDENTIFY DEVICE (0xEC, §8.15) and
    READ SECTORS (0x20, §8.34) with LBA28. After a command, and between sectors of a
    multi-sector read, the drive is busy (BSY) for ``busy_polls`` status reads, then shows
    DRQ while the 256-word block streams out of the 16-bit data port. The busy time is a model:
    real drives are busy for a time, not a count of polls. There is no device 1: while it is
    selected (Device register bit 4), status reads 00h and commands are ignored.

    A command written while BSY or DRQ is set is ignored: the host must not write the Command
    register then (ATA/ATAPI-6 §9), and QEMU's ``ide_exec_cmd`` drops such a command unless it
    is DEVICE RESET (not modelled here; SRST in Device Control is). A 32-bit data read with
    one word left takes that word (upper half all ones) and ends the block, so mixing 16- and
    32-bit reads never leaves DRQ set with nothing to read.
    """

    location: Location = "device-model"
    name = "ata"
    BSY, DRDY, DRQ, ERR = 0x80, 0x40, 0x08, 0x01
    ABRT, IDNF = 0x04, 0x10
    DEV = 0x10  # Device register bit 4: 0 = device 0 (master), 1 = device 1 (slave)
    SECTOR = 512
    MODEL = "HVMIO_LAB VIRTUAL DISK"

    def __init__(self, image: bytes | None = None, busy_polls: int = 1):
        if image is None:
            image = resources.data("guests", "disk.img").read_bytes()
        if len(image) % self.SECTOR:
            raise DeviceError(f"disk image must be whole 512-byte sectors, got {len(image)} bytes")
        if busy_polls.__class__ is not int or busy_polls < 0:
            raise DeviceError(f"busy_polls is a count of status reads ≥ 0, got {busy_polls!r}")
        self.image = bytes(image)
        self.busy_polls = busy_polls
        self.reset()

    @property
    def sectors(self) -> int:
        return len(self.image) // self.SECTOR

    def reset(self) -> None:
        # The ATA device signature after power-on or reset (§9.12): error = diagnostic code 01h
        # (passed), sector count 01h, LBA low 01h, mid and high 00h. The device register keeps
        # 0xE0 (LBA, master) rather than 00h, so a guest that never writes it still reads LBA.
        self.features = 0
        self.error = 0x01
        self.count, self.lba_bytes, self.drive = 1, [1, 0, 0], 0xE0
        self.status = self.DRDY
        self.buffer = b""
        self.pos = 0
        self.remaining = 0
        self.next_lba = 0
        self.busy_left = 0

    @property
    def claims(self) -> tuple[tuple[range, AtaDisk], ...]:
        """The command block and the control block: attached together or not at all."""
        return ((range(0x1F0, 0x1F8), self), (range(0x3F6, 0x3F7), self))

    def attach_to(self, bus: Bus) -> None:
        bus.attach_all(self.claims)

    def lba(self) -> int:
        low, mid, high = self.lba_bytes
        return ((self.drive & 0x0F) << 24) | (high << 16) | (mid << 8) | low

    def geometry(self) -> tuple[int, int, int]:
        """Default cylinders, heads, sectors per track (IDENTIFY words 1, 3, 6): up to 16 heads
        of 63 sectors, as many whole cylinders as the image fills (at least one)."""
        spt = min(self.sectors, 63) or 1
        heads = max(1, min(16, self.sectors // spt))
        return max(1, min(16383, self.sectors // (heads * spt))), heads, spt

    def identify_block(self) -> bytes:
        """The 512 bytes IDENTIFY DEVICE returns. They depend only on the size (and the class's
        strings), so they are worked out once per size, not once per disk: every guest run
        builds a fresh disk."""
        key = (type(self), self.sectors)
        block = _IDENTIFY.get(key)
        if block is None:
            block = _IDENTIFY[key] = self._build_identify()
        return block

    def _build_identify(self) -> bytes:
        """Only the words that are not zero are set, strings byte-swapped by slices: a fresh
        disk answers its first IDENTIFY in a few µs (word by word it was 50 µs, 4 % of an
        ata_read guest's run)."""
        cylinders, heads, spt = self.geometry()  # default CHS (words 1, 3, 6), for int 13h
        block = bytearray(512)
        for word, value in ((0, 0x0040),  # fixed (non-removable) ATA device
                            (1, cylinders), (3, heads), (6, spt),
                            (49, 0x0200),  # LBA supported
                            (60, self.sectors & 0xFFFF), (61, self.sectors >> 16)):  # fmt: skip
            block[2 * word : 2 * word + 2] = value.to_bytes(2, "little")
        for start, text, n in ((10, "HVMIO0001", 10), (23, "0.1", 4), (27, self.MODEL, 20)):
            padded = text.ljust(2 * n).encode("ascii")
            # ATA strings: first character in the high byte of each (little-endian) word
            block[2 * start : 2 * (start + n) : 2] = padded[1::2]
            block[2 * start + 1 : 2 * (start + n) : 2] = padded[0::2]
        return bytes(block)

    def _status_read(self) -> int:
        if self.drive & self.DEV:
            return 0x00  # device 1 is selected but absent: no status (as QEMU's IDE does)
        if self.busy_left:
            self.busy_left -= 1
            return self.BSY
        return self.status

    def read(self, port: int, size: int) -> int:
        if port == 0x1F0:
            return self._data_read(size)
        if size != 1:
            raise DeviceError(f"ATA register {port:#x} is 8 bits wide; refused a {size}-byte read")
        if port in (0x1F7, 0x3F6):
            return self._status_read()
        if port == 0x1F1:
            return self.error
        if port == 0x1F2:
            return self.count
        if port in (0x1F3, 0x1F4, 0x1F5):
            return self.lba_bytes[port - 0x1F3]
        return self.drive  # 0x1F6

    def _data_read(self, size: int) -> int:
        if size not in (2, 4):
            raise DeviceError(f"the ATA data port is 16 bits wide; refused a {size}-byte read")
        if self.busy_left or not self.status & self.DRQ:
            return ones(size)  # no data phase: the bus floats high
        pos, buffer = self.pos, self.buffer
        end = pos + size
        if end > len(buffer):  # a 32-bit read of the last word: it ends the block all the same
            end = len(buffer)
            self.pos = end
            self._block_done()
            return int.from_bytes(buffer[pos:end], "little") | ones(size) & ~0xFFFF
        self.pos = end
        if end == len(buffer):
            self._block_done()  # may load the next sector into self.buffer; we hold the old one
        if size == 2:  # the hot path of `rep insw`: two byte loads beat a slice + from_bytes
            return buffer[pos] | buffer[pos + 1] << 8
        return int.from_bytes(buffer[pos:end], "little")

    def read_many(self, port: int, size: int, n: int) -> bytes:
        """``n`` data-port reads at once (a ``rep insw`` batch), equal to ``n`` ``read`` calls."""
        if port != 0x1F0 or size not in (2, 4):
            return b"".join(self.read(port, size).to_bytes(size, "little") for _ in range(n))
        pos, buffer = self.pos, self.buffer
        end = pos + n * size
        if end <= len(buffer) and not self.busy_left and self.status & self.DRQ:
            self.pos = end  # all of them from the block being read: one slice
            if end == len(buffer):
                self._block_done()
            return buffer[pos:end]
        out = bytearray()
        while n:
            if self.busy_left or not self.status & self.DRQ:
                out += b"\xff" * (size * n)  # no data phase: every read floats high
                break
            pos, buffer = self.pos, self.buffer
            k = min(n, (len(buffer) - pos) // size)
            if k == 0:  # a 32-bit read of the last word
                out += self._data_read(size).to_bytes(size, "little")
                n -= 1
                continue
            end = pos + k * size
            out += buffer[pos:end]
            n -= k
            self.pos = end
            if end == len(buffer):
                self._block_done()
        return bytes(out)

    def _block_done(self) -> None:
        if self.remaining:
            self._load_sector()
        else:
            self.status = self.DRDY
            self.buffer, self.pos = b"", 0

    def _load_sector(self) -> None:
        start = self.next_lba * self.SECTOR
        self.buffer, self.pos = self.image[start : start + self.SECTOR], 0
        self.next_lba += 1
        self.remaining -= 1
        self.status = self.DRDY | self.DRQ
        self.busy_left = self.busy_polls

    def write(self, port: int, size: int, value: int) -> None:
        if port == 0x1F0:
            if size not in (2, 4):
                raise DeviceError(f"the ATA data port is 16 bits wide; refused a {size}-byte write")
            return  # no write command is modelled: data-port writes are ignored
        if size != 1:
            raise DeviceError(f"ATA register {port:#x} is 8 bits wide; refused a {size}-byte write")
        if port == 0x1F7:
            self._command(value)
        elif port == 0x3F6:
            if value & 0x04:  # SRST
                self.reset()
        elif port == 0x1F1:
            self.features = value
        elif port == 0x1F2:
            self.count = value
        elif port in (0x1F3, 0x1F4, 0x1F5):
            self.lba_bytes[port - 0x1F3] = value
        elif port == 0x1F6:
            self.drive = value

    def _command(self, command: int) -> None:
        if self.drive & self.DEV:
            return  # addressed to the absent device 1: the master ignores it
        if self.busy_left or self.status & self.DRQ:
            return  # BSY or DRQ: the command is not accepted (see the class docstring)
        self.error = 0
        if command == 0xEC:
            self.buffer, self.pos, self.remaining = self.identify_block(), 0, 0
            self.status, self.busy_left = self.DRDY | self.DRQ, self.busy_polls
        elif command == 0x20:
            count = self.count or 256
            lba = self.lba()
            if not self.drive & 0x40 or lba + count > self.sectors:
                self._fail(self.IDNF if self.drive & 0x40 else self.ABRT)
                return
            self.next_lba, self.remaining = lba, count
            self._load_sector()
        else:
            self._fail(self.ABRT)

    def _fail(self, error: int) -> None:
        self.error = error
        self.status = self.DRDY | self.ERR
        self.buffer, self.pos, self.remaining, self.busy_left = b"", 0, 0, 0
