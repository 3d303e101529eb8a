"""The fast path: handle a non-string I/O exit from its record and the registers alone.

This is the 2010 patch's idea, done as modern hypervisors do it: it never fetches or decodes
guest instruction bytes; IN data starts as all ones; a 32-bit IN zero-extends into RAX; RIP
moves to the record's next RIP only once the access has completed.
"""

from __future__ import annotations

from collections.abc import Callable

from .devices import Device
from .errors import DeviceError
from .exits import IoAccess, SvmIoExit, VmxIoExit
from .kept import keep
from .machine import WIDTH_MASK, Machine, merge_gpr
from .outcome import PathResult

_new = tuple.__new__  # a named tuple from all its fields, without the keyword handling
_LOOK_UP = object()  # ``run`` was not told the device: it asks the bus
_DONE: dict[int, PathResult] = {}  # id(access) → the result of doing it (see ``run``)
_LAST: list[PathResult | None] = [None]  # the one ``run`` handed out last, looked at first


def run(
    machine: Machine,
    exit: SvmIoExit | VmxIoExit,
    io: IoAccess,
    lap: Callable[[str], None] | None = None,
    device: Device | None = _LOOK_UP,  # type: ignore[assignment]
) -> PathResult:
    """Do the access on the bus, write IN data back into RAX and resume after the instruction.

    A DeviceError changes nothing: RIP stays and the error comes back as ``trouble``.
    ``lap`` (the stage stopwatch, when timed) is told where the device work ends. ``device``
    is the bus's ``device_at(port)``, when the caller has routed the access already.
    """
    cpu = machine.cpu
    bus = machine.bus
    port, size, is_in, _, _, _, _, _ = io  # an IoAccess is a tuple: one unpack
    if device is _LOOK_UP:
        device = bus.device_at(port)
    try:
        if is_in:  # the bus fills with ones where nothing answers
            data = bus.read_at(device, port, size)
        else:
            bus.write_at(device, port, size, cpu.rax)  # the bus masks it to the size
    except DeviceError as e:
        return _new(PathResult, ("fast", io, None, False, 0, e, None, False))
    if lap is not None:
        lap("device")
    if is_in:
        cpu.rax = data if size == 4 else merge_gpr(cpu.rax, data, size)  # 32 bits zero-extend
    cpu.rip = exit.next_rip & WIDTH_MASK[machine.mode]  # IP wraps in a 16-bit code segment
    if lap is not None:
        lap("writeback")
    # The result of doing ``io`` is the same immutable record every time, so it is kept, by
    # the access's identity (the record it holds keeps that access alive), not built per exit;
    # a guest polling one port finds it without the lookup, as the last one handed out.
    result = _LAST[0]
    if result is None or result[1] is not io:
        result = _DONE.get(id(io))
        if result is None or result[1] is not io:
            # path, access, instruction, done, elements, trouble, request, reemulated
            result = keep(_DONE, id(io), _new(PathResult, ("fast", io, None, True, 1, None, None,
                                                           False)))  # fmt: skip
        _LAST[0] = result
    return result
