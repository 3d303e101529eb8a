"""The port devices a PC guest expects, one module each, and the I/O bus that routes to them.

A device is any object with ``read(port, size) -> int``, ``write(port, size, value)`` and a
``location``: ``"hypervisor"`` (handled in the hypervisor, like Xen's PM timer) or
``"device-model"`` (an external process, like qemu-dm's IDE disk, reached by a request and a
later completion). A device that cannot serve an access raises ``DeviceError`` before it
changes any of its state.
"""

from __future__ import annotations

from typing import Protocol

from .a20 import SystemControlA
from .ata import AtaDisk
from .bus import ONES, Bus, BusEvent, Clock, Device, Location, device_name, ones
from .cmos import CmosRtc
from .debugcon import DebugConsole
from .fw_cfg import FwCfg, FwCfgFile
from .i8042 import I8042
from .ide_secondary import EmptyAtaChannel
from .pci import PciConfig, PciFunction
from .pic import Pic8259
from .pit import Pit8254, PortB
from .pm_timer import PmTimer
from .post import PostPort
from .uart import Uart16550


class Board(Protocol):
    """What ``attach_pc`` needs of a machine (``machine.Machine`` is one): the devices sit
    below the machine and never import it."""

    bus: Bus
    clock: Clock

__all__ = [
    "I8042",
    "ONES",
    "AtaDisk",
    "Bus",
    "BusEvent",
    "CmosRtc",
    "DebugConsole",
    "Device",
    "EmptyAtaChannel",
    "FwCfg",
    "FwCfgFile",
    "Location",
    "PciConfig",
    "PciFunction",
    "Pic8259",
    "Pit8254",
    "PmTimer",
    "PortB",
    "PostPort",
    "SystemControlA",
    "Uart16550",
    "attach_firmware_pc",
    "attach_pc",
    "device_name",
    "ones",
]


def attach_pc(
    machine: Board,
    disk: bytes | None = None,
    uart_input: bytes = b"",
    pm_timer_port: int = 0x1F48,
) -> None:
    """Attach the standard set: PM timer, COM1 16550, primary ATA disk, POST port 0x80, all
    of them or (when a port clashes) none."""
    timer = PmTimer(machine.clock, pm_timer_port)
    uart = Uart16550(input=uart_input)
    machine.bus.attach_all((
        (timer.ports, timer), (uart.ports, uart), *AtaDisk(disk).claims,
        (range(0x80, 0x81), PostPort()),
    ))  # fmt: skip


def attach_firmware_pc(
    machine: Board,
    memory_size: int,
    disk: bytes | AtaDisk | None = None,
    uart_input: bytes = b"",
) -> None:
    """Attach what PC firmware (SeaBIOS on QEMU's i440FX machine) expects, beside the standard
    set: CMOS/RTC, port 0x92, the debug console 0x402, the PIT and port 0x61, PCI
    configuration, fw_cfg, the i8042, both PICs and an empty secondary IDE channel; all or
    none. The PM timer sits at 0xB008, QEMU's PIIX4 address (no ACPI table points firmware at
    it here). ``memory_size`` is what CMOS and fw_cfg report; ``disk`` is an image or a ready
    ``AtaDisk``."""
    clock = machine.clock
    pit = Pit8254(clock)
    timer = PmTimer(clock, 0xB008)
    uart = Uart16550(input=uart_input)
    devices = (timer, uart, CmosRtc(clock, memory_size), SystemControlA(), DebugConsole(),
               pit, PortB(pit), PciConfig(), FwCfg(memory_size), Pic8259(0x20, "pic-master"),
               Pic8259(0xA0, "pic-slave"))  # fmt: skip
    machine.bus.attach_all((
        *((d.ports, d) for d in devices), (range(0x80, 0x81), PostPort()),
        *(disk if isinstance(disk, AtaDisk) else AtaDisk(disk)).claims, *I8042().claims,
        *EmptyAtaChannel().claims,
    ))  # fmt: skip
