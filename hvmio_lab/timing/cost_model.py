"""Modelled: price one exit per path in cycles from a profile in ``data/cost_models.json``.

Every number there has a ``source`` or an ``assumed`` note; the ones fitted to the seed's 66 %
say so. It is a model: bare-metal figures for modern CPUs were not found (IO_EXITS.md §6).
The lesson is Amdahl's law: the fast path saves fetch + decode only. Exit and entry, the
device, the device-model round trip and the guest's own work are not saved.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from types import MappingProxyType
from typing import Any

from .. import resources

COST_MODELS = resources.data("cost_models.json")
MODEL_STAGES = (
    "exit_entry", "record_read", "fetch", "decode",
    "device_handler", "device_model_round_trip", "writeback",
)  # fmt: skip
MODEL_PATHS = ("fast", "emulate")
DEFAULT_PROFILE = "amd-k8-2010"

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
