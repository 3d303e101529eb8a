"""Timing: measure both paths stage by stage, and a cycle cost model with a source per number.

Three modules, one job each, all re-exported here (``timing.predict``, ``timing.measure`` …):

- ``measure``: the stage stopwatch runs on this machine (nanoseconds of this Python model);
- ``cost_model``: cycles per exit from ``data/cost_models.json``, every number with a source
  or an assumption (a model, labelled as one);
- ``seed``: the seed's three results beside the model's, and ours from a bench snapshot.
"""

from .cost_model import (
    COST_MODELS,
    DEFAULT_PROFILE,
    MODEL_PATHS,
    MODEL_STAGES,
    Mix,
    Prediction,
    Profile,
    Quantity,
    cost_models,
    exit_entry_for_ratio,
    load_profile,
    predict,
    profiles,
    seed_workloads,
    workload_mix,
)
from .measure import (
    STREAMS,
    GuestRunner,
    Sample,
    Stream,
    StreamRunner,
    Table,
    machine_info,
    machine_label,
    measure,
    runner,
    workloads,
)
from .seed import (
    BENCH_SNAPSHOT,
    SeedRow,
    bench_ratios,
    format_figure,
    format_seed_table,
    load_bench,
    measured_seed_figures,
    model_figure,
    seed_row,
    seed_table,
)

__all__ = [
    "BENCH_SNAPSHOT", "COST_MODELS", "DEFAULT_PROFILE", "MODEL_PATHS", "MODEL_STAGES", "STREAMS",
    "GuestRunner", "Mix", "Prediction", "Profile", "Quantity", "Sample", "SeedRow", "Stream",
    "StreamRunner", "Table", "bench_ratios", "cost_models", "exit_entry_for_ratio",
    "format_figure", "format_seed_table", "load_bench", "load_profile", "machine_info",
    "machine_label", "measure", "measured_seed_figures", "model_figure", "predict", "profiles",
    "runner", "seed_row", "seed_table", "seed_workloads", "workload_mix", "workloads",
]  # fmt: skip
