"""The emulator path: fetch at CS:RIP, decode, execute IN/OUT/INS/OUTS on the machine.

It never looks at an exit record: everything comes from the instruction bytes and the vCPU
registers, as in a hypervisor's x86 emulator (Xen's ``handle_mmio``/``hvm_emulate_one``,
KVM's ``kvm_emulate_instruction``). The decode is not cached: fetch + decode is exactly the
cost the fast path saves, and chapter 06 measures it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import NamedTuple

from .decoder import (
    FetchedBytes,
    IoInstruction,
    TruncatedInstruction,
    decode_instruction,
)
from .devices.bus import ELEMENT_FORMAT, Device, PartialRead, PartialWrite, ones
from .errors import DeviceError, GuestMemoryError, PageFault
from .exits import MAX_INSTRUCTION_LENGTH, IoAccess
from .kept import keep
from .machine import PAGE_SIZE, RFLAGS_DF, WIDTH_MASK, Machine, Memory, merge_gpr
from .outcome import PathResult

__all__ = [
    "Execution",
    "IoInstruction",
    "batch_elements",
    "decode_at_rip",
    "decode_fetched",
    "decode_instruction",
    "emulate",
    "execute",
    "fetch",
    "run",
]

_new = tuple.__new__  # a named tuple from all its fields, without the keyword handling
_LOOK_UP = object()  # not told the device: ask the bus
_DONE: dict[int, PathResult] = {}  # id(access) → an exit's result that went through (``run``)


class Execution(NamedTuple):
    """What one exit's worth of emulation did (an immutable named tuple: one per exit).

    ``elements`` counts the element accesses done in this exit (1 for IN/OUT, 0 for a REP with
    a zero count or a faulting batch). ``done`` means RIP moved past the instruction; a REP
    that is not done is re-entered by the next exit. ``fault`` is the #PF to inject, with
    the registers showing only the elements completed before it.
    """

    instruction: IoInstruction
    access: IoAccess
    elements: int
    done: bool
    fault: PageFault | None = None
    data: bytes = b""  # the elements moved, little-endian, in the order the device saw them

    @property
    def values(self) -> tuple[int, ...]:
        """The data moved, one int an element: worked out when asked, as a `rep insw` batch
        would otherwise build hundreds of ints per exit that nobody reads."""
        size = self.access.size
        return struct.unpack(f"<{len(self.data) // size}{ELEMENT_FORMAT[size]}", self.data)

    def __str__(self) -> str:
        if self.fault is not None:
            return f"{self.instruction.text}: {self.fault}; RIP stays, inject #PF"
        width = 2 * self.access.size
        shown = " ".join(f"{v:0{width}x}" for v in self.values[:8])
        more = " …" if len(self.values) > 8 else ""
        state = "done, RIP advanced" if self.done else "not done, RIP stays for the next exit"
        n = self.elements
        plural = "s" if n != 1 else ""
        return f"{self.instruction.text}: {n} element{plural} [{shown}{more}], {state}"


def fetch(machine: Machine) -> bytes:
    """Up to 15 bytes at CS:RIP, stopping at the first not-present page or the end of memory.

    A fetch cut short returns ``FetchedBytes`` carrying the PageFault (or GuestMemoryError)
    for the first missing byte; the decoder raises it only if it needs that byte, as the
    CPU faults only on bytes the instruction really has.
    """
    addr = machine.linear("CS", machine.cpu.rip)
    memory = machine.memory
    image = memory.data
    end = addr + MAX_INSTRUCTION_LENGTH
    if memory.not_present or end > len(image) or addr < 0:
        end = _fetch_end(memory, addr, end)
        if end < addr + MAX_INSTRUCTION_LENGTH:
            data = FetchedBytes(image[addr:end] if end > addr else b"")
            try:
                memory.check(end, 1)
            except (PageFault, GuestMemoryError) as stop:
                data.stop = stop
            return data
    return bytes(image[addr:end])


def _fetch_end(memory: Memory, addr: int, end: int) -> int:
    """Where a fetch of ``addr .. end`` stops: the end of memory or a not-present page."""
    if addr < 0 or addr >= memory.size:
        return addr
    end = min(end, memory.size)
    for page in range(addr // PAGE_SIZE, (end - 1) // PAGE_SIZE + 1):
        if page in memory.not_present:
            return max(addr, page * PAGE_SIZE)
    return end


def batch_elements(
    linear_address: int, pointer: int, count: int, size: int, address_size: int, down: bool
) -> int:
    """How many elements of a string instruction one exit handles: the REP batching rule.

    A batch runs to the end of the guest page holding the current element (to the start of
    that page when DF = 1), and never past the point where the pointer wraps at the address
    size; an element that straddles two pages is a batch of its own. The count left over
    is picked up by the next exit, because RIP stays on the instruction.

    This is Xen's bound: one request whose count is clamped at the page boundary. bhyve caps
    an exit at 16 elements (``MIN(count, 16)``) and restarts while the count ≠ 0; KVM instead
    refills a 1 KiB read-ahead buffer for INS and sends OUTS one element at a time
    (IO_EXITS.md §3). A page bound keeps the work per exit small (≤ 4096 elements, so even
    RCX = 2^64 − 1 returns promptly) and lets one presence check cover the whole batch.
    """
    offset = linear_address % PAGE_SIZE
    if offset + size > PAGE_SIZE:
        return 1
    mask = WIDTH_MASK[address_size]
    if down:
        room = min(offset // size, pointer // size) + 1
    else:
        room = min((PAGE_SIZE - offset) // size, (mask - pointer) // size + 1)
    return min(count, room)


def _advance(machine: Machine, insn: IoInstruction) -> None:
    cpu = machine.cpu
    cpu.rip = (cpu.rip + insn.length) & WIDTH_MASK[machine.mode]


def _port_io(
    machine: Machine,
    insn: IoInstruction,
    port: int,
    device: Device | None = _LOOK_UP,  # type: ignore[assignment]
) -> int:
    """IN or OUT, then step RIP past it: the data moved. A DeviceError changes nothing."""
    cpu = machine.cpu
    length, _, size, is_in = insn[:4]
    bus = machine.bus
    if device is _LOOK_UP:
        device = bus.device_at(port)
    if is_in:
        value = bus.read_at(device, port, size)
        cpu.rax = value if size == 4 else merge_gpr(cpu.rax, value, size)  # 32 bits zero-extend
    else:
        value = cpu.rax & ones(size)
        bus.write_at(device, port, size, value)
    cpu.rip = (cpu.rip + length) & WIDTH_MASK[machine.mode]
    return value


def execute(machine: Machine, insn: IoInstruction, access: IoAccess | None = None) -> Execution:
    """Perform one exit's worth of ``insn`` on ``machine`` (see ``batch_elements`` for REP);
    ``access`` is ``insn.access(RDX)``, when the caller has built it already.

    Port from the imm8 or DX. OUT sends AL/AX/EAX; IN merges 8/16-bit data into RAX and
    zero-extends 32-bit data (``merge_gpr``); a port with no device reads all ones, so
    nothing uninitialised reaches the guest. INS checks that its destination is present
    *before* reading the device, so a #PF never swallows a UART byte (the bhyve fix,
    IO_EXITS.md §7 item 8); the #PF comes back in ``Execution.fault``, RIP unmoved. A
    DeviceError propagates (the hypervisor injects #GP), after committing the elements done.
    """
    if access is None:
        access = insn.access(machine.cpu.rdx)
    if not insn[4]:  # not string I/O
        value = _port_io(machine, insn, access[0])
        return _new(Execution, (insn, access, 1, True, None, value.to_bytes(insn[2], "little")))
    return _new(Execution, (insn, access, *_string_io(machine, insn, access[0])))


def _string_io(machine: Machine, insn: IoInstruction, port: int
               ) -> tuple[int, bool, PageFault | None, bytes]:  # fmt: skip
    """INS/OUTS, the part ``execute`` and ``run`` share: (elements, done, fault, data), the
    last four fields of an ``Execution``."""
    cpu = machine.cpu
    # size, is_in, string, rep, address size, segment: one unpack
    size, is_in, _, rep, address_size, segment = insn[2:8]
    mask = WIDTH_MASK[address_size]
    reg_bytes = address_size // 8
    if rep:
        count = cpu.rcx & mask
        if count == 0:  # nothing happens, not even RCX's zero extension
            _advance(machine, insn)
            return 0, True, None, b""
    else:
        count = 1
    pointer = (cpu.rdi if is_in else cpu.rsi) & mask
    down = bool(cpu.rflags & RFLAGS_DF)
    start = machine.linear(segment, pointer)
    n = batch_elements(start, pointer, count, size, address_size, down)
    low = start - (n - 1) * size if down else start
    nbytes = n * size
    memory = machine.memory
    try:
        memory.check(low, nbytes, is_in)  # (write=is_in, without keyword handling)
    except PageFault as fault:
        return 0, False, fault, b""

    fmt = ELEMENT_FORMAT[size]
    error = None
    bus = machine.bus
    if is_in:
        try:
            moved = bus.read_many(port, size, n)
        except PartialRead as partial:
            moved, error = partial.data, partial.error
        done = len(moved) // size
        if done:
            first = start - (done - 1) * size if down else start
            # the first element read goes highest when DF = 1
            stored = memoryview(moved).cast(fmt)[::-1].tobytes() if down else moved
            memory.data[first : first + done * size] = stored
    else:
        values = struct.unpack_from(f"<{n}{fmt}", memory.data, low)
        if down:
            values = values[::-1]
        done = n
        try:
            bus.write_many(port, size, values)
        except PartialWrite as partial:
            error, done = partial.error, partial.done
        moved = struct.pack(f"<{done}{fmt}", *values[:done])

    if done:  # no element, no register write (not even a zero extension)
        step = done * size
        pointer = (pointer - step if down else pointer + step) & mask
        # the pointer and the count are within the address size already: a 32- or 64-bit one
        # is the whole register (merge_gpr zero-extends 32 bits); only 16 bits merge
        if is_in:
            cpu.rdi = pointer if reg_bytes != 2 else merge_gpr(cpu.rdi, pointer, 2)
        else:
            cpu.rsi = pointer if reg_bytes != 2 else merge_gpr(cpu.rsi, pointer, 2)
        if rep:
            left = count - done
            cpu.rcx = left if reg_bytes != 2 else merge_gpr(cpu.rcx, left, 2)
    if error is not None:
        raise error
    finished = done == count
    if finished:
        _advance(machine, insn)
    return done, finished, None, moved


def decode_fetched(machine: Machine, code: bytes) -> IoInstruction:
    """Decode what ``fetch`` returned. If the decoder needed bytes the fetch could not get,
    raise the PageFault (or memory error) that fetching them raises, as the CPU would.

    ``decode_instruction`` already does this for the ``FetchedBytes`` that ``fetch``
    returns; this also covers plain bytes read at CS:RIP some other way.
    """
    try:
        return decode_instruction(code, machine.mode)
    except TruncatedInstruction:
        if len(code) < MAX_INSTRUCTION_LENGTH:
            machine.memory.check(machine.linear("CS", machine.cpu.rip) + len(code), 1)
        raise


def decode_at_rip(machine: Machine, lap: Callable[[str], None] | None = None) -> IoInstruction:
    """Fetch + decode at CS:RIP (raises PageFault or InvalidInstruction, changing nothing);
    ``lap``, the stage stopwatch when timed, is told where the fetch ends."""
    code = fetch(machine)
    if lap is not None:
        lap("fetch")
    return decode_instruction(code, machine.mode)  # a short fetch raises its own fault


def run(
    machine: Machine,
    insn: IoInstruction,
    access: IoAccess | None = None,
    device: Device | None = _LOOK_UP,  # type: ignore[assignment]
) -> PathResult:
    """One exit's worth of ``insn`` as the emulator path's result: a #PF or a device's refusal
    comes back as ``trouble`` for the hypervisor to inject. ``device`` is the bus's
    ``device_at`` for the access's port, when the caller has routed it already."""
    if access is None:
        access = insn.access(machine.cpu.rdx)
    finished, elements = True, 1
    try:
        if insn[4]:  # string
            elements, finished, fault, _ = _string_io(machine, insn, access[0])
            if fault is not None:
                # path, access, instruction, done, elements, trouble, request, reemulated
                return _new(PathResult, ("emulate", access, insn, False, 0, fault, None, False))
        else:
            _port_io(machine, insn, access[0], device)
    except DeviceError as e:
        return _new(PathResult, ("emulate", access, insn, False, 0, e, None, False))
    # An exit that went through gives the same immutable record whenever the access is the
    # same one, the instruction decodes the same (equal, though decoded afresh) and as many
    # elements were done: kept by the access's identity, as the fast path keeps its own, so
    # that the Hypervisor can hand out a repeated exit's Outcome again. Fetch and decode still
    # run every exit.
    result = _DONE.get(id(access))
    if (result is None or result[1] is not access or result[3] is not finished
            or result[4] != elements or result[2] != insn):  # fmt: skip
        done = _new(PathResult, ("emulate", access, insn, finished, elements, None, None, False))
        result = keep(_DONE, id(access), done)
    return result


def emulate(machine: Machine) -> Execution:
    """Fetch + decode + execute the instruction at CS:RIP: the whole emulator path, uncached.

    Raises PageFault when the decoder needs bytes beyond a not-present page (the CPU would
    fault on the instruction fetch), InvalidInstruction for bytes that are not an I/O
    instruction.
    """
    return execute(machine, decode_fetched(machine, fetch(machine)))
