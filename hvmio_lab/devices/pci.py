"""PCI configuration mechanism #1 (ports 0xCF8/0xCFC) and the i440FX/PIIX3 functions behind it."""

from __future__ import annotations

from ..errors import DeviceError
from .bus import Location, ones

ENABLE = 1 << 31
# QEMU's subsystem IDs on its PCI devices (Red Hat / "QEMU"); SeaBIOS takes a host bridge
# carrying them as proof it runs on QEMU.
QEMU_SUBSYSTEM = (0x1AF4, 0x1100)


class PciFunction:
    """One function's 256-byte configuration space and which of its bits software may write.

    The header layout is the PCI Local Bus Specification 3.0 §6.1 type-0 header. Bits outside
    ``writable`` (IDs, class code, unimplemented BARs) keep their value, so BAR sizing reads
    back 0: no BAR is implemented by these functions.
    """

    def __init__(self, vendor: int, device: int, class_code: int, revision: int = 0,
                 header_type: int = 0x00, writable: range = range(0x40, 0x100)):  # fmt: skip
        self.space = bytearray(256)
        self.mask = bytearray(256)
        self.space[0:4] = (vendor | device << 16).to_bytes(4, "little")
        self.space[8:12] = (revision | class_code << 8).to_bytes(4, "little")
        self.space[0x0E] = header_type
        self.space[0x2C:0x30] = (QEMU_SUBSYSTEM[0] | QEMU_SUBSYSTEM[1] << 16).to_bytes(4, "little")
        self.mask[0x04:0x06] = b"\x07\x01"  # command: I/O, memory, bus master; SERR#
        self.mask[0x0C] = self.mask[0x0D] = 0xFF  # cache line size, latency timer
        self.mask[0x3C] = 0xFF  # interrupt line: firmware's note to the OS
        for offset in writable:
            self.mask[offset] = 0xFF

    def read(self, offset: int, size: int) -> int:
        return int.from_bytes(self.space[offset : offset + size], "little")

    def write(self, offset: int, size: int, value: int) -> None:
        for i in range(size):
            byte, mask = (value >> 8 * i) & 0xFF, self.mask[offset + i]
            self.space[offset + i] = (self.space[offset + i] & ~mask) | (byte & mask)


def i440fx_host_bridge() -> PciFunction:
    """Intel 82441FX PMC, the i440FX host bridge (Intel datasheet 290549): 8086:1237, class
    060000. Registers 50h–FFh (PAM 59h–5Fh, SMRAM 72h…) are writable storage.

    The PAM registers come up saying what the model does: the BIOS area 0xC0000–0xFFFFF is
    read/write RAM holding the image from power-on (PAM0 30h, PAM1–6 33h). QEMU resets them
    to 00h (reads go to the ROM), and SeaBIOS then copies itself into RAM running from the
    flash alias below 4 GiB; here it finds the copy already made and stays in low memory."""
    function = PciFunction(0x8086, 0x1237, 0x060000, revision=0x02)
    function.space[0x59:0x60] = b"\x30" + b"\x33" * 6
    return function


def piix3_isa_bridge() -> PciFunction:
    """Intel 82371SB PIIX3 function 0, the PCI-to-ISA bridge (datasheet 290550): 8086:7000,
    class 060100, multi-function. PIRQ route control 60h–63h resets to 80h (routing off)."""
    function = PciFunction(0x8086, 0x7000, 0x060100, header_type=0x80)
    function.space[0x60:0x64] = b"\x80\x80\x80\x80"
    return function


def piix3_ide() -> PciFunction:
    """PIIX3 function 1, the IDE controller: 8086:7010, class 010180 (programming interface
    80h: both channels in compatibility mode at 1F0h/170h, bus mastering capable). The
    bus-master BAR (BAR4) is not implemented, so firmware drives the disk by PIO."""
    return PciFunction(0x8086, 0x7010, 0x010180)


class PciConfig:
    """PCI configuration mechanism #1 (PCI Local Bus Specification 3.0 §3.2.2.3.2).

    CONFIG_ADDRESS at 0xCF8 is a 32-bit register: bit 31 enable, bus 23:16, device 15:11,
    function 10:8, register 7:2. CONFIG_DATA at 0xCFC–0xCFF reads or writes that register's
    bytes (an access at 0xCFC + n reaches byte n). A function that is not there reads all ones
    (master abort) and ignores writes, so a scan sees vendor ID FFFFh. Byte or word accesses
    to 0xCF8–0xCFB are not CONFIG_ADDRESS (the spec passes them on as ordinary I/O): they read
    all ones and are dropped. A data access that runs past 0xCFF is refused.

    Bus 0 holds the i440FX machine QEMU emulates: 00.0 the host bridge, 01.0 the PIIX3 ISA
    bridge and 01.1 its IDE function.

    Location: the device model. QEMU emulates the configuration space (hw/pci-host/i440fx.c);
    Xen intercepts 0xCF8 in the hypervisor only to route each access to the right device
    model (its ioreq servers), and hands the access itself to QEMU.
    """

    location: Location = "device-model"
    name = "pci"
    ports = range(0xCF8, 0xD00)

    def __init__(self) -> None:
        self.address = 0
        self.functions: dict[tuple[int, int, int], PciFunction] = {
            (0, 0, 0): i440fx_host_bridge(),
            (0, 1, 0): piix3_isa_bridge(),
            (0, 1, 1): piix3_ide(),
        }

    def selected(self) -> tuple[PciFunction | None, int]:
        """The function CONFIG_ADDRESS points at (None if disabled or absent), and its register."""
        address = self.address
        if not address & ENABLE:
            return None, 0
        key = ((address >> 16) & 0xFF, (address >> 11) & 0x1F, (address >> 8) & 0x7)
        return self.functions.get(key), address & 0xFC

    def read(self, port: int, size: int) -> int:
        self._check(port, size)
        if port < 0xCFC:
            return self.address if size == 4 else ones(size)
        function, register = self.selected()
        if function is None:
            return ones(size)
        return function.read(register + port - 0xCFC, size)

    def write(self, port: int, size: int, value: int) -> None:
        self._check(port, size)
        if port < 0xCFC:
            if size == 4:
                self.address = value & 0x80FF_FFFC
            return
        function, register = self.selected()
        if function is not None:
            function.write(register + port - 0xCFC, size, value)

    @staticmethod
    def _check(port: int, size: int) -> None:
        window = 0xCF8 if port < 0xCFC else 0xCFC
        if size not in (1, 2, 4) or port + size > window + 4:
            raise DeviceError(
                f"a {size}-byte access at {port:#x} runs past the 4-byte window at {window:#x}"
            )
