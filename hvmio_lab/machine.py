"""The vCPU, guest memory, and snapshots/diffs of a whole machine.

Linear addresses map 1:1 to guest-physical ones (no guest paging); a page can still be marked
not present, which stands in for a guest page-table entry with P = 0 so the emulator can
raise #PF.

A snapshot does not copy guest memory: from the first snapshot on, ``Memory`` journals the old
bytes of every range about to be written through it (``write``, or ``check(write=True)``,
which every exit path calls before it stores), and a diff compares only those ranges. So a
recorded exit costs the same with 2 MiB or 128 MiB of RAM. Bytes stored into ``Memory.data``
directly (the guest CPU running, a test poking it) are not journaled: take
``snapshot(full=True)`` to diff across those.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from .devices import Bus, BusEvent, attach_pc
from .errors import GuestMemoryError, InvalidValue, PageFault
from .fields import NULL_SEGMENTS_64, SEGMENTS

GPRS = (
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
)  # fmt: skip
REGISTERS = (*GPRS, "rip", "rflags")
# every name register_values gives, in its order
REGISTER_NAMES = (*REGISTERS, *(f"{s.lower()}.{p}" for s in SEGMENTS for p in ("sel", "base")))
MODES = (16, 32, 64)
WIDTH_MASK = {16: 0xFFFF, 32: 0xFFFF_FFFF, 64: (1 << 64) - 1}  # IP, or an address, of that width
PAGE_SIZE = 4096
RFLAGS_DF = 1 << 10
RFLAGS_RESET = 0x2  # bit 1 is reserved and always reads 1
DEFAULT_MEMORY = 2 << 20


def merge_gpr(old: int, value: int, size: int) -> int:
    """Architectural register write: 8/16-bit writes merge, 32-bit writes zero-extend.

    SDM Vol. 1 §3.4.1.1.
    """
    if size == 4:
        return value & 0xFFFF_FFFF
    if size == 8:
        return value & 0xFFFF_FFFF_FFFF_FFFF
    mask = (1 << (8 * size)) - 1
    return (old & ~mask) | (value & mask)


@dataclass(frozen=True, slots=True)
class Segment:
    selector: int
    base: int


class Cpu(Protocol):
    """What the paths need of a vCPU: GPRs, RIP, RFLAGS as attributes, plus segments."""

    rip: int
    rflags: int

    def segment(self, name: str) -> Segment: ...
    def segment_base(self, name: str) -> int: ...
    def set_segment(self, name: str, selector: int, base: int) -> None: ...


class Registers:
    """A plain vCPU register file: ``rax … r15``, ``rip``, ``rflags`` and segment registers."""

    __slots__ = (*REGISTERS, "_segments")

    def __init__(self) -> None:
        for name in REGISTERS:
            setattr(self, name, 0)
        self.rflags = RFLAGS_RESET
        self._segments = {name: Segment(0, 0) for name in SEGMENTS}

    def segment(self, name: str) -> Segment:
        return self._segments[name]

    def segment_base(self, name: str) -> int:
        return self._segments[name].base

    def set_segment(self, name: str, selector: int, base: int) -> None:
        self._segments[name] = Segment(selector, base)


def register_values(cpu: object) -> dict[str, int]:
    """Every architectural register by name, segments as ``es.sel``/``es.base``."""
    values = {name: getattr(cpu, name) for name in REGISTERS}
    for name in SEGMENTS:
        seg = cpu.segment(name)
        values[f"{name.lower()}.sel"] = seg.selector
        values[f"{name.lower()}.base"] = seg.base
    return values


class Memory:
    """Guest-physical memory: a bytearray plus a set of not-present pages."""

    def __init__(self, size: int = DEFAULT_MEMORY):
        if size < 1 << 20 or size % PAGE_SIZE:
            raise GuestMemoryError(
                f"memory size must be a whole number of pages ≥ 1 MiB, got {size}"
            )
        self.data = bytearray(size)
        self.not_present: set[int] = set()
        self._journal: weakref.ref[Journal] | None = None  # the newest, while a snapshot lives

    @property
    def size(self) -> int:
        return len(self.data)

    def check(self, addr: int, n: int, write: bool = False) -> None:
        """Raise what the access would raise, before anything is touched."""
        if n < 0 or addr < 0 or addr + n > len(self.data):
            raise GuestMemoryError(
                f"guest-physical access {addr:#x}+{n} is outside memory (0..{len(self.data):#x})"
            )
        if self.not_present and n:
            for page in range(addr // PAGE_SIZE, (addr + n - 1) // PAGE_SIZE + 1):
                if page in self.not_present:
                    raise PageFault(max(addr, page * PAGE_SIZE), write)
        if write and n and self._journal is not None:
            journal = self._journal()
            if journal is None:
                self._journal = None  # every snapshot is gone: stop journaling
            else:
                journal.entries.append((addr, bytes(self.data[addr : addr + n])))

    def journal(self) -> Journal:
        """Start a new journal segment (a snapshot keeps it; it links to the next one)."""
        journal = Journal()
        previous = self._journal() if self._journal is not None else None
        if previous is not None:
            previous.next = journal
        self._journal = weakref.ref(journal)
        return journal

    def read(self, addr: int, n: int) -> bytes:
        self.check(addr, n)
        return bytes(self.data[addr : addr + n])

    def write(self, addr: int, data: bytes) -> None:
        self.check(addr, len(data), write=True)
        self.data[addr : addr + len(data)] = data

    def set_present(self, addr: int, present: bool, length: int = PAGE_SIZE) -> None:
        """Mark the pages covering ``addr .. addr+length`` present or not present."""
        pages = range(addr // PAGE_SIZE, (addr + max(length, 1) - 1) // PAGE_SIZE + 1)
        (self.not_present.difference_update if present else self.not_present.update)(pages)


class VirtualClock:
    """Guest time in nanoseconds, advanced by whoever runs the machine, so tests are repeatable."""

    __slots__ = ("ns",)

    def __init__(self, ns: int = 0):
        _check_ns("the clock starts at a whole number of ns ≥ 0", ns)
        self.ns = ns

    def advance(self, ns: int) -> None:
        _check_ns("the clock only moves forward, by whole ns", ns)
        self.ns += ns


def _check_ns(rule: str, ns: object) -> None:
    if ns.__class__ is not int or ns < 0:
        raise InvalidValue(f"{rule}, got {ns!r}")


class Journal:
    """Writes made through ``Memory`` since one snapshot: (address, old bytes) in order."""

    __slots__ = ("__weakref__", "entries", "next")

    def __init__(self) -> None:
        self.entries: list[tuple[int, bytes]] = []
        self.next: Journal | None = None

    def since(self, stop: Journal | None = None) -> list[tuple[int, bytes]]:
        """Entries from this segment on, up to (not into) ``stop``."""
        out, node = [], self
        while node is not None and node is not stop:
            out += node.entries
            node = node.next
        return out


@dataclass(frozen=True)
class Snapshot:
    """What ``diff`` compares: registers, the memory journal (or a full copy of memory when
    taken with ``full=True``) and the bus log's length."""

    registers: Mapping[str, int]
    journal: Journal
    events: int  # length of the bus log when taken
    memory: bytes | None = None


@dataclass(frozen=True)
class MemoryChange:
    address: int
    before: bytes
    after: bytes


@dataclass(frozen=True)
class StateDiff:
    """What changed between two snapshots: registers, memory ranges and device events."""

    registers: tuple[tuple[str, int, int], ...] = ()
    memory: tuple[MemoryChange, ...] = ()
    events: tuple[BusEvent, ...] = field(default_factory=tuple)

    def __bool__(self) -> bool:
        return bool(self.registers or self.memory or self.events)

    def register(self, name: str) -> tuple[int, int] | None:
        return next(((b, a) for n, b, a in self.registers if n == name), None)

    def lines(self) -> list[str]:
        out = [f"{n:>8}: {b:#x} → {a:#x}" for n, b, a in self.registers]
        for m in self.memory:
            preview = m.after[:16].hex(" ") + (" …" if len(m.after) > 16 else "")
            out.append(f"  memory: {m.address:#x}+{len(m.after)}: {preview}")
        out.extend(f"  device: {e}" for e in self.events)
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines()) or "(no change)"


def changed_ranges(before: bytes, after: bytes | bytearray) -> tuple[MemoryChange, ...]:
    """The byte ranges that differ between two equal-sized memory images, coalesced."""
    changes: list[MemoryChange] = []
    if before == after:  # one memcmp: most exits write no memory at all
        return ()
    for start in range(0, len(after), PAGE_SIZE):
        if before[start : start + PAGE_SIZE] == after[start : start + PAGE_SIZE]:
            continue
        i, end = start, min(start + PAGE_SIZE, len(after))
        while i < end:
            if before[i] == after[i]:
                i += 1
                continue
            j = i
            while j < end and before[j] != after[j]:
                j += 1
            if changes and changes[-1].address + len(changes[-1].after) == i:
                last = changes.pop()
                changes.append(
                    MemoryChange(last.address, last.before + before[i:j], last.after + after[i:j])
                )
            else:
                changes.append(MemoryChange(i, bytes(before[i:j]), bytes(after[i:j])))
            i = j
    return tuple(changes)


def journaled_changes(
    entries: list[tuple[int, bytes]], after: Callable[[int, int], bytes]
) -> tuple[MemoryChange, ...]:
    """The changes inside the ranges ``entries`` wrote (in time order): each byte's oldest
    journaled value against ``after(address, length)``."""
    if not entries:
        return ()
    spans: list[list] = []  # [start, bytearray of old bytes]: disjoint, sorted, coalesced
    overlap = False
    for addr, old in sorted(entries, key=lambda e: e[0]):
        if spans and addr <= spans[-1][0] + len(spans[-1][1]):
            start, before = spans[-1]
            end = start + len(before)
            overlap = overlap or addr < end
            if addr + len(old) > end:
                before += old[end - addr :]
        else:
            spans.append([addr, bytearray(old)])
    if overlap:  # a range written twice: its oldest bytes are the ones before the first write
        oldest: dict[int, int] = {}
        for addr, old in entries:
            for i, byte in enumerate(old):
                oldest.setdefault(addr + i, byte)
        for span in spans:
            span[1] = bytearray(oldest[span[0] + i] for i in range(len(span[1])))
    return tuple(
        MemoryChange(start + c.address, c.before, c.after)
        for start, before in spans
        for c in changed_ranges(bytes(before), after(start, len(before)))
    )


class Machine:
    """A vCPU, guest memory, an I/O bus and a virtual clock: what both exit paths act on."""

    def __init__(self, mode: int = 64, memory_size: int = DEFAULT_MEMORY, cpu: Cpu | None = None):
        if mode not in MODES:
            raise ValueError(f"mode must be 16, 32 or 64, got {mode!r}")
        self.mode = mode
        self.cpu = cpu if cpu is not None else Registers()
        self.memory = Memory(memory_size)
        self.bus = Bus()
        self.clock = VirtualClock()
        if cpu is None:
            for name in SEGMENTS:
                self.load_segment(name, 0)

    @classmethod
    def pc(cls, mode: int = 64, **devices: object) -> Machine:
        """A machine with the standard PC devices attached (see ``devices.attach_pc``)."""
        machine = cls(mode)
        attach_pc(machine, **devices)
        return machine

    def load_segment(self, name: str, selector: int) -> None:
        """Real mode: base = selector × 16. Protected and long mode here use flat segments."""
        self.cpu.set_segment(name, selector, selector << 4 if self.mode == 16 else 0)

    def linear(self, segment: str, offset: int) -> int:
        """Segment base + offset, the one rule for every path: in 64-bit mode ES, CS, SS and
        DS have base 0 whatever the register holds; FS and GS use their base (SDM Vol. 1
        §3.4.2.1)."""
        if self.mode == 64 and segment in NULL_SEGMENTS_64:
            return offset
        return self.cpu.segment_base(segment) + offset  # (the base alone: no Segment built)

    def snapshot(self, full: bool = False) -> Snapshot:
        """The state to diff against later. ``full`` also copies all of guest memory, for a
        diff across writes that bypass ``Memory`` (a guest CPU that ran in between)."""
        memory = bytes(self.memory.data) if full else None
        mark = getattr(self.cpu, "mark", None)  # a vCPU whose every read costs (unicorn's)
        registers = mark() if mark is not None else register_values(self.cpu)
        return Snapshot(registers, self.memory.journal(), len(self.bus.log), memory)

    def diff(self, before: Snapshot, after: Snapshot | None = None) -> StateDiff:
        """Changes from ``before`` to ``after`` (default: the machine as it is now)."""
        data = self.memory.data
        written = getattr(before.registers, "written", lambda: None)()
        if after is None and written is not None:  # only what was written can have changed
            value = self.cpu.value
            registers = {n: value(n) for n in REGISTER_NAMES if n in written} if written else {}
            events = len(self.bus.log)
        elif after is None:
            registers, events = register_values(self.cpu), len(self.bus.log)
        else:
            registers, events = after.registers, after.events
        regs = tuple(
            (name, before.registers[name], value)
            for name, value in registers.items()
            if before.registers[name] != value
        )
        log = tuple(self.bus.log[before.events : events])
        if before.memory is not None and (after is None or after.memory is not None):
            memory = changed_ranges(before.memory, data if after is None else after.memory)
        else:
            later = [] if after is None else after.journal.since()

            def at_after(addr: int, n: int) -> bytes:
                now = bytearray(data[addr : addr + n])
                for start, old in reversed(later):  # the oldest entry is applied last: wins
                    lo, hi = max(addr, start), min(addr + n, start + len(old))
                    if lo < hi:
                        now[lo - addr : hi - addr] = old[lo - start : hi - start]
                return bytes(now)

            stop = None if after is None else after.journal
            memory = journaled_changes(before.journal.since(stop), at_after)
        return StateDiff(regs, memory, log)
