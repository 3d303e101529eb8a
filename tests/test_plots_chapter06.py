"""Chapter 06's headline and Amdahl charts say what they show: every bar is labelled with its
kind (seed, fitted model, measured) and drawn at its value, and two Amdahl charts share one
y-scale, so a ×1.03 line cannot look as steep as a ×1.5 one."""

from __future__ import annotations

import io

import pytest
from matplotlib.figure import Figure

from hvmio_lab import plots, timing

K8 = "amd-k8-2010"


def _draw(fig: Figure) -> None:
    fig.savefig(io.BytesIO(), format="png", dpi=40)


def _headline() -> list[tuple[str, float, str]]:
    """The chapter's three bars, built from the model and the shipped bench snapshot."""
    k8 = timing.load_profile(K8)
    bench = timing.load_bench(timing.BENCH_SNAPSHOT)
    row = timing.seed_table(k8, timing.measured_seed_figures(bench))[0]
    return [("seed", row.seed_range[0], "seed"), ("model", row.model, "fitted model"),
            ("ours", row.measured, "measured")]  # fmt: skip


def test_every_headline_bar_is_drawn_at_its_value_and_says_its_kind():
    bars = _headline()
    fig = plots.ratio_bars(bars, title="r")
    _draw(fig)
    ax = fig.axes[0]
    widths = [patch.get_width() for patch in ax.patches]
    assert widths == pytest.approx([value for _, value, _ in bars])
    texts = [t.get_text() for t in ax.texts]
    for (_, value, kind), text in zip(bars, texts, strict=True):
        assert f"{value:.1%}" in text and f"({kind})" in text
    assert len({patch.get_facecolor() for patch in ax.patches}) == 3  # one colour per kind


def test_the_fitted_model_matches_the_seed_and_the_measurement_is_apart():
    seed, model, ours = (value for _, value, _ in _headline())
    assert model == pytest.approx(seed, abs=0.005)  # calibrated to it: a fit, not evidence
    assert 0 < ours < 1 and ours != pytest.approx(seed, abs=0.005)


def test_ratio_ticks_are_plain_percentages():
    fig = plots.ratio_bars(_headline())
    _draw(fig)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["0%", "25%", "50%", "75%", "100%"]


def test_two_amdahl_charts_share_one_scale():
    pm = timing.workload_mix("pmtimer_heavy", K8)
    steep = plots.amdahl_chart(K8)
    flat = plots.amdahl_chart(K8, guest_cycles=pm.guest_cycles)
    for fig in (steep, flat):
        _draw(fig)
    assert steep.axes[0].get_ylim() == flat.axes[0].get_ylim()
    top = max(max(line.get_ydata()) for line in flat.axes[0].get_lines())
    low, high = flat.axes[0].get_ylim()
    assert (top - low) / (high - low) < 0.1  # the PM-timer guest's ×1.03 stays near the floor


def test_amdahl_ticks_read_as_speedups_and_shares():
    fig = plots.amdahl_chart(K8)
    _draw(fig)
    ax = fig.axes[0]
    ys = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    xs = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert ys and all(y.startswith("×") for y in ys)
    assert xs[0] == "0%" and xs[-1] == "100%"


def test_a_speedup_beyond_the_default_scale_still_fits():
    fast_exit = timing.load_profile(K8).with_stages(exit_entry=0, record_read=0,
                                                     device_handler=0, writeback=10)
    fig = plots.amdahl_chart(fast_exit, device_model_shares=(0.0,))
    _draw(fig)
    best = max(fig.axes[0].get_lines()[0].get_ydata())
    assert best > 1.6 and fig.axes[0].get_ylim()[1] >= best
