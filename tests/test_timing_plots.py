"""Chapter 06's charts render headless (plain ``Figure``s draw with Agg, no display or
pyplot needed), and the TimingPanel works driven from Python."""

from __future__ import annotations

import io

import pytest
from matplotlib.figure import Figure

from hvmio_lab import plots, timing
from hvmio_lab.widgets import TimingPanel

K8 = "amd-k8-2010"


@pytest.fixture(scope="module")
def table():
    return timing.measure("pm_timer", exits=5, warmup=1)


def _renders(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=40)
    data = buffer.getvalue()
    assert data.startswith(b"\x89PNG")
    return data


def test_stage_bars_from_a_measured_table(table):
    fig = plots.stage_bars(table, title="measured")
    _renders(fig)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(table.stage_medians())
    assert "ns" in ax.get_xlabel()


def test_stage_bars_from_a_prediction_show_the_saved_slice():
    prediction = timing.predict(K8, "port_hammer")
    fig = plots.stage_bars(prediction)
    _renders(fig)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "fetch" in legend and "decode" in legend and "exit entry" in legend
    totals = [t.get_text().strip() for t in fig.axes[0].texts]
    assert totals == ["2,700", "4,090"]


def test_stage_bars_from_a_mapping_and_into_given_axes():
    fig = Figure()
    ax = fig.add_subplot()
    assert plots.stage_bars({"a": {"exit": 1, "device": 2}}, unit="µs", ax=ax) is fig
    assert "µs" in ax.get_xlabel()


def test_exit_time_distribution(table):
    fig = plots.exit_time_distribution(table, title="per exit")
    _renders(fig)
    assert len(fig.axes[0].get_legend().get_texts()) == 4


def test_exit_time_distribution_refuses_an_empty_table():
    with pytest.raises(ValueError, match="no exits"):
        plots.exit_time_distribution(timing.Table(()))


def test_amdahl_chart_lines_follow_the_model():
    fig = plots.amdahl_chart(K8, device_model_shares=(0.0, 1.0))
    _renders(fig)
    lines = [ln for ln in fig.axes[0].get_lines() if len(ln.get_xdata()) > 2]
    assert len(lines) == 2
    ends = [ln.get_ydata()[-1] for ln in lines]
    hammer = timing.predict(K8, "port_hammer")  # all eligible, none to the device model
    assert ends[0] == pytest.approx(1 / hammer.intercept_ratio, rel=1e-3)
    assert ends[1] < 1.06  # all to the device model: the round trip dilutes the saving
    assert all(ln.get_ydata()[0] == pytest.approx(1.0) for ln in lines)  # nothing eligible


def test_figure_reprs_are_deterministic_for_nbval():
    assert repr(plots.amdahl_chart()) == repr(plots.amdahl_chart())
    assert repr(plots.amdahl_chart()).startswith("<Figure size")


# -- the TimingPanel -------------------------------------------------------------------------


def test_panel_starts_with_the_profile_and_the_seed_table():
    panel = TimingPanel(K8)
    assert "hvmio-timing" in panel._dom_classes
    assert [r.workload for r in panel.rows] == ["port_hammer", "ide_read", "pmtimer_heavy"]
    assert panel.rows[0].model == pytest.approx(0.66, abs=0.005)
    assert "66.0%" in panel.table.value and "66.0%" in panel.table_text
    assert bytes(panel.chart.value).startswith(b"\x89PNG")
    assert panel.message.value == ""
    assert "edited" not in panel.title.value


def test_moving_a_slider_redraws_the_table():
    panel = TimingPanel(K8, chart=False)
    panel.sliders["exit_entry"].value = 690
    assert panel.rows[0].model == pytest.approx(0.5)
    assert "50.0%" in panel.table.value and "edited" in panel.title.value
    panel.set(fetch=0, decode=0)
    assert panel.rows[0].model == pytest.approx(1.0)
    panel.reset()
    assert panel.rows[0].model == pytest.approx(0.66, abs=0.005)


def test_switching_profile_loads_its_figures():
    panel = TimingPanel(K8, chart=False)
    panel.profile_picker.value = "modern-nested"
    assert panel.sliders["exit_entry"].value == 13142
    assert panel.rows[0].model == pytest.approx(0.90, abs=0.005)


def test_panel_shows_messages_not_tracebacks():
    panel = TimingPanel(K8, chart=False)
    panel.set(warp_drive=1)
    assert "no stage warp_drive" in panel.message.value
    # exits dearer than the PM-timer workload's whole period (2.6 GHz / 50,000 per second)
    panel.set(exit_entry=53_000)
    assert panel.message.value.startswith("⚠ ValueError") and "longer than a second" in (
        panel.message.value
    )
    panel.reset()
    assert panel.message.value == ""


def test_slider_values_are_clamped():
    panel = TimingPanel(K8, chart=False)
    panel.set(exit_entry=10**9)
    assert panel.sliders["exit_entry"].value == panel.sliders["exit_entry"].max


def test_chart_follows_the_workload_picker():
    panel = TimingPanel(K8)
    before = panel.chart.value
    panel.workload_picker.value = "ide_read"
    assert panel.chart.value != before
