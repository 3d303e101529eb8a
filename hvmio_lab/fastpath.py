"""The fast path: handle a non-string I/O exit from its record and the registers alone.

This is the 2010 patch's idea, done as modern hypervisors do it: it never fetches or decodes
guest instruction bytes; IN data starts as all ones; a 32-bit IN zero-extends into RAX; RIP
moves to the record's next RIP only once the access has completed.
"""

from __future__ import annotations

from collections.abc import Callable

from .devices import ones
from .errors import DeviceError
from .exits import IoAccess, SvmIoExit, VmxIoExit
from .machine import WIDTH_MASK, Machine, merge_gpr
from .outcome import PathResult

_new = tuple.__new__  # a named tuple from all its fields, without the keyword handling


def access(exit: SvmIoExit | VmxIoExit) -> IoAccess | None:
    """The validated access, or None for string I/O, which the fast path declines."""
    io = exit.access()
    return None if io.string else io


def run(
    machine: Machine,
    exit: SvmIoExit | VmxIoExit,
    io: IoAccess,
    lap: Callable[[str], None] | None = None,
) -> PathResult:
    """Do the access on the bus, write IN data back into RAX and resume after the instruction.

    A DeviceError changes nothing: RIP stays and the error comes back as ``trouble``.
    ``lap`` (the stage stopwatch, when timed) is told where the device work ends.
    """
    cpu = machine.cpu
    port, size, is_in = io.port, io.size, io.is_in
    try:
        if is_in:  # the bus fills with ones where nothing answers
            data = machine.bus.read(port, size)
        else:
            machine.bus.write(port, size, cpu.rax & ones(size))
    except DeviceError as e:
        return _new(PathResult, ("fast", io, None, False, 0, e, None, False))
    if lap is not None:
        lap("device")
    if is_in:
        cpu.rax = data if size == 4 else merge_gpr(cpu.rax, data, size)  # 32 bits zero-extend
    cpu.rip = exit.next_rip & WIDTH_MASK[machine.mode]  # IP wraps in a 16-bit code segment
    if lap is not None:
        lap("writeback")
    # path, access, instruction, done, elements, trouble, request, reemulated
    return _new(PathResult, ("fast", io, None, True, 1, None, None, False))
