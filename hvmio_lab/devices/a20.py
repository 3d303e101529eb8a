"""System control port A (0x92): fast A20 and fast reset."""

from __future__ import annotations

from ..errors import DeviceError
from .bus import Location


class SystemControlA:
    """Port 0x92, "System Control Port A" (Intel 82371SB PIIX3 datasheet 290550, port 92h).

    Bit 1 gates address line A20; bit 0, written 1, requests a fast CPU reset (the model notes
    it in ``reset_requested``; nothing resets). The A20 bit is state only: guest memory here
    never wraps at 1 MiB, which is what an enabled A20 looks like, so a guest that turns A20
    off is not modelled (SeaBIOS only turns it on).

    Location: the device model. Xen leaves port 0x92 to QEMU (hw/i386/port92 in QEMU's PC
    machine); KVM does too. Byte accesses only.
    """

    location: Location = "device-model"
    name = "port92"
    ports = range(0x92, 0x93)

    def __init__(self) -> None:
        self.value = 0x00
        self.reset_requested = False

    @property
    def a20(self) -> bool:
        return bool(self.value & 0x02)

    def read(self, port: int, size: int) -> int:
        self._check(size)
        return self.value

    def write(self, port: int, size: int, value: int) -> None:
        self._check(size)
        self.value = value & 0x02
        if value & 0x01:
            self.reset_requested = True

    @staticmethod
    def _check(size: int) -> None:
        if size != 1:
            raise DeviceError(f"port 0x92 is 8 bits wide; refused a {size}-byte access")
