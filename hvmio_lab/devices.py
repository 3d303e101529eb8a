"""The I/O bus and the port devices a PC guest expects.

A device is any object with ``read(port, size) -> int``, ``write(port, size, value)`` and a
``location``: ``"hypervisor"`` (handled in the hypervisor, like Xen's PM timer) or
``"device-model"`` (an external process, like qemu-dm's IDE disk, reached by a request and a
later completion). A device that cannot serve an access raises ``DeviceError`` before it
changes any of its state.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol

from .errors import BusError, DeviceError

if TYPE_CHECKING:
    from .machine import Machine, VirtualClock

Location = Literal["hypervisor", "device-model"]
DATA = Path(__file__).resolve().parent.parent / "data"


class Device(Protocol):
    location: Location

    def read(self, port: int, size: int) -> int: ...
    def write(self, port: int, size: int, value: int) -> None: ...


def ones(size: int) -> int:
    """All ones for an access of ``size`` bytes: what a read from nowhere returns (master abort)."""
    return (1 << (8 * size)) - 1


class BusEvent(NamedTuple):
    """One port access as the bus saw it. A NamedTuple: the log takes one per access."""

    port: int
    size: int
    is_in: bool
    value: int
    device: str  # the device's name, or "unclaimed"
    location: str

    def __str__(self) -> str:
        arrow = "→" if self.is_in else "←"
        verb = "IN " if self.is_in else "OUT"
        value = f"{self.value:#0{2 + 2 * self.size}x}"
        where = f"({self.device}, {self.location})"
        return f"{verb} {self.port:#06x}/{self.size} {arrow} {value}  {where}"


def device_name(device: object) -> str:
    return getattr(device, "name", type(device).__name__)


class Bus:
    """Routes port accesses to devices by the first port of the access.

    Unclaimed ports read as all ones and drop writes (Xen's null handler; a PCI master abort),
    and every such access is logged. Claimed accesses are logged while ``recording`` is on.
    """

    def __init__(self) -> None:
        self._ports: dict[int, Device] = {}
        self._ranges: list[tuple[range, Device]] = []
        self.log: list[BusEvent] = []
        self.recording = True

    def attach(self, ports: range, device: Device) -> None:
        if not isinstance(ports, range) or ports.step != 1 or not ports:
            raise BusError(f"ports must be a non-empty range with step 1, got {ports!r}")
        if ports.start < 0 or ports.stop > 0x10000:
            raise BusError(
                f"ports must lie in 0..0xffff, got {ports.start:#x}..{ports.stop - 1:#x}"
            )
        for name in ("read", "write"):
            if not callable(getattr(device, name, None)):
                raise BusError(f"{device_name(device)} has no {name}(port, size…) method")
        if getattr(device, "location", None) not in ("hypervisor", "device-model"):
            raise BusError(
                f"{device_name(device)} must declare location 'hypervisor' or 'device-model'"
            )
        for other_ports, other in self._ranges:
            lo, hi = max(ports.start, other_ports.start), min(ports.stop, other_ports.stop)
            if lo < hi:
                raise BusError(
                    f"ports {lo:#x}..{hi - 1:#x} of {device_name(device)} are already claimed "
                    f"by {device_name(other)} ({other_ports.start:#x}..{other_ports.stop - 1:#x})"
                )
        self._ranges.append((ports, device))
        self._ports.update(dict.fromkeys(ports, device))

    def device_at(self, port: int) -> Device | None:
        return self._ports.get(port)

    @property
    def devices(self) -> dict[str, Device]:
        return {device_name(d): d for _, d in self._ranges}

    def read(self, port: int, size: int) -> int:
        device = self._ports.get(port)
        if device is None:
            value = ones(size)
            self.log.append(BusEvent(port, size, True, value, "unclaimed", "hypervisor"))
            return value
        value = device.read(port, size) & ones(size)
        if self.recording:
            self.log.append(BusEvent(port, size, True, value, device_name(device), device.location))
        return value

    def write(self, port: int, size: int, value: int) -> None:
        value &= ones(size)
        device = self._ports.get(port)
        if device is None:
            self.log.append(BusEvent(port, size, False, value, "unclaimed", "hypervisor"))
            return
        device.write(port, size, value)
        if self.recording:
            name = device_name(device)
            self.log.append(BusEvent(port, size, False, value, name, device.location))


class PmTimer:
    """ACPI power-management timer: a free-running 32-bit counter at 3.579545 MHz.

    ACPI 6.5 §4.8.3.3 (PM_TMR, TMR_VAL_EXT = 1 for 32 bits). Port 0x1F48 as in Xen's HVM ACPI
    layout (PM1a block at 0x1F40); QEMU's PIIX4 puts it at 0xB008. Driven by the machine's
    virtual clock. Reads of other than 4 bytes return all ones, as Xen's handler has done
    since it stopped leaving the value unwritten; writes are ignored (the register is
    read-only).
    """

    FREQUENCY_HZ = 3_579_545
    location: Location = "hypervisor"
    name = "pm-timer"

    def __init__(self, clock: VirtualClock, port: int = 0x1F48):
        self.clock = clock
        self.port = port

    @property
    def ports(self) -> range:
        return range(self.port, self.port + 4)

    def count(self) -> int:
        return (self.clock.ns * self.FREQUENCY_HZ // 1_000_000_000) & 0xFFFF_FFFF

    def read(self, port: int, size: int) -> int:
        if size != 4 or port != self.port:
            return ones(size)
        return self.count()

    def write(self, port: int, size: int, value: int) -> None:
        """Read-only register: writes have no effect."""


class Uart16550:
    """A 16550 UART (PC16550D datasheet, Table II register map), DLAB = 0 view plus divisor.

    THR writes append to ``output``; RBR reads consume ``input`` one byte at a time (the
    side-effecting read that must never be replayed). LSR reports data ready (bit 0) and an
    always-empty transmitter (THRE bit 5, TEMT bit 6): like QEMU's emulated UART, the model
    transmits instantly, so LSR idles at 0x60. Registers are 8 bits wide: wider accesses are
    refused with DeviceError.
    """

    location: Location = "device-model"
    name = "uart"
    LSR_DR, LSR_THRE, LSR_TEMT = 0x01, 0x20, 0x40

    def __init__(self, base: int = 0x3F8, input: bytes = b""):
        self.base = base
        self.input: deque[int] = deque(input)
        self.output = bytearray()
        self.regs = {1: 0, 3: 0, 4: 0, 7: 0}  # IER, LCR, MCR, SCR
        self.divisor = 12  # 9600 baud from the 1.8432 MHz crystal

    @property
    def ports(self) -> range:
        return range(self.base, self.base + 8)

    @property
    def text(self) -> str:
        return self.output.decode("latin-1")

    def feed(self, data: bytes) -> None:
        self.input.extend(data)

    def _check(self, port: int, size: int) -> int:
        if size != 1:
            raise DeviceError(
                f"16550 registers are 8 bits wide; refused a {size}-byte access to {port:#x}"
            )
        return port - self.base

    def _dlab(self) -> bool:
        return bool(self.regs[3] & 0x80)

    def read(self, port: int, size: int) -> int:
        offset = self._check(port, size)
        if offset in (0, 1) and self._dlab():
            return (self.divisor >> (8 * offset)) & 0xFF
        if offset == 0:
            return self.input.popleft() if self.input else 0
        if offset == 2:
            return 0x01  # IIR: no interrupt pending
        if offset == 5:
            return self.LSR_THRE | self.LSR_TEMT | (self.LSR_DR if self.input else 0)
        if offset == 6:
            return 0xB0  # MSR: DCD, DSR and CTS asserted
        return self.regs[offset]

    def write(self, port: int, size: int, value: int) -> None:
        offset = self._check(port, size)
        if offset in (0, 1) and self._dlab():
            shift = 8 * offset
            self.divisor = (self.divisor & ~(0xFF << shift)) | (value << shift)
        elif offset == 0:
            self.output.append(value)
        elif offset in self.regs:
            self.regs[offset] = value
        # FCR (2), LSR (5) and MSR (6) writes have no modelled effect


class AtaDisk:
    """ATA/IDE primary channel, master drive, PIO only (ATA/ATAPI-6, T13/1410D).

    Command block 0x1F0–0x1F7, control block 0x3F6. IDENTIFY DEVICE (0xEC, §8.15) and
    READ SECTORS (0x20, §8.34) with LBA28. After a command, and between sectors of a
    multi-sector read, the drive is busy (BSY) for ``busy_polls`` status reads, then shows
    DRQ while the 256-word block streams out of the 16-bit data port. The busy time is a model:
    real drives are busy for a time, not a count of polls. There is no device 1: while it is
    selected (Device register bit 4), status reads 00h and commands are ignored.
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
            image = (DATA / "guests" / "disk.img").read_bytes()
        if len(image) % self.SECTOR:
            raise DeviceError(f"disk image must be whole 512-byte sectors, got {len(image)} bytes")
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

    def attach_to(self, bus: Bus) -> None:
        bus.attach(range(0x1F0, 0x1F8), self)
        bus.attach(range(0x3F6, 0x3F7), self)

    def lba(self) -> int:
        low, mid, high = self.lba_bytes
        return ((self.drive & 0x0F) << 24) | (high << 16) | (mid << 8) | low

    def identify_block(self) -> bytes:
        words = [0] * 256
        words[0] = 0x0040  # fixed (non-removable) ATA device
        words[49] = 0x0200  # LBA supported
        words[60], words[61] = self.sectors & 0xFFFF, self.sectors >> 16
        for start, text, n in ((10, "HVMIO0001", 10), (23, "0.1", 4), (27, self.MODEL, 20)):
            padded = text.ljust(2 * n).encode("ascii")
            for i in range(n):  # ATA strings: first character in the high byte of each word
                words[start + i] = padded[2 * i] << 8 | padded[2 * i + 1]
        return b"".join(w.to_bytes(2, "little") for w in words)

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
        if end > len(buffer):
            return ones(size)  # a 32-bit read past the block's end
        self.pos = end
        if end == len(buffer):
            self._block_done()  # may load the next sector into self.buffer; we hold the old one
        if size == 2:  # the hot path of `rep insw`: two byte loads beat a slice + from_bytes
            return buffer[pos] | buffer[pos + 1] << 8
        return int.from_bytes(buffer[pos:end], "little")

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


class PostPort:
    """The POST/debug port 0x80: guests write progress and result codes here.

    Written bytes are kept in ``codes``; reads return all ones, as nothing latches the value.
    """

    location: Location = "hypervisor"
    name = "post"

    def __init__(self) -> None:
        self.codes: list[int] = []

    def read(self, port: int, size: int) -> int:
        return ones(size)

    def write(self, port: int, size: int, value: int) -> None:
        self.codes.append(value)


def attach_pc(
    machine: Machine,
    disk: bytes | None = None,
    uart_input: bytes = b"",
    pm_timer_port: int = 0x1F48,
) -> None:
    """Attach the standard set: PM timer, COM1 16550, primary ATA disk, POST port 0x80."""
    timer = PmTimer(machine.clock, pm_timer_port)
    machine.bus.attach(timer.ports, timer)
    uart = Uart16550(input=uart_input)
    machine.bus.attach(uart.ports, uart)
    AtaDisk(disk).attach_to(machine.bus)
    machine.bus.attach(range(0x80, 0x81), PostPort())
