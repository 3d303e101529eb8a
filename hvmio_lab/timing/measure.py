"""Measured: time both paths stage by stage on this machine, interleaved.

``measure`` runs a guest program on unicorn, or a model-only stream of pre-built exit records,
down each vendor and path *interleaved* (A B A B …, so drift in the machine's speed hits every
path alike) and returns a tidy ``Table``: one row per exit, per stage, per path. These are
nanoseconds of *this Python model*, not of any hypervisor.
"""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

from ..hardware import intercept
from ..hypervisor import Hypervisor
from ..machine import Machine
from ..outcome import STAGES, Outcome


@dataclass(frozen=True)
class Stream:
    """A model-only workload: one I/O instruction, the registers it needs, and what it shows."""

    title: str
    code: bytes
    registers: tuple[tuple[str, int], ...]


# Each exit record is built once by the hardware model; every exit restores these registers
# (RIP first among them) so the same record stays true.
STREAMS = MappingProxyType({
    "pm_timer": Stream("in eax, dx from the PM timer (0x1F48, in the hypervisor)",
                       b"\xed", (("rdx", 0x1F48),)),
    "uart_lsr": Stream("in al, dx from the UART LSR (0x3FD, device model)",
                       b"\xec", (("rdx", 0x3FD),)),
    "ata_rep_insw": Stream("rep insw, 8 words from the ATA data port (0x1F0, device model)",
                           b"\xf3\x66\x6d", (("rdx", 0x1F0), ("rcx", 8), ("rdi", 0x20000))),
})  # fmt: skip
_STREAM_CODE_AT = 0x1000


class Sample(NamedTuple):
    """One stage of one exit: the row of a tidy table."""

    workload: str
    vendor: str
    path: str  # the path asked for
    taken: str  # the path actually taken ("fast" declines string I/O to "emulate")
    exit: int  # index of the exit within its (vendor, path) run
    stage: str
    ns: int


@dataclass(frozen=True)
class Table:
    """Immutable tidy rows (``Sample``) with the few summaries the chapter needs.

    ``rows`` converts to anything: ``[s._asdict() for s in table]`` is a list of dicts, and
    ``pandas.DataFrame(table.rows)`` a frame, if pandas is around.
    """

    rows: tuple[Sample, ...]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __repr__(self) -> str:
        runs = sorted({(s.vendor, s.path) for s in self.rows})
        exits = len({(s.vendor, s.path, s.exit) for s in self.rows})
        workloads = ", ".join(sorted({s.workload for s in self.rows})) or "nothing"
        return f"Table({len(self.rows)} samples, {exits} exits of {workloads}, runs {runs})"

    def where(self, **match: Any) -> Table:
        """Rows whose fields equal the given values, e.g. ``where(vendor="svm")``."""
        return Table(
            tuple(s for s in self.rows if all(getattr(s, k) == v for k, v in match.items()))
        )

    def runs(self) -> list[tuple[str, str]]:
        """(vendor, path) pairs in first-seen order."""
        return list(dict.fromkeys((s.vendor, s.path) for s in self.rows))

    def stages(self) -> list[str]:
        seen = {s.stage for s in self.rows}
        return [st for st in STAGES if st in seen] + sorted(seen - set(STAGES))

    def exit_totals(self) -> dict[tuple[str, str], list[int]]:
        """Total ns of each exit, per (vendor, path)."""
        totals: dict[tuple[str, str], dict[int, int]] = {}
        for s in self.rows:
            run = totals.setdefault((s.vendor, s.path), {})
            run[s.exit] = run.get(s.exit, 0) + s.ns
        return {run: list(by_exit.values()) for run, by_exit in totals.items()}

    def stage_medians(self) -> dict[str, dict[str, float]]:
        """Median ns of each stage per ``"vendor/path"``; an exit without the stage counts 0."""
        out = {}
        for vendor, path in self.runs():
            per_exit: dict[int, dict[str, int]] = {}
            for s in self.rows:
                if (s.vendor, s.path) == (vendor, path):
                    stages = per_exit.setdefault(s.exit, {})
                    stages[s.stage] = stages.get(s.stage, 0) + s.ns
            out[f"{vendor}/{path}"] = {
                st: statistics.median(e.get(st, 0) for e in per_exit.values())
                for st in self.stages()
            }
        return out

    def ratio(self, vendor: str, fast: str = "fast", slow: str = "emulate") -> float:
        """Median exit time of ``fast`` over that of ``slow``: the seed's "66 %" for us."""
        totals = self.exit_totals()
        return statistics.median(totals[(vendor, fast)]) / statistics.median(totals[(vendor, slow)])

    def summary(self) -> str:
        """Median ns per stage and per exit, one line per run."""
        stages = self.stages()
        lines = [f"{'run':<14}" + "".join(f"{st:>10}" for st in stages) + f"{'total':>10}"]
        totals = self.exit_totals()
        for label, medians in self.stage_medians().items():
            total = statistics.median(totals[tuple(label.split("/"))])
            lines.append(f"{label:<14}" + "".join(f"{medians[st]:>10,.0f}" for st in stages)
                         + f"{total:>10,.0f}")  # fmt: skip
        return "\n".join(lines) + "\n(median ns per exit; 'total' is the median of per-exit totals)"


class StreamRunner:
    """Pre-built exit records handled over and over on one machine with the PC devices."""

    def __init__(self, names: Sequence[str], vendor: str, path: str, recording: bool,
                 timed: bool | None = None):  # fmt: skip
        self.machine = machine = Machine.pc(64)
        self.records = []
        for i, name in enumerate(names):
            stream = STREAMS[name]
            rip = _STREAM_CODE_AT + 16 * i
            machine.memory.write(rip, stream.code)
            registers = (("rip", rip), *stream.registers)
            self._load(registers)
            self.records.append((intercept(machine, vendor), registers))
        self.hypervisor = Hypervisor(machine, vendor, path, recording=recording, timed=timed)
        self.count = 0

    def _load(self, registers) -> None:
        cpu = self.machine.cpu
        for name, value in registers:
            setattr(cpu, name, value)

    def step(self) -> Outcome:
        record, registers = self.records[self.count % len(self.records)]
        self.count += 1
        self._load(registers)
        return self.hypervisor.handle(record)


class GuestRunner:
    """A guest program on unicorn, started again whenever it halts."""

    def __init__(self, program: str, vendor: str, path: str, recording: bool,
                 timed: bool | None = None):  # fmt: skip
        from ..guest import Guest  # unicorn is loaded only when a guest is measured

        self.guest = Guest(program, vendor, path, recording=recording, timed=timed)

    def step(self) -> Outcome:
        outcome = self.guest.step()
        if outcome is None:
            self.guest.reset()
            outcome = self.guest.step()
        self.guest.outcomes.clear()  # measure keeps what it needs; do not hoard outcomes
        return outcome


def workloads() -> list[str]:
    """What ``measure`` accepts: guest program names and model-only stream names."""
    from ..guest import programs

    return [*programs(), *STREAMS]


def runner(workload: str | Sequence[str], vendor: str, path: str, recording: bool = True,
           timed: bool | None = None):  # fmt: skip
    if isinstance(workload, str) and workload not in STREAMS:
        return GuestRunner(workload, vendor, path, recording, timed)
    names = [workload] if isinstance(workload, str) else list(workload)
    unknown = [n for n in names if n not in STREAMS]
    if unknown or not names:
        raise ValueError(f"unknown model-only stream(s) {unknown}; there are: {', '.join(STREAMS)}")
    return StreamRunner(names, vendor, path, recording, timed)


def measure(
    workload: str | Sequence[str],
    vendors: Iterable[str] = ("svm", "vmx"),
    paths: Iterable[str] = ("fast", "emulate"),
    exits: int = 100,
    warmup: int = 5,
    progress: bool = False,
) -> Table:
    """Time ``exits`` exits of ``workload`` per vendor and path, stage by stage.

    ``workload`` is a guest program (``"port_hammer"``, ``"ata_read"`` …, run on unicorn and
    restarted when it halts) or a model-only stream from ``STREAMS`` (or a list of them,
    taken in turn), whose pre-built records go straight to ``Hypervisor.handle``. The runs
    take turns exit by exit, so a slower moment of the machine is shared by all of them.
    ``warmup`` exits per run are taken first and dropped (cold caches). With a guest, the
    ``exit`` stage is the hardware model building the record (capstone); with a stream it is
    nearly nothing, as the record is pre-built.

    The runs are timed but not recorded: a state diff would copy all of guest memory at
    every exit and leave the caches cold for the stages being timed. The stopwatch itself
    still costs a little per stage, so per-exit totals here run above an unrecorded
    throughput run (``bench/bench_paths.py``).
    """
    if exits < 1:
        raise ValueError(f"exits must be at least 1, got {exits}")
    runs = [(v, p) for v in vendors for p in paths]
    if not runs:
        raise ValueError("give at least one vendor and one path")
    runners = [runner(workload, v, p, recording=False, timed=True) for v, p in runs]
    name = workload if isinstance(workload, str) else "+".join(workload)
    for _ in range(warmup):
        for each in runners:
            each.step()
    rounds: Iterable[int] = range(exits)
    if progress:
        from tqdm.auto import tqdm  # only for a person watching; the core does not need it

        rounds = tqdm(rounds, desc=f"measure {name}", unit="round")
    rows: list[Sample] = []
    for i in rounds:
        for (vendor, path), each in zip(runs, runners, strict=True):
            outcome = each.step()
            for stage, ns in (outcome.stages or {}).items():
                rows.append(Sample(name, vendor, path, outcome.path, i, stage, ns))
    return Table(tuple(rows))


def machine_info() -> dict[str, Any]:
    """Which machine a measured figure comes from, to print beside it."""
    processor = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            processor = next(
                (ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")),
                processor,
            )
    except OSError:
        pass
    return {
        "processor": processor,
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "system": platform.system(),
    }


def machine_label(info: Mapping[str, Any]) -> str:
    return f"{info['processor']}, {info['cores']} cores, {info['python']}"
