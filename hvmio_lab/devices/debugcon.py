"""QEMU's debug console (port 0x402 for SeaBIOS)."""

from __future__ import annotations

from ..errors import DeviceError
from .bus import Location


class DebugConsole:
    """The QEMU debug console ("isa-debugcon", QEMU docs: hw/char/debugcon, ``-debugcon``).

    Every byte written is console output; a read returns the readback value 0xE9 (the Bochs
    port-E9 hack's number), which is how SeaBIOS decides the port is there before it prints.
    SeaBIOS built for QEMU writes its log to port 0x402.

    Location: the device model (QEMU emulates it; Xen has its own port-0xE9 console in the
    hypervisor, but SeaBIOS's 0x402 goes to QEMU). Byte accesses only.
    """

    location: Location = "device-model"
    name = "debugcon"
    READBACK = 0xE9

    def __init__(self, port: int = 0x402):
        self.port = port
        self.output = bytearray()

    @property
    def ports(self) -> range:
        return range(self.port, self.port + 1)

    @property
    def text(self) -> str:
        return self.output.decode("latin-1")

    def read(self, port: int, size: int) -> int:
        self._check(size)
        return self.READBACK

    def write(self, port: int, size: int, value: int) -> None:
        self._check(size)
        self.output.append(value)

    def _check(self, size: int) -> None:
        if size != 1:
            raise DeviceError(
                f"the debug console {self.port:#x} is 8 bits wide; refused a {size}-byte access"
            )
