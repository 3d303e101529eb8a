"""The Machine's view of unicorn's vCPU: registers read on first use, segments with TRUE bases.

A VM exit reads only what its path asks for: values are cached for the exit and written back
by ``sync`` before the guest resumes. Plain registers and the descriptor tables' registers
go straight to unicorn's C API (``uc_api.registers``, ``uc_api.table_register``); MSRs
through the binding. The cache is the object's own ``__dict__``, so a register read once
(``cpu.rax``) is a plain attribute after that, with no Python call. A status-poll exit asks
for 7 register values and a ``rep insw`` for 14; through properties each ask was a call.

Segment bases, as the guest CPU uses them:
- real mode (CR0.PE = 0): selector × 16, as a real-mode load sets it;
- protected mode: the base in the descriptor the selector names (GDT, or the LDT when TI = 1),
  read from guest memory (guest-physical = linear here). A null selector reads base 0, which is
  the flat state unicorn starts a 32- or 64-bit CPU in;
- 64-bit mode: ES, CS, SS and DS are 0 (SDM Vol. 1 §3.4.2.1); FS and GS are unicorn's hidden
  bases (``UC_X86_REG_FS_BASE``/``GS_BASE``), which ``wrmsr`` to IA32_FS_BASE/IA32_GS_BASE
  (0xC0000100/0xC0000101) and ``wrfsbase`` set. (unicorn 2.1 has no GS_BASE outside 64-bit
  mode, so there the rules above apply to FS and GS too.)
A descriptor is read when the segment is asked for, not when the guest loaded it: a guest that
rewrites a descriptor and does not reload the register would see a different base here.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Mapping

from unicorn import Uc
from unicorn import x86_const as ux

from ..errors import HvmioError
from ..fields import SEGMENTS
from ..machine import REGISTER_NAMES, REGISTERS, Segment
from .uc_api import registers, table_register

CR0_PE = 1 << 0
EFER = 0xC000_0080
EFER_LMA = 1 << 10
_DESC_L = 1 << 5  # in byte 6 of a descriptor: bit 7 G, bit 6 D/B, bit 5 L, bit 4 AVL
_DESC_D = 1 << 6
_SELECTOR = {name: f"{name.lower()}.sel" for name in SEGMENTS}  # (an exit asks for CS's often)
_BASE = {name: f"base.{name}" for name in SEGMENTS}  # segment_base's cache keys
_REGISTER_SET = frozenset(REGISTERS)


def register_ids(wide: bool) -> dict[str, int]:
    """unicorn register ids for our names. Without long mode the 32-bit registers are the whole
    register and R8–R15 do not exist (they read 0 here)."""
    ids = {f"{seg.lower()}.sel": getattr(ux, f"UC_X86_REG_{seg}") for seg in SEGMENTS}
    ids |= {"fs.base": ux.UC_X86_REG_FS_BASE, "gs.base": ux.UC_X86_REG_GS_BASE,
            "cr0": ux.UC_X86_REG_CR0}  # fmt: skip
    for name in REGISTERS:
        if name == "rflags":
            ids[name] = ux.UC_X86_REG_EFLAGS
        elif name[1:].isdigit():
            if wide:
                ids[name] = getattr(ux, f"UC_X86_REG_{name.upper()}")
        else:
            ids[name] = getattr(ux, f"UC_X86_REG_{('R' if wide else 'E') + name[1:].upper()}")
    return ids


class Before(Mapping):
    """Register values as they were at a ``UnicornCpu.mark()``, for a state diff, without
    reading every register: a register not written since the mark still has its value, so it
    is read only if asked for. When the guest runs again (``sync``) a live mark reads and
    keeps every value."""

    def __init__(self, cpu: UnicornCpu):
        self._cpu = cpu
        self.old: dict[str, int] = {}  # value before the first write since the mark
        self._frozen: dict[str, int] | None = None

    def __getitem__(self, name: str) -> int:
        if self._frozen is not None:
            return self._frozen[name]
        if name in self.old:
            return self.old[name]
        if name not in REGISTER_NAMES:
            raise KeyError(name)
        return self._cpu.value(name)

    def __iter__(self) -> Iterator[str]:
        return iter(REGISTER_NAMES)

    def __len__(self) -> int:
        return len(REGISTER_NAMES)

    def written(self) -> set[str] | None:
        """Names written since the mark, or None once frozen (then compare everything)."""
        return set(self.old) if self._frozen is None else None

    def freeze(self) -> None:
        if self._frozen is None:
            self._frozen = {name: self[name] for name in REGISTER_NAMES}


class UnicornCpu:
    """Registers of a unicorn x86 CPU as attributes (``rax`` … ``rflags``, ``cr0``, and the
    selectors by their ``register_values`` names: ``getattr(cpu, "cs.sel")``), plus segments.

    ``start_mode`` is the mode unicorn was started in: 64 for a long-mode guest (taken to stay
    in long mode), otherwise the guest may switch between real and protected mode and
    ``mode`` follows it. ``width`` is the mask of a whole register: 64 bits in long mode, else
    32.
    """

    # Everything but the registers is a slot; the __dict__ is the register cache (its keys are
    # register_values names, e.g. "rax", "cs.sel", and "desc.N" for descriptors): a register not
    # in it is read from unicorn by its _Register, and a write goes through __setattr__.
    __slots__ = ("__dict__", "_batch", "_cache", "_dirty", "_ids", "_marks", "_readers", "_table",
                 "memory", "reg_read", "reg_write", "start_mode", "uc", "width")  # fmt: skip

    def __init__(self, uc: Uc, start_mode: int, memory: bytearray):
        own = object.__setattr__
        own(self, "uc", uc)
        own(self, "start_mode", start_mode)
        own(self, "memory", memory)
        own(self, "_ids", register_ids(start_mode == 64))
        read, write, batch = registers(uc)
        own(self, "reg_read", read)
        own(self, "reg_write", write)
        own(self, "_batch", batch)
        own(self, "_table", table_register(uc))
        own(self, "_readers", {})  # read's, made once
        own(self, "_cache", self.__dict__)
        own(self, "_dirty", set())
        own(self, "width", (1 << 64) - 1 if start_mode == 64 else 0xFFFF_FFFF)
        own(self, "_marks", [])  # snapshots taken since the last sync (weak references)

    def __setattr__(self, name: str, value: int) -> None:
        """``cpu.rax = value`` (or a selector, ``cs.sel``): kept, masked to the register's width,
        until ``sync``; a live snapshot notes the old value first. The cpu's own slots are set
        as any attribute."""
        if name in self._ids:  # a register (never one of the slots)
            for ref in self._marks:
                mark = ref()
                if mark is not None and name not in mark.old:
                    mark.old[name] = self._get(name)
            self._cache[name] = value & self.width
            self._dirty.add(name)
        elif name in _SLOTS:
            object.__setattr__(self, name, value)
        elif name in _REGISTER_SET:
            raise HvmioError(f"{name} does not exist outside 64-bit mode")
        else:
            raise AttributeError(f"{type(self).__name__!r} object has no register {name!r}")

    def _get(self, name: str) -> int:
        value = self._cache.get(name)
        if value is None:
            uc_id = self._ids.get(name)
            value = self._cache[name] = 0 if uc_id is None else self.reg_read(uc_id)
        return value

    def written(self) -> set[str]:
        """Registers written since the last ``sync`` (and not yet sent to unicorn)."""
        return self._dirty

    def forget(self) -> None:
        """Drop cached and written values: unicorn itself is about to make the same ones."""
        self._dirty.clear()
        self._cache.clear()

    def write_now(self, values: list[tuple[str, int]]) -> None:
        """Write registers to unicorn at once, from inside a hook, for the instruction unicorn
        is in the middle of (not kept for ``sync``)."""
        for name, value in values:
            self.reg_write(self._ids[name], value)

    def read(self, names: tuple[str, ...]) -> None:
        """Read these registers into the cache now, in one call to unicorn."""
        cache = self._cache
        if cache:
            names = tuple(name for name in names if name not in cache)
        reader = self._readers.get(names)
        if reader is None:
            reader = self._readers[names] = self.reader(names)
        reader()

    def reader(self, names: tuple[str, ...]) -> Callable[[], None]:
        """A function that reads these registers into the (empty) cache in one call to unicorn:
        what a VM exit calls every time, worked out once."""
        cache, ids = self._cache, self._ids
        known = tuple(name for name in names if name in ids)
        reg_ids = tuple(ids[name] for name in known)
        absent = dict.fromkeys((name for name in names if name not in ids), 0)  # R8-R15, 32 bits
        if len(known) == 1:
            (name,), (reg,), read = known, reg_ids, self.reg_read

            def read_one() -> None:
                cache[name] = read(reg)
                cache.update(absent)

            return read_one
        read_batch = self._batch(reg_ids) if reg_ids else tuple

        def read_all() -> None:
            # one value per name by construction; strict= would parse a keyword every exit
            cache.update(zip(known, read_batch()))  # noqa: B905
            cache.update(absent)

        return read_all

    def keep(self, names: tuple[str, ...]) -> None:
        """Write these cached values back at the next ``sync`` (they were read before an
        instruction that unicorn then ran, and must be put back as they were)."""
        self._dirty.update(names)

    def sync(self, skip_rip: bool = False) -> None:
        """Write changed registers to unicorn and forget the rest: the guest is about to run.
        With ``skip_rip``, RIP is left to ``emu_start``'s begin address, which sets it."""
        for ref in self._marks:
            mark = ref()
            if mark is not None:  # a snapshot kept across guest execution: read it all now
                mark.freeze()
        self._marks.clear()
        write = self.reg_write
        for name in self._dirty:
            if not (skip_rip and name == "rip"):
                write(self._ids[name], self._cache[name])
        self._dirty.clear()
        self._cache.clear()

    def mark(self) -> Before:
        """Start remembering old values of what gets written (a snapshot's registers)."""
        before = Before(self)
        self._marks.append(weakref.ref(before))
        return before

    def value(self, name: str) -> int:
        """A register by its ``register_values`` name: ``rax``, ``cs.sel``, ``cs.base`` …"""
        if name.endswith(".base"):
            return self.segment_base(name[:2].upper())
        return self._get(name)

    # ------------------------------------------------------------------ modes and segments

    # (CR0 and the selectors have a _Register each, as RAX has: once read in an exit,
    # ``self.cr0`` and ``getattr(self, "cs.sel")`` are plain attribute reads, no Python call)

    @property
    def mode(self) -> int:
        """The code size the CPU runs with now: 16, 32 or 64 (CS's D and L bits, CR0.PE)."""
        if self.start_mode == 64:
            return 64
        if not self.cr0 & CR0_PE:
            return 16
        selector = getattr(self, "cs.sel")
        if selector & ~3 == 0:
            return self.start_mode
        flags = self._descriptor(selector)[1]
        if flags & _DESC_L and self.uc.reg_read(ux.UC_X86_REG_MSR, EFER) & EFER_LMA:
            return 64
        return 32 if flags & _DESC_D else 16

    def segment(self, name: str) -> Segment:
        return Segment(getattr(self, _SELECTOR[name]), self.segment_base(name))

    def segment_base(self, name: str) -> int:
        """The base by the rules above, worked out once an exit and kept in the cache with the
        registers: a string exit asks for CS's (the record, the fetch) and ES's (the store,
        the element unicorn stores) twice each."""
        key = _BASE[name]
        base = self._cache.get(key)
        if base is None:
            if self.start_mode == 64:
                base = self._get(f"{name.lower()}.base") if name in ("FS", "GS") else 0
            else:
                selector = getattr(self, _SELECTOR[name])
                if not self.cr0 & CR0_PE:
                    base = selector << 4
                elif selector & ~3 == 0:
                    base = 0
                else:
                    base = self._descriptor(selector)[0]
            self._cache[key] = base
        return base

    def _descriptor(self, selector: int) -> tuple[int, int]:
        """(base, byte 6) of the descriptor ``selector`` names, read from guest memory."""
        key = f"desc.{selector}"
        cached = self._cache.get(key)
        if cached is None:
            table = ux.UC_X86_REG_LDTR if selector & 4 else ux.UC_X86_REG_GDTR
            table_base, limit = self._table(table)
            offset = selector & ~7
            if offset + 7 > limit or table_base + offset + 8 > len(self.memory):
                raise HvmioError(f"selector {selector:#x} lies outside its descriptor table "
                                 f"(base {table_base:#x}, limit {limit:#x})")  # fmt: skip
            d = self.memory[table_base + offset : table_base + offset + 8]
            base = d[2] | d[3] << 8 | d[4] << 16 | d[7] << 24
            cached = self._cache[key] = (base << 8) | (d[6] & 0xF0)
        return cached >> 8, cached & 0xFF

    def set_segment(self, name: str, selector: int, base: int) -> None:
        """Load a selector; unicorn works the base out itself, as the CPU would."""
        key = f"{name.lower()}.base"
        for ref in self._marks:
            mark = ref()
            if mark is not None:
                mark.old.setdefault(key, self.segment_base(name))
        setattr(self, f"{name.lower()}.sel", selector)
        self._cache.pop(_BASE[name], None)  # a new selector: its base is worked out afresh


class _Register:
    """``cpu.rax`` and the rest, the first time in an exit: read from unicorn into the cache.
    After that the instance's __dict__ holds the value, and it wins over this descriptor (one
    without ``__set__``), so the read is a plain attribute."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __get__(self, cpu: UnicornCpu | None, owner: type | None = None) -> int | _Register:
        return self if cpu is None else cpu._get(self.name)


for _name in (*REGISTERS, *_SELECTOR.values(), "cr0"):
    setattr(UnicornCpu, _name, _Register(_name))
_SLOTS = frozenset(UnicornCpu.__slots__)
