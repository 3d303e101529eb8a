"""An IDE channel with no drives on it (the secondary channel, 0x170–0x177 and 0x376)."""

from __future__ import annotations

from ..errors import DeviceError
from .bus import Location, ones


class EmptyAtaChannel:
    """An ATA channel with no device 0 or 1 (ATA/ATAPI-6, T13/1410D; QEMU's IDE bus with
    nothing attached reads the same).

    Every register reads 00h: BSY clear, so a driver waiting for the channel to go idle sees
    it at once, and the Device register does not keep what was written, which is how drivers
    tell that no drive answers. A bus with nothing on it would float high (FFh, BSY set), and
    firmware would wait its full timeout; the 00h is the IDE controller's answer. The data
    port reads all ones. Writes are dropped. Registers other than data are byte-wide.

    Location: the device model (QEMU's IDE, as for the primary channel).
    """

    location: Location = "device-model"
    name = "ata-secondary"

    def __init__(self, command: int = 0x170, control: int = 0x376):
        self.command, self.control = command, control

    @property
    def claims(self) -> tuple[tuple[range, EmptyAtaChannel], ...]:
        return (range(self.command, self.command + 8), self), (
            range(self.control, self.control + 1),
            self,
        )

    def read(self, port: int, size: int) -> int:
        if port == self.command:
            return ones(size)
        self._check(port, size)
        return 0x00

    def write(self, port: int, size: int, value: int) -> None:
        if port != self.command:
            self._check(port, size)

    @staticmethod
    def _check(port: int, size: int) -> None:
        if size != 1:
            raise DeviceError(
                f"ATA register {port:#x} is 8 bits wide; refused a {size}-byte access"
            )
