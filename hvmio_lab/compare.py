"""One exit down two paths, on twin machines, side by side.

``both_paths`` builds two identical machines (the same code at RIP, the same registers, the
same devices), runs the same guest step on each with a different path, and reports the two
``Outcome``s, whether the two ``IoAccess``es agree, and every way the machines differ
afterwards. For "fast" against "emulate" the answer should always be "no difference": that is
the invariant that makes the fast path sound. For "seed2010" against "fast" the differences
are the 2010 patch's defects.

Machines are compared by what a guest or a device could observe: registers (segments
included), guest memory, not-present pages, the virtual clock and the device accesses on the
bus. Text only; no Jupyter here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .hypervisor import Hypervisor
from .machine import REGISTERS, Machine, changed_ranges, register_values
from .outcome import STAGES, Outcome

CODE_AT = 0x1000  # where both_paths puts the code, unless told otherwise

Setup = Callable[[Machine], object]
Script = Callable[[Hypervisor], Outcome]


def machine_differences(a: Machine, b: Machine) -> tuple[str, ...]:
    """Every observable way ``a`` and ``b`` differ, one line each; empty when they are equal."""
    out = []
    if a.mode != b.mode:
        out.append(f"mode: {a.mode} vs {b.mode}")
    ra, rb = register_values(a.cpu), register_values(b.cpu)
    out += [f"{name}: {ra[name]:#x} vs {rb[name]:#x}" for name in ra if ra[name] != rb[name]]
    out += _memory_differences(bytes(a.memory.data), bytes(b.memory.data))
    if a.memory.not_present != b.memory.not_present:
        out.append("not-present pages differ: "
                   f"{_pages(a.memory.not_present)} vs {_pages(b.memory.not_present)}")  # fmt: skip
    if a.clock.ns != b.clock.ns:
        out.append(f"clock: {a.clock.ns} ns vs {b.clock.ns} ns")
    log_a, log_b = a.bus.log, b.bus.log
    for i in range(max(len(log_a), len(log_b))):
        ea = log_a[i] if i < len(log_a) else None
        eb = log_b[i] if i < len(log_b) else None
        if ea != eb:
            out.append(f"device access {i + 1}: {ea or '(none)'} vs {eb or '(none)'}")
    return tuple(out)


def _pages(pages: set[int]) -> str:
    return "{" + ", ".join(f"{p * 4096:#x}" for p in sorted(pages)) + "}"


def _memory_differences(a: bytes, b: bytes, limit: int = 4) -> list[str]:
    if a == b:
        return []
    if len(a) != len(b):
        return [f"memory size: {len(a)} vs {len(b)} bytes"]
    return [
        f"memory {c.address:#x}+{len(c.after)}: {c.before[:8].hex(' ')} vs {c.after[:8].hex(' ')}"
        + (" …" if len(c.after) > 8 else "")
        for c in changed_ranges(a, b)[:limit]
    ]


def _record(outcome: Outcome) -> str:
    exit = outcome.exit
    if exit.vendor == "svm":
        return f"EXITINFO1 {exit.exitinfo1:#x}, EXITINFO2 {exit.exitinfo2:#x}"
    info = "" if exit.instruction_info is None else f", info {exit.instruction_info:#x}"
    return f"qualification {exit.qualification:#x}, length {exit.instruction_length}{info}"


def _instruction(outcome: Outcome) -> str:
    if outcome.instruction is None:
        return "not read"
    insn = outcome.instruction
    return f"{insn.text} ({insn.code.hex(' ')})" if insn.code else insn.text


@dataclass(frozen=True, repr=False)
class Comparison:
    """The same guest step run down two paths on twin machines."""

    paths: tuple[str, str]
    outcomes: tuple[Outcome, Outcome]
    machines: tuple[Machine, Machine]
    differences: tuple[str, ...]

    @property
    def same_machine(self) -> bool:
        """True when nothing a guest or device could observe differs."""
        return not self.differences

    @property
    def accesses_agree(self) -> bool:
        """Both paths worked out an access, and the two agree wherever both know a field."""
        a, b = (o.access for o in self.outcomes)
        return a is not None and b is not None and a.agrees_with(b)

    def rows(self) -> list[tuple[str, str, str]]:
        """(what, left, right) rows: the record, the access, the bytes read, the changes."""
        left, right = self.outcomes

        def row(what: str, f: Callable[[Outcome], object]) -> tuple[str, str, str]:
            return what, str(f(left)), str(f(right))

        rows = [
            row("path taken", lambda o: o.path),
            row("exit record", _record),
            row("access", lambda o: o.access if o.access is not None else "—"),
            row("instruction bytes", _instruction),
            row("fault injected", _fault),
        ]
        if left.request is not None or right.request is not None:
            rows.append(row("device model", _round_trip))
        if left.reemulated or right.reemulated:
            rows.append(row("re-emulated", lambda o: "yes" if o.reemulated else "no"))
        names = []
        for o in self.outcomes:
            for name, _, _ in o.diff.registers if o.diff else ():
                if name not in names:
                    names.append(name)
        for name in names:
            rows.append(row(name, lambda o, n=name: _change(o, n)))
        events = [o.diff.events if o.diff else () for o in self.outcomes]
        for i in range(max(map(len, events))):
            cells = [str(e[i]) if i < len(e) else "—" for e in events]
            rows.append((f"device access {i + 1}", *cells))
        memory = [o.diff.memory if o.diff else () for o in self.outcomes]
        for i in range(max(map(len, memory))):
            cells = [f"{m[i].address:#x}+{len(m[i].after)}: {m[i].after[:8].hex(' ')}"
                     if i < len(m) else "—" for m in memory]  # fmt: skip
            rows.append((f"memory {i + 1}", *cells))
        return rows

    def lines(self) -> list[str]:
        rows = [("", *self.paths), *self.rows()]
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        out = [f"{a:<{w0}}  {b:<{w1}}  {c}".rstrip() for a, b, c in rows]
        out.insert(1, "-" * len(max(out, key=len)))
        verdict = "the same" if self.same_machine else "DIFFERENT"
        out.append("")
        out.append(f"machines afterwards: {verdict}; accesses agree: "
                   f"{'yes' if self.accesses_agree else 'no'}")  # fmt: skip
        out += [f"  {d}" for d in self.differences]
        return out

    def stage_lines(self) -> list[str]:
        """Per-stage times in ns for both paths (they vary from run to run)."""
        stages = [o.stages or {} for o in self.outcomes]
        names = [s for s in STAGES if any(s in st for st in stages)]
        out = [f"{'stage':<10} {self.paths[0]:>10} {self.paths[1]:>10}"]
        for name in names:
            cells = [f"{st[name]:>10,}" if name in st else f"{'—':>10}" for st in stages]
            out.append(f"{name:<10} {cells[0]} {cells[1]}")
        totals = [f"{o.total_ns:>10,}" for o in self.outcomes]
        out.append(f"{'total ns':<10} {totals[0]} {totals[1]}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def __repr__(self) -> str:
        verdict = "same machine" if self.same_machine else f"{len(self.differences)} differences"
        return f"<Comparison {self.paths[0]} vs {self.paths[1]}: {verdict}>"

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(str(self))


def _fault(outcome: Outcome) -> str:
    fault = outcome.fault
    return "none" if fault is None else f"{fault.vector} at RIP {fault.rip:#x}"


def _round_trip(outcome: Outcome) -> str:
    return "—" if outcome.request is None else "request + completion"


def _change(outcome: Outcome, name: str) -> str:
    change = outcome.diff.register(name) if outcome.diff else None
    return "unchanged" if change is None else f"{change[0]:#x} → {change[1]:#x}"


def _one_step(hv: Hypervisor) -> Outcome:
    return hv.step()


def both_paths(
    code: bytes,
    mode: int = 64,
    vendor: str = "svm",
    *,
    paths: tuple[str, str] = ("fast", "emulate"),
    setup: Setup | None = None,
    script: Script | None = None,
    rip: int = CODE_AT,
    **registers: int,
) -> Comparison:
    """Run the same guest step down ``paths[0]`` and ``paths[1]`` on twin PC machines.

    Each twin is ``Machine.pc(mode)`` with ``code`` at CS:RIP = ``rip`` and the given
    registers (``rax=…, rdx=…``); ``setup(machine)`` then runs on each, so it must do the same
    thing both times. ``script(hypervisor)`` runs the exits and returns the outcome to show
    (default: one ``step()``).
    """
    if len(paths) != 2:
        raise ValueError(f"paths must name two paths, got {paths!r}")
    outcomes, machines = [], []
    for path in paths:
        machine = Machine.pc(mode)
        machine.memory.write(machine.linear("CS", rip), code)
        machine.cpu.rip = rip
        for name, value in registers.items():
            if name not in REGISTERS:
                raise ValueError(f"no register named {name!r}; there are {', '.join(REGISTERS)}")
            setattr(machine.cpu, name, value)
        if setup is not None:
            setup(machine)
        hv = Hypervisor(machine, vendor, path)
        outcomes.append((script or _one_step)(hv))
        machines.append(machine)
    return Comparison(
        (paths[0], paths[1]),
        (outcomes[0], outcomes[1]),
        (machines[0], machines[1]),
        machine_differences(machines[0], machines[1]),
    )
