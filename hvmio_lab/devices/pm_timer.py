"""The ACPI power-management timer."""

from __future__ import annotations

from .bus import Clock, Location, ones

_HZ = 3_579_545  # PmTimer.FREQUENCY_HZ, read once per access: a module constant is quicker


class PmTimer:
    """ACPI power-management timer: a free-running 32-bit counter at 3.579545 MHz.

    ACPI 6.5 §4.8.3.3 (PM_TMR, TMR_VAL_EXT = 1 for 32 bits). Port 0x1F48 as in Xen's ACPI
    layout V0 of 2010, the seed's (PM1a block at 0x1F40); Xen's V1 (since late 2010) and QEMU's
    PIIX4 put it at 0xB008. Driven by the machine's virtual clock. Reads of other than 4 bytes
    return all ones, as Xen's handler has done since it stopped leaving the value unwritten
    (c9e57594e1, 2015, XSA-121); writes are ignored (the register is read-only).
    """

    FREQUENCY_HZ = _HZ
    location: Location = "hypervisor"
    name = "pm-timer"

    def __init__(self, clock: Clock, port: int = 0x1F48):
        self.clock = clock
        self.port = port

    @property
    def ports(self) -> range:
        return range(self.port, self.port + 4)

    def count(self) -> int:
        """The counter now: whole periods of the virtual clock, modulo 2^32."""
        return self.read(self.port, 4)

    def read(self, port: int, size: int) -> int:
        if size != 4 or port != self.port:
            return ones(size)
        return (self.clock.ns * _HZ // 1_000_000_000) & 0xFFFF_FFFF

    def write(self, port: int, size: int, value: int) -> None:
        """Read-only register: writes have no effect."""
