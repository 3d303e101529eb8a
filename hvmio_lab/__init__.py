"""hvmio_lab: how x86 hypervisors handle port-I/O VM exits, to see, touch and measure.

The core (everything importable from here) imports no Jupyter, ipywidgets or matplotlib;
``hvmio_lab.widgets``, ``hvmio_lab.plots`` and ``hvmio_lab.checks`` sit above it.
"""

from .decoder import IoInstruction, decode_instruction
from .devices import AtaDisk, Bus, BusEvent, PmTimer, PostPort, Uart16550
from .errors import (
    BusError,
    DeviceError,
    ExitInfoError,
    GuestMemoryError,
    GuestRunaway,
    HvmioError,
    InvalidInstruction,
    NotAnIoExit,
    PageFault,
)
from .exits import IoAccess, SvmIoExit, VmxIoExit
from .fields import EXIT_QUALIFICATION, EXITINFO1, INSTRUCTION_INFO, Field, Kind, Layout
from .guest import Guest, RunResult
from .hypervisor import Hypervisor
from .machine import Machine, Memory, Registers, StateDiff
from .outcome import Outcome

__all__ = [
    "EXITINFO1",
    "EXIT_QUALIFICATION",
    "INSTRUCTION_INFO",
    "AtaDisk",
    "Bus",
    "BusError",
    "BusEvent",
    "DeviceError",
    "ExitInfoError",
    "Field",
    "Guest",
    "GuestMemoryError",
    "GuestRunaway",
    "HvmioError",
    "Hypervisor",
    "InvalidInstruction",
    "IoAccess",
    "IoInstruction",
    "Kind",
    "Layout",
    "Machine",
    "Memory",
    "NotAnIoExit",
    "Outcome",
    "PageFault",
    "PmTimer",
    "PostPort",
    "Registers",
    "RunResult",
    "StateDiff",
    "SvmIoExit",
    "Uart16550",
    "VmxIoExit",
    "decode_instruction",
]
