"""hvmio_lab: how x86 hypervisors handle port-I/O VM exits, to see, touch and measure.

The core (everything importable from here) imports no Jupyter, ipywidgets or matplotlib;
``hvmio_lab.widgets``, ``hvmio_lab.plots`` and ``hvmio_lab.checks`` sit above it.

``import hvmio_lab`` itself loads nothing else: each name below is imported from its module on
first use, so the CLI, a notebook's first cell and a hub's kernel start do not pay for unicorn
and capstone until a guest or a decoder is really wanted (``bench/bench_import.py`` measures
it).
"""

from __future__ import annotations

from .lazy import exports

__version__ = "0.1.0"

# Each public name and the module that defines it.
_EXPORTS = {
    "IoInstruction": "decoder",
    "decode_instruction": "decoder",
    "AtaDisk": "devices",
    "Bus": "devices",
    "BusEvent": "devices",
    "PmTimer": "devices",
    "PostPort": "devices",
    "Uart16550": "devices",
    "BusError": "errors",
    "DeviceError": "errors",
    "ExitInfoError": "errors",
    "GuestMemoryError": "errors",
    "GuestRunaway": "errors",
    "HvmioError": "errors",
    "InvalidInstruction": "errors",
    "NotAnIoExit": "errors",
    "PageFault": "errors",
    "IoAccess": "exits",
    "SvmIoExit": "exits",
    "VmxIoExit": "exits",
    "EXIT_QUALIFICATION": "fields",
    "EXITINFO1": "fields",
    "INSTRUCTION_INFO": "fields",
    "Field": "fields",
    "Kind": "fields",
    "Layout": "fields",
    "Guest": "guest",
    "RunResult": "guest",
    "Hypervisor": "hypervisor",
    "Machine": "machine",
    "Memory": "machine",
    "Registers": "machine",
    "StateDiff": "machine",
    "Outcome": "outcome",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = exports(__name__, _EXPORTS, globals())
