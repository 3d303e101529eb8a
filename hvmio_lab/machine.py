"""The vCPU, guest memory, and snapshots/diffs of a whole machine.

Linear addresses map 1:1 to guest-physical ones (no guest paging); a page can still be marked
not present, which stands in for a guest page-table entry with P = 0 so the emulator can
raise #PF.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from .devices import Bus, BusEvent, attach_pc
from .errors import GuestMemoryError, PageFault
from .fields import SEGMENTS

GPRS = (
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
)  # fmt: skip
REGISTERS = (*GPRS, "rip", "rflags")
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
        self.ns = ns

    def advance(self, ns: int) -> None:
        if ns < 0:
            raise ValueError(f"the clock only moves forward, got {ns} ns")
        self.ns += ns


@dataclass(frozen=True)
class Snapshot:
    """What ``diff`` compares: registers, a copy of guest memory, and the bus log's length."""

    registers: dict[str, int]
    memory: bytes
    events: int  # length of the bus log when taken


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
        return self.cpu.segment(segment).base + offset

    def snapshot(self) -> Snapshot:
        return Snapshot(register_values(self.cpu), bytes(self.memory.data), len(self.bus.log))

    def diff(self, before: Snapshot, after: Snapshot | None = None) -> StateDiff:
        """Changes from ``before`` to ``after`` (default: the machine as it is now, compared
        in place rather than copied: a snapshot of guest memory costs a millisecond)."""
        if after is None:
            registers, memory = register_values(self.cpu), self.memory.data
            events = len(self.bus.log)
        else:
            registers, memory, events = after.registers, after.memory, after.events
        regs = tuple(
            (name, before.registers[name], value)
            for name, value in registers.items()
            if before.registers[name] != value
        )
        log = tuple(self.bus.log[before.events : events])
        return StateDiff(regs, changed_ranges(before.memory, memory), log)
