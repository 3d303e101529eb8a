"""Timing: measure both paths stage by stage, and a cycle cost model with a source per number.

Two halves, kept apart on purpose:

- **measured**: ``measure`` runs a guest program on unicorn, or a model-only stream of
  pre-built exit records, down each vendor and path *interleaved* (A B A B …, so drift in the
  machine's speed hits every path alike) and returns a tidy ``Table``: one row per exit, per
  stage, per path. These are nanoseconds of *this Python model*, not of any hypervisor.
- **modelled**: ``predict`` prices one exit per path in cycles from a profile in
  ``data/cost_models.json``. Every number there has a ``source`` or an ``assumed`` note; the
  ones fitted to the seed's 66 % say so. It is a model: bare-metal figures for modern CPUs
  were not found (IO_EXITS.md §6).

The lesson both halves teach is Amdahl's law: the fast path saves fetch + decode only. Exit
and entry, the device, the device-model round trip and the guest's own work are not saved.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from . import resources
from .hardware import intercept
from .hypervisor import Hypervisor
from .machine import Machine
from .outcome import STAGES, Outcome

COST_MODELS = resources.data("cost_models.json")
BENCH_RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results" / "paths.json"
MODEL_STAGES = (
    "exit_entry", "record_read", "fetch", "decode",
    "device_handler", "device_model_round_trip", "writeback",
)  # fmt: skip
MODEL_PATHS = ("fast", "emulate")
DEFAULT_PROFILE = "amd-k8-2010"

# -- measured ------------------------------------------------------------------------------


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
        from .guest import Guest  # unicorn is loaded only when a guest is measured

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
    from .guest import programs

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


# -- modelled ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quantity:
    """A number from the cost model with where it comes from: a source, or an assumption."""

    value: Any
    source: str = ""
    assumed: str = ""
    calibrated: bool = False

    @property
    def note(self) -> str:
        return self.source or self.assumed

    @property
    def kind(self) -> str:
        return "calibrated" if self.calibrated else ("source" if self.source else "assumed")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Quantity:
        return cls(data["value"], data.get("source", ""), data.get("assumed", ""),
                   bool(data.get("calibrated", False)))  # fmt: skip


@dataclass(frozen=True)
class Profile:
    """Cycle costs of each stage of one exit on one (modelled) machine."""

    name: str
    title: str
    clock_hz: float
    stages: Mapping[str, float]
    notes: Mapping[str, Quantity] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        missing = [s for s in MODEL_STAGES if s not in self.stages]
        if missing:
            raise ValueError(f"profile {self.name!r} lacks stage(s) {missing}")
        bad = {s: c for s, c in self.stages.items() if not isinstance(c, int | float) or c < 0}
        if bad:
            raise ValueError(f"profile {self.name!r}: stage costs must be cycles ≥ 0, got {bad}")
        object.__setattr__(self, "stages", MappingProxyType(dict(self.stages)))

    def describe(self, width: int = 100) -> str:
        """One line per stage: cycles, where the number comes from, and the start of its note
        (``notes[stage].note`` has all of it). An edited stage says so."""
        lines = [self.title, f"{'stage':<25}{'cycles':>14}  {'from':<11}note"]
        for stage in (*MODEL_STAGES, "clock_hz"):
            value = self.clock_hz if stage == "clock_hz" else self.stages[stage]
            q = self.notes.get(stage)
            edited = q is None or q.value != value
            kind, note = ("edited", "") if edited else (q.kind, q.note)
            head = f"{stage:<25}{value:>14,.0f}  {kind:<11}"
            room = max(width - len(head), 10)
            lines.append((head + (note if len(note) <= room else note[: room - 1] + "…")).rstrip())
        return "\n".join(lines)

    def with_stages(self, **cycles: float) -> Profile:
        """A copy with some stage costs changed (what a slider does)."""
        unknown = set(cycles) - set(MODEL_STAGES)
        if unknown:
            raise ValueError(f"no stage(s) {sorted(unknown)}; the stages are {MODEL_STAGES}")
        return replace(self, title=f"{self.title} (edited)", stages={**self.stages, **cycles})


@dataclass(frozen=True)
class Mix:
    """What a workload's exits are: the fraction per device location, string or not, and the
    guest's own work (cycles) between two exits. The four fractions add up to 1."""

    hypervisor: float = 1.0
    hypervisor_string: float = 0.0
    device_model: float = 0.0
    device_model_string: float = 0.0
    guest_cycles: float = 0.0

    def __post_init__(self) -> None:
        shares = (self.hypervisor, self.hypervisor_string, self.device_model,
                  self.device_model_string)  # fmt: skip
        if any(s < 0 for s in shares) or abs(sum(shares) - 1) > 1e-9:
            raise ValueError(f"the four exit fractions must be ≥ 0 and add up to 1, got {shares}")
        if self.guest_cycles < 0:
            raise ValueError(f"guest_cycles must be ≥ 0, got {self.guest_cycles}")

    @classmethod
    def of(cls, eligible: float = 1.0, device_model: float = 0.0, guest_cycles: float = 0.0) -> Mix:
        """From two shares taken as independent: non-string (fast-path eligible) exits, and
        exits to the device model."""
        for name, share in (("eligible", eligible), ("device_model", device_model)):
            if not 0 <= share <= 1:
                raise ValueError(f"{name} must be a fraction in 0..1, got {share}")
        h, d = 1 - device_model, device_model
        return cls(h * eligible, h * (1 - eligible), d * eligible, d * (1 - eligible), guest_cycles)

    @property
    def eligible(self) -> float:
        return self.hypervisor + self.device_model

    @property
    def device_model_share(self) -> float:
        return self.device_model + self.device_model_string


@dataclass(frozen=True)
class Prediction:
    """Cycles per exit, per path and stage ("guest" is the guest's work between exits)."""

    profile: str
    mix: Mix
    stages: Mapping[str, Mapping[str, float]]

    @property
    def cycles(self) -> dict[str, float]:
        """Per path: everything one exit costs, guest work between exits included."""
        return {p: sum(s.values()) for p, s in self.stages.items()}

    @property
    def intercept_cycles(self) -> dict[str, float]:
        """Per path: the exit alone, as the seed's port-hammer timed it."""
        return {p: sum(c for st, c in s.items() if st != "guest") for p, s in self.stages.items()}

    @property
    def intercept_ratio(self) -> float:
        """Fast-path intercept time as a fraction of the emulator's (the seed's 66 %)."""
        t = self.intercept_cycles
        return t["fast"] / t["emulate"]

    @property
    def speedup(self) -> float:
        """Whole-workload speedup of the fast path: emulate time / fast time."""
        t = self.cycles
        return t["emulate"] / t["fast"]

    @property
    def gain(self) -> float:
        """How much faster the workload runs ("4-5 % faster"): speedup − 1."""
        return self.speedup - 1


def predict(profile: Profile | str, mix: Mix | str = "port_hammer") -> Prediction:
    """Cycles per exit on each path for ``profile`` and ``mix`` (a ``Mix`` or a workload name).

    Both paths pay exit/entry, the record read, the device (handler or device-model round
    trip) and writeback. The emulator also pays fetch + decode on every exit; the fast path
    only on string exits, which it declines.
    """
    profile = load_profile(profile) if isinstance(profile, str) else profile
    if isinstance(mix, str):
        mix = workload_mix(mix, profile)
    c = profile.stages
    string = mix.hypervisor_string + mix.device_model_string
    stages = {}
    for path in MODEL_PATHS:
        emulated = 1.0 if path == "emulate" else string
        stages[path] = MappingProxyType({
            "exit_entry": c["exit_entry"],
            "record_read": c["record_read"],
            "fetch": emulated * c["fetch"],
            "decode": emulated * c["decode"],
            "device_handler": (1 - mix.device_model_share) * c["device_handler"],
            "device_model_round_trip": mix.device_model_share * c["device_model_round_trip"],
            "writeback": c["writeback"],
            "guest": mix.guest_cycles,
        })  # fmt: skip
    return Prediction(profile.name, mix, MappingProxyType(stages))


def exit_entry_for_ratio(
    profile: Profile | str, ratio: float, mix: Mix | str = "port_hammer"
) -> float:
    """The exit/entry cost at which the fast path takes ``ratio`` of the emulator's intercept
    time (solve (X + a) / (X + a + s) = ratio for X, a and s from ``predict``)."""
    if not 0 < ratio < 1:
        raise ValueError(f"ratio must be between 0 and 1, got {ratio}")
    p = predict(profile, mix)
    x = p.stages["fast"]["exit_entry"]
    fast = p.intercept_cycles["fast"] - x
    saved = p.intercept_cycles["emulate"] - x - fast
    return ratio * saved / (1 - ratio) - fast


@cache
def _cost_models() -> dict:
    return json.loads(COST_MODELS.read_text())


def cost_models() -> dict:
    """The raw ``data/cost_models.json`` (a fresh copy: edit it freely)."""
    return json.loads(json.dumps(_cost_models()))


def profiles() -> list[str]:
    return list(_cost_models()["profiles"])


def load_profile(name: str = DEFAULT_PROFILE) -> Profile:
    data = _cost_models()["profiles"].get(name)
    if data is None:
        raise ValueError(f"no cost profile {name!r}; there are: {', '.join(profiles())}")
    notes = {s: Quantity.from_json(q) for s, q in data["stages"].items()}
    notes["clock_hz"] = Quantity.from_json(data["clock_hz"])
    stages = {s: q.value for s, q in notes.items() if s != "clock_hz"}
    return Profile(name, data["title"], data["clock_hz"]["value"], stages, MappingProxyType(notes))


def seed_workloads() -> list[str]:
    return list(_cost_models()["workloads"])


def workload_mix(name: str, profile: Profile | str = DEFAULT_PROFILE) -> Mix:
    """The ``Mix`` of a seed workload. A workload given as an exit rate gets its guest work
    from the profile's clock: clock / rate − the emulator's intercept cycles."""
    data = _cost_models()["workloads"].get(name)
    if data is None:
        raise ValueError(f"no workload {name!r}; there are: {', '.join(seed_workloads())}")
    mix = Mix(**data["mix"]["value"])
    if "exit_rate_hz" not in data:
        return replace(mix, guest_cycles=data["guest_cycles"]["value"])
    profile = load_profile(profile) if isinstance(profile, str) else profile
    period = profile.clock_hz / data["exit_rate_hz"]["value"]
    work = period - predict(profile, mix).intercept_cycles["emulate"]
    if work < 0:
        raise ValueError(f"{name}: at this exit rate the exits alone take longer than a second")
    return replace(mix, guest_cycles=work)


# -- the seed's table ----------------------------------------------------------------------


@dataclass(frozen=True)
class SeedRow:
    """One of the seed's three results beside the model's figure (and ours, if measured)."""

    workload: str
    title: str
    metric: str  # "intercept_ratio" or "gain"
    seed_text: str
    seed_range: tuple[float, float]
    model: float
    measured: float | None = None
    measured_note: str = ""

    @property
    def in_range(self) -> bool:
        lo, hi = self.seed_range
        return lo - 0.02 <= self.model <= hi + 0.02 if self.metric == "intercept_ratio" else (
            lo <= self.model <= hi)  # fmt: skip


def model_figure(prediction: Prediction, metric: str) -> float:
    return prediction.intercept_ratio if metric == "intercept_ratio" else prediction.gain


def seed_table(
    profile: Profile | str = DEFAULT_PROFILE,
    measured: Mapping[str, tuple[float, str]] | None = None,
) -> list[SeedRow]:
    """The seed's three results, the model's figure for each and, given ``measured``
    (workload → (figure, how it was measured)), ours."""
    profile = load_profile(profile) if isinstance(profile, str) else profile
    rows = []
    for name, data in _cost_models()["workloads"].items():
        seed = data["seed"]
        figure = model_figure(predict(profile, workload_mix(name, profile)), seed["metric"])
        got, note = (measured or {}).get(name, (None, ""))
        rows.append(SeedRow(name, data["title"], seed["metric"], seed["text"],
                            tuple(seed["range"]), figure, got, note))  # fmt: skip
    return rows


def format_figure(metric: str, value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1%}" if metric == "intercept_ratio" else f"{value:+.1%}"


def format_seed_table(rows: Sequence[SeedRow], profile: str = "") -> str:
    """The seed's table as text: a figure is a fast/emulate ratio (66 %) or a gain (+4.5 %)."""
    measured = any(r.measured is not None for r in rows)
    head = f"{'workload':<15}{'metric':<17}{'seed':>28}{'model':>9}"
    lines = [f"model profile: {profile}"] if profile else []
    lines.append(head + (f"{'measured':>10}" if measured else ""))
    for r in rows:
        metric = "fast/emulate" if r.metric == "intercept_ratio" else "speedup − 1"
        line = f"{r.workload:<15}{metric:<17}{r.seed_text:>28}{format_figure(r.metric, r.model):>9}"
        lines.append(line + (f"{format_figure(r.metric, r.measured):>10}" if measured else ""))
    notes = [f"  {r.workload}: {r.measured_note}" for r in rows if r.measured_note]
    return "\n".join(lines + (["measured:", *notes] if notes else []))


# -- bench results -------------------------------------------------------------------------


def load_bench(path: Path | str = BENCH_RESULTS) -> dict | None:
    """The figures ``bench/bench_paths.py`` wrote, or None if it has not been run."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None


def measured_seed_figures(
    bench: Mapping[str, Any], vendors: Sequence[str] = ("svm", "vmx")
) -> dict[str, tuple[float, str]]:
    """Our figures for the seed's three results, from a bench run with the guest on unicorn:
    the hammer as the fast/emulate time per exit; the other two as whole-run speedup − 1.
    The vendors' runs are pooled (their paths differ only in how the record is read), which
    halves the noise of a few-per-cent difference."""
    guest = bench["guest"]

    def seconds(program: str, path: str) -> float:
        return sum(guest[program][v][path]["seconds"] for v in vendors)

    def exits(program: str, path: str) -> int:
        return sum(guest[program][v][path]["exits"] for v in vendors)

    def gain(program: str) -> float:
        return seconds(program, "emulate") / seconds(program, "fast") - 1

    hammer = (seconds("port_hammer", "fast") / exits("port_hammer", "fast")) / (
        seconds("port_hammer", "emulate") / exits("port_hammer", "emulate")
    )
    load = bench.get("load_average", ["?"])[0]
    where = f"{'+'.join(vendors)}, unicorn guest, {machine_label(bench['machine'])}, load {load}"
    return {
        "port_hammer": (hammer, f"port_hammer, time per exit ({where})"),
        "ide_read": (gain("ata_read"), f"ata_read, whole run ({where})"),
        "pmtimer_heavy": (gain("pmtimer_poll"), f"pmtimer_poll, whole run ({where})"),
    }


def bench_ratios(bench: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Fast-path time per exit over the emulator's, per vendor, from a bench run: model-only,
    and ``port_hammer`` with the guest on unicorn. Our counterpart of the seed's 66 %."""

    def ratio(table: Mapping[str, Any]) -> dict[str, float]:
        return {v: r["emulate"]["exits_per_s"] / r["fast"]["exits_per_s"] for v, r in table.items()}

    return {
        "model-only": ratio(bench["model_only"]),
        "unicorn": ratio(bench["guest"]["port_hammer"]),
    }
