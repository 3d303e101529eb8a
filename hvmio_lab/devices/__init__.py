"""The port devices a PC guest expects, one module each, and the I/O bus that routes to them.

A device is any object with ``read(port, size) -> int``, ``write(port, size, value)`` and a
``location``: ``"hypervisor"`` (handled in the hypervisor, like Xen's PM timer) or
``"device-model"`` (an external process, like qemu-dm's IDE disk, reached by a request and a
later completion). A device that cannot serve an access raises ``DeviceError`` before it
changes any of its state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .ata import AtaDisk
from .bus import Bus, BusEvent, Device, Location, device_name, ones
from .pm_timer import PmTimer
from .post import PostPort
from .uart import Uart16550

if TYPE_CHECKING:
    from ..machine import Machine

__all__ = [
    "AtaDisk",
    "Bus",
    "BusEvent",
    "Device",
    "Location",
    "PmTimer",
    "PostPort",
    "Uart16550",
    "attach_pc",
    "device_name",
    "ones",
]


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
