"""TimingPanel: sliders for the cost-model stages that redraw the predicted seed table.

Move a stage's cost and watch the three seed results move with it: exit/entry and the
device-model round trip dilute the saving, fetch and decode are the saving. Everything shown
comes from ``timing.predict`` and ``timing.seed_table``; the panel only wires them together
with ``observe``. A bad value shows a message in the panel, never a traceback.

Drive it from Python as a test or a notebook would::

    panel = TimingPanel("amd-k8-2010")
    panel.set(exit_entry=690)          # the sliders move, the table redraws
    panel.rows[0].model                # the port-hammer ratio now
    panel.profile_picker.value = "modern-nested"

CSS classes: ``hvmio-timing`` the panel; ``hvmio-timing-slider`` each stage slider;
``hvmio-timing-table`` the predicted table; ``hvmio-timing-chart`` the stage chart;
``hvmio-error`` the message (empty while all is well).
"""

from __future__ import annotations

import html
import io
import math

import ipywidgets as W

from .. import timing
from ..plots import stage_bars

_LABELS = {
    "exit_entry": "exit + entry",
    "record_read": "record read",
    "fetch": "fetch",
    "decode": "decode",
    "device_handler": "device handler",
    "device_model_round_trip": "device-model trip",
    "writeback": "writeback",
}


def _slider_max(stage: str) -> int:
    """Room to explore: four times the largest profile value, at least 1,000, rounded up."""
    top = max(timing.load_profile(p).stages[stage] for p in timing.profiles())
    span = max(4 * top, 1000)
    unit = 10 ** max(int(math.log10(span)) - 1, 0)
    return int(math.ceil(span / unit) * unit)


def rows_html(rows: list[timing.SeedRow], prediction_cycles: dict[str, dict[str, float]]) -> str:
    """The predicted seed table as HTML."""
    head = ("<tr><th>workload</th><th>seed</th><th>model</th><th>fast cycles/exit</th>"
            "<th>emulate cycles/exit</th><th>in the seed's range?</th></tr>")  # fmt: skip
    body = []
    for r in rows:
        cycles = prediction_cycles[r.workload]
        figure = timing.format_figure(r.metric, r.model)
        mark = "✓" if r.in_range else "✗"
        body.append(
            f"<tr><td>{html.escape(r.workload)}</td><td>{html.escape(r.seed_text)}</td>"
            f"<td><b>{figure}</b></td><td>{cycles['fast']:,.0f}</td>"
            f"<td>{cycles['emulate']:,.0f}</td><td>{mark}</td></tr>"
        )
    return f"<table class='hvmio-table'>{head}{''.join(body)}</table>"


class TimingPanel(W.VBox):
    """Stage-cost sliders over a profile, the predicted seed table and a stage chart."""

    def __init__(self, profile: str = timing.DEFAULT_PROFILE, chart: bool = True,
                 workload: str = "port_hammer"):  # fmt: skip
        self._syncing = False
        self.base = timing.load_profile(profile)
        self.profile_picker = W.Dropdown(options=timing.profiles(), value=profile,
                                         description="profile")  # fmt: skip
        self.workload_picker = W.Dropdown(options=timing.seed_workloads(), value=workload,
                                          description="chart of")  # fmt: skip
        self.sliders: dict[str, W.IntSlider] = {}
        for stage in timing.MODEL_STAGES:
            slider = W.IntSlider(
                value=int(self.base.stages[stage]), min=0, max=_slider_max(stage),
                step=10, description=_LABELS[stage], continuous_update=False,
                style={"description_width": "9em"}, layout=W.Layout(width="34em"),
            )  # fmt: skip
            slider.add_class("hvmio-timing-slider")
            slider.observe(self._redraw, "value")
            self.sliders[stage] = slider
        self.reset_button = W.Button(description="reset to profile", icon="undo")
        self.reset_button.on_click(lambda _: self.reset())
        self.title = W.HTML()
        self.message = W.HTML("")
        self.message.add_class("hvmio-error")
        self.table = W.HTML()
        self.table.add_class("hvmio-timing-table")
        self.chart = W.Image(format="png", layout=W.Layout(max_width="720px"))
        self.chart.add_class("hvmio-timing-chart")
        self.show_chart = chart
        self.rows: list[timing.SeedRow] = []

        self.profile_picker.observe(self._on_profile, "value")
        self.workload_picker.observe(self._redraw, "value")
        controls = [W.HBox([self.profile_picker, self.reset_button]), *self.sliders.values()]
        views = [self.title, self.message, self.table]
        if chart:
            views += [self.workload_picker, self.chart]
        super().__init__([W.VBox(controls), *views])
        self.add_class("hvmio-timing")
        self._redraw()

    @property
    def profile(self) -> timing.Profile:
        """The profile with the sliders' values."""
        return self.base.with_stages(**{s: w.value for s, w in self.sliders.items()})

    def set(self, **cycles: int) -> None:
        """Move sliders by stage name; the table redraws once."""
        unknown = set(cycles) - set(self.sliders)
        if unknown:
            self.message.value = (f"⚠ no stage {', '.join(sorted(unknown))}; the stages are "
                                  f"{', '.join(self.sliders)}")  # fmt: skip
            return
        self._syncing = True
        try:
            for stage, value in cycles.items():
                slider = self.sliders[stage]
                slider.value = max(slider.min, min(slider.max, int(value)))
        finally:
            self._syncing = False
        self._redraw()

    def reset(self) -> None:
        """Back to the chosen profile's own figures."""
        self.set(**{s: int(c) for s, c in self.base.stages.items()})

    def _on_profile(self, change) -> None:
        try:
            self.base = timing.load_profile(change["new"])
        except ValueError as e:
            self.message.value = f"⚠ {html.escape(str(e))}"
            return
        self.reset()

    def _redraw(self, _change=None) -> None:
        if self._syncing:
            return
        try:
            profile = self.profile
            self.rows = timing.seed_table(profile)
            cycles = {
                name: timing.predict(profile, timing.workload_mix(name, profile)).cycles
                for name in timing.seed_workloads()
            }
            self.table.value = rows_html(self.rows, cycles)
            edited = profile.stages != self.base.stages
            self.title.value = (f"<b>{html.escape(self.base.title)}</b>"
                                + (" — <i>edited</i>" if edited else ""))  # fmt: skip
            if self.show_chart:
                self.chart.value = self._chart_png(profile)
            self.message.value = ""
        except Exception as e:  # a panel shows what went wrong; it does not raise at a learner
            self.message.value = f"⚠ {html.escape(type(e).__name__)}: {html.escape(str(e))}"

    def _chart_png(self, profile: timing.Profile) -> bytes:
        name = self.workload_picker.value
        prediction = timing.predict(profile, timing.workload_mix(name, profile))
        fig = stage_bars(prediction, title=f"{name}: one exit, predicted")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=72)
        return buffer.getvalue()

    def __repr__(self) -> str:
        figures = ", ".join(f"{r.workload} {timing.format_figure(r.metric, r.model)}"
                            for r in self.rows)  # fmt: skip
        return f"TimingPanel({self.profile.name}: {figures})"

    def _repr_mimebundle_(self, **kwargs):
        """The live widget, plus the table as text and HTML for readers without a kernel."""
        data = super()._repr_mimebundle_(**kwargs) or {}
        data["text/plain"] = repr(self)
        data["text/html"] = f"<div>{self.title.value}{self.table.value}</div>"
        return data

    @property
    def table_text(self) -> str:
        """The predicted table as text (for tests and for a notebook's stored output)."""
        return timing.format_seed_table(self.rows, self.profile.name)
