"""The seed's three results beside the model's figures, and ours from a bench snapshot.

``bench/bench_paths.py`` writes its snapshot to ``data/bench/paths.json``, which ships with
the package as ``BENCH_SNAPSHOT``; ``load_bench`` reads whichever snapshot it is given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from .. import resources
from .cost_model import (
    DEFAULT_PROFILE,
    Prediction,
    Profile,
    cost_models,
    load_profile,
    predict,
    workload_mix,
)
from .measure import machine_label

BENCH_SNAPSHOT = resources.data("bench", "paths.json")

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
    return [seed_row(name, profile, measured) for name in cost_models()["workloads"]]


def seed_row(
    name: str,
    profile: Profile | str = DEFAULT_PROFILE,
    measured: Mapping[str, tuple[float, str]] | None = None,
) -> SeedRow:
    """One of the seed's results priced on its own (the timing panel shows the rows it can
    price even when another row's costs cannot be met)."""
    profile = load_profile(profile) if isinstance(profile, str) else profile
    data = cost_models()["workloads"][name]
    seed = data["seed"]
    figure = model_figure(predict(profile, workload_mix(name, profile)), seed["metric"])
    got, note = (measured or {}).get(name, (None, ""))
    return SeedRow(name, data["title"], seed["metric"], seed["text"], tuple(seed["range"]),
                   figure, got, note)  # fmt: skip


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


def load_bench(path: Path | str | Traversable) -> dict | None:
    """The figures a ``bench/bench_paths.py`` run wrote to ``path`` (``BENCH_SNAPSHOT`` is the
    one shipped with the package), or None if there is no such file."""
    path = Path(path) if isinstance(path, str) else path
    return json.loads(path.read_text()) if path.is_file() else None


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
