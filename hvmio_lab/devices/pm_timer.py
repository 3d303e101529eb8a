"""The ACPI power-management timer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .bus import Location, ones

if TYPE_CHECKING:
    from ..machine import VirtualClock


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
