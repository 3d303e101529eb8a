"""The emulator path: fetch at CS:RIP, decode, execute IN/OUT/INS/OUTS on the machine.

It never looks at an exit record: everything comes from the instruction bytes and the vCPU
registers, as in a hypervisor's x86 emulator (Xen's ``handle_mmio``/``hvm_emulate_one``,
KVM's ``kvm_emulate_instruction``). The decode is not cached: fetch + decode is exactly the
cost the fast path saves, and chapter 06 measures it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from itertools import repeat
from typing import NamedTuple

from .decoder import (
    FetchedBytes,
    IoInstruction,
    TruncatedInstruction,
    decode_instruction,
)
from .devices import Bus
from .errors import DeviceError, GuestMemoryError, PageFault
from .exits import MAX_INSTRUCTION_LENGTH, IoAccess
from .machine import PAGE_SIZE, RFLAGS_DF, WIDTH_MASK, Machine, Memory, merge_gpr

__all__ = [
    "Execution",
    "IoInstruction",
    "batch_elements",
    "decode_fetched",
    "decode_instruction",
    "emulate",
    "execute",
    "fetch",
    "linear",
]

_ONES = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFF_FFFF}
_FORMAT = {1: "B", 2: "H", 4: "I"}
_FLAT_IN_64 = frozenset({"ES", "CS", "SS", "DS"})


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
    values: tuple[int, ...] = ()  # data moved, in the order the device saw it

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


def linear(machine: Machine, segment: str, offset: int) -> int:
    """Segment base + offset; 64-bit mode uses a zero base for ES, CS, SS and DS (SDM §3.4.4)."""
    if machine.mode == 64 and segment in _FLAT_IN_64:
        return offset
    return machine.linear(segment, offset)


def fetch(machine: Machine) -> bytes:
    """Up to 15 bytes at CS:RIP, stopping at the first not-present page or the end of memory.

    A fetch cut short returns ``FetchedBytes`` carrying the PageFault (or GuestMemoryError)
    for the first missing byte; the decoder raises it only if it needs that byte, as the
    CPU faults only on bytes the instruction really has.
    """
    addr = linear(machine, "CS", machine.cpu.rip)
    memory = machine.memory
    end = addr + MAX_INSTRUCTION_LENGTH
    if memory.not_present or end > memory.size or addr < 0:
        end = _fetch_end(memory, addr, end)
        if end < addr + MAX_INSTRUCTION_LENGTH:
            data = FetchedBytes(memory.data[addr:end] if end > addr else b"")
            try:
                memory.check(end, 1)
            except (PageFault, GuestMemoryError) as stop:
                data.stop = stop
            return data
    return bytes(memory.data[addr:end])


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

    This is bhyve's rule (up to the end of the guest page per exit, restart while RCX ≠ 0).
    Xen likewise sends one request whose count is clamped at the page boundary; KVM instead
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


def _port(bus: Bus, port: int) -> tuple[Callable[[int, int], int], Callable[[int, int, int], None]]:
    """The read and write functions for a run of accesses to one port.

    With recording off, a claimed port's device is called directly: the bus would only look
    it up again and skip its log, once per element. Anything else goes through the bus.
    """
    device = bus.device_at(port)
    if device is None or bus.recording:
        return bus.read, bus.write
    return device.read, device.write


def _pack(values: list[int], n: int, size: int, down: bool) -> bytes:
    """The bytes of ``n`` elements as memory holds them (reversed when DF = 1).

    A device read straight (recording off) is not masked by the bus; struct refuses an
    out-of-range value, so only then is every value masked, as the bus would have.
    """
    fmt = f"<{n}{_FORMAT[size]}"
    try:
        return struct.pack(fmt, *(values[::-1] if down else values))
    except struct.error:
        values[:] = [v & _ONES[size] for v in values]
        return struct.pack(fmt, *(values[::-1] if down else values))


def _advance(machine: Machine, insn: IoInstruction) -> None:
    cpu = machine.cpu
    cpu.rip = (cpu.rip + insn.length) & WIDTH_MASK[machine.mode]


def execute(machine: Machine, insn: IoInstruction) -> Execution:
    """Perform one exit's worth of ``insn`` on ``machine`` (see ``batch_elements`` for REP).

    Port from the imm8 or DX. OUT sends AL/AX/EAX; IN merges 8/16-bit data into RAX and
    zero-extends 32-bit data (``merge_gpr``); a port with no device reads all ones, so
    nothing uninitialised reaches the guest. INS checks that its destination is present
    *before* reading the device, so a #PF never swallows a UART byte (the bhyve fix,
    IO_EXITS.md §7 item 8); the #PF comes back in ``Execution.fault``, RIP unmoved. A
    DeviceError propagates (the hypervisor injects #GP), after committing the elements done.
    """
    cpu = machine.cpu
    size = insn.size
    access = insn.access(cpu.rdx)
    port = access.port
    bus = machine.bus
    if not insn.string:
        if insn.is_in:
            value = bus.read(port, size)
            cpu.rax = merge_gpr(cpu.rax, value, size)
        else:
            value = cpu.rax & _ONES[size]
            bus.write(port, size, value)
        cpu.rip = (cpu.rip + insn.length) & WIDTH_MASK[machine.mode]
        return Execution(insn, access, 1, True, None, (value,))

    address_size = insn.address_size
    mask = WIDTH_MASK[address_size]
    reg_bytes = address_size // 8
    if insn.rep:
        count = cpu.rcx & mask
        if count == 0:  # nothing happens, not even RCX's zero extension
            _advance(machine, insn)
            return Execution(insn, access, 0, True)
    else:
        count = 1
    reg = "rdi" if insn.is_in else "rsi"
    pointer = getattr(cpu, reg) & mask
    down = bool(cpu.rflags & RFLAGS_DF)
    start = linear(machine, insn.segment, pointer)
    n = batch_elements(start, pointer, count, size, address_size, down)
    low = start - (n - 1) * size if down else start
    nbytes = n * size
    memory = machine.memory
    try:
        memory.check(low, nbytes, write=insn.is_in)
    except PageFault as fault:
        return Execution(insn, access, 0, False, fault)

    fmt = _FORMAT[size]
    done = n
    error = None
    if insn.is_in:
        read = _port(bus, port)[0]
        got: list[int] = []
        try:  # element by element, in C: extend keeps what was read before an error
            got.extend(map(read, repeat(port, n), repeat(size, n)))
        except DeviceError as exc:
            error, done = exc, len(got)
        if done:
            first = start - (done - 1) * size if down else start
            memory.data[first : first + done * size] = _pack(got, done, size, down)
        values = tuple(got)
    else:
        values = struct.unpack_from(f"<{n}{fmt}", memory.data, low)
        if down:
            values = values[::-1]
        write = _port(bus, port)[1]
        done = 0
        try:
            for value in values:
                write(port, size, value)
                done += 1
        except DeviceError as exc:
            error = exc
        values = values[:done]

    if done:  # no element, no register write (not even a zero extension)
        step = done * size
        moved = (pointer - step if down else pointer + step) & mask
        setattr(cpu, reg, merge_gpr(getattr(cpu, reg), moved, reg_bytes))
        if insn.rep:
            cpu.rcx = merge_gpr(cpu.rcx, count - done, reg_bytes)
    if error is not None:
        raise error
    finished = done == count
    if finished:
        _advance(machine, insn)
    return Execution(insn, access, done, finished, None, values)


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
            machine.memory.check(linear(machine, "CS", machine.cpu.rip) + len(code), 1)
        raise


def emulate(machine: Machine) -> Execution:
    """Fetch + decode + execute the instruction at CS:RIP: the whole emulator path, uncached.

    Raises PageFault when the decoder needs bytes beyond a not-present page (the CPU would
    fault on the instruction fetch), InvalidInstruction for bytes that are not an I/O
    instruction.
    """
    return execute(machine, decode_fetched(machine, fetch(machine)))
