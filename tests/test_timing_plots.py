"""Chapter 06's charts render headless (plain ``Figure``s draw with Agg, no display or
pyplot needed), and the TimingPanel works driven from Python."""

from __future__ import annotations

import io
import re

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
    panel.reset()
    assert panel.message.value == ""


def _no_exception_names(text: str) -> None:
    assert not re.search(r"[A-Z]\w*(Error|Exception)\b", text), text


def _port_hammer_ratio(stages) -> float:
    """fast / emulate intercept cycles for a hypervisor device, written from the model's
    definition (both paths pay exit/entry, record read, handler, writeback; the emulator
    adds fetch + decode), not from ``predict``."""
    fast = (stages["exit_entry"] + stages["record_read"] + stages["device_handler"]
            + stages["writeback"])
    return fast / (fast + stages["fetch"] + stages["decode"])


def test_each_row_stands_alone_at_the_slider_maximum():
    """Exit + entry at its maximum: the PM-timer row cannot be priced and says why in words;
    the other rows are computed, for the sliders' values, not left from before."""
    panel = TimingPanel(K8)
    panel.workload_picker.value = "pmtimer_heavy"
    top = panel.sliders["exit_entry"].max
    panel.set(exit_entry=top)
    assert panel.sliders["exit_entry"].value == top
    assert [r.workload for r in panel.rows] == ["port_hammer", "ide_read"]
    assert panel.rows[0].model == pytest.approx(_port_hammer_ratio(panel.profile.stages))
    why = panel.unavailable["pmtimer_heavy"]
    assert why.startswith("n/a: exit + entry this long makes the PM-timer guest spend more "
                          "than a second")
    assert "pmtimer_heavy" in panel.table.value and "n/a" in panel.table.value
    assert timing.format_figure("intercept_ratio", panel.rows[0].model) in panel.table.value
    for text in (panel.table.value, panel.message.value, panel.chart_note.value,
                 panel.table_text, repr(panel)):
        _no_exception_names(text)
    # the chart of the unpriceable workload is gone, not the old picture
    assert panel.chart.value == b"" and "n/a" in panel.chart_note.value
    panel.reset()
    assert bytes(panel.chart.value).startswith(b"\x89PNG") and "n/a" not in panel.chart_note.value
    assert "pmtimer_heavy, one exit: fast" in panel.chart_note.value
    assert len(panel.rows) == 3 and not panel.unavailable


def test_all_sliders_at_zero_is_a_row_message_not_a_crash():
    panel = TimingPanel(K8)
    panel.set(**{stage: 0 for stage in panel.sliders})
    assert all(s.value == 0 for s in panel.sliders.values())
    assert "port_hammer" in panel.unavailable and "0 cycles" in panel.unavailable["port_hammer"]
    assert "n/a" in panel.table.value
    _no_exception_names(panel.table.value + panel.message.value)


@pytest.mark.parametrize("bad", ["abc", None, float("nan"), float("inf"), -5, True, [1]])
def test_set_refuses_what_is_not_cycles(bad):
    panel = TimingPanel(K8, chart=False)
    before = ({s: w.value for s, w in panel.sliders.items()}, panel.table.value)
    panel.set(exit_entry=bad)  # must not raise
    assert panel.message.value.startswith("⚠ exit + entry")
    _no_exception_names(panel.message.value)
    assert ({s: w.value for s, w in panel.sliders.items()}, panel.table.value) == before


def test_set_reads_text_numbers():
    panel = TimingPanel(K8, chart=False)
    panel.set(exit_entry="1,234")
    assert panel.sliders["exit_entry"].value == 1234 and panel.message.value == ""


def test_stage_chart_text_is_legible_on_a_projector():
    """The panel renders at 72 dpi, so a point is a pixel: the legend, ticks and labels must
    be at least 12 pt."""
    fig = plots.stage_bars(timing.predict(K8, "port_hammer"))
    ax = fig.axes[0]
    sizes = [t.get_fontsize() for t in ax.get_legend().get_texts()]
    sizes += [t.get_fontsize() for t in ax.get_xticklabels() + ax.get_yticklabels()]
    sizes.append(ax.xaxis.label.get_fontsize())
    assert sizes and min(sizes) >= 12


def test_slider_values_are_clamped():
    panel = TimingPanel(K8, chart=False)
    panel.set(exit_entry=10**9)
    assert panel.sliders["exit_entry"].value == panel.sliders["exit_entry"].max
    assert "beyond the slider" in panel.message.value


def test_chart_follows_the_workload_picker():
    panel = TimingPanel(K8)
    before = panel.chart.value
    panel.workload_picker.value = "ide_read"
    assert panel.chart.value != before


def test_chart_caption_follows_the_sliders():
    panel = TimingPanel(K8)
    panel.set(exit_entry=5000)
    stages = panel.profile.stages
    fast = (stages["exit_entry"] + stages["record_read"] + stages["device_handler"]
            + stages["writeback"])  # port_hammer: a hypervisor device, no guest work
    assert f"fast {fast:,.0f} cycles, emulate {fast + stages['fetch'] + stages['decode']:,.0f}" \
        in panel.chart_note.value
