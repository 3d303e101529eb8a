"""The fast path: handle a non-string I/O exit from its record and the registers alone.

This is the 2010 patch's idea, done as modern hypervisors do it: it never fetches or decodes
guest instruction bytes; IN data starts as all ones; a 32-bit IN zero-extends into RAX; RIP
moves to the record's next RIP only once the access has completed.
"""

from __future__ import annotations

from .devices import ones
from .exits import IoAccess, SvmIoExit, VmxIoExit
from .machine import WIDTH_MASK, Machine, merge_gpr


def access(exit: SvmIoExit | VmxIoExit) -> IoAccess | None:
    """The validated access, or None for string I/O, which the fast path declines."""
    io = exit.access()
    return None if io.string else io


def perform(machine: Machine, io: IoAccess) -> int:
    """Do the access on the bus and return the data moved. A DeviceError changes nothing."""
    if io.is_in:
        return machine.bus.read(io.port, io.size)  # the bus fills with ones where nothing answers
    data = machine.cpu.rax & ones(io.size)
    machine.bus.write(io.port, io.size, data)
    return data


def retire(machine: Machine, exit: SvmIoExit | VmxIoExit, io: IoAccess, data: int) -> None:
    """Write IN data back into RAX and resume after the instruction."""
    cpu = machine.cpu
    if io.is_in:
        cpu.rax = merge_gpr(cpu.rax, data, io.size)
    cpu.rip = exit.next_rip & WIDTH_MASK[machine.mode]  # IP wraps in a 16-bit code segment
