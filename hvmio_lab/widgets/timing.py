"""TimingPanel: sliders for the cost-model stages that redraw the predicted seed table.

Move a stage's cost and watch the three seed results move with it: exit/entry and the
device-model round trip dilute the saving, fetch and decode are the saving. Everything shown
comes from ``timing.predict`` and ``timing.seed_table``; the panel only wires them together
with ``observe``. A bad value shows a message in the panel, never a traceback.

Each workload row is computed on its own: a row the model cannot price with the sliders'
costs says why, in words, in its own cells ("n/a: …"), and the other rows still show. The
table, the chart and ``rows`` are redrawn together from the sliders on every change, so
none of them can be older than the sliders.

Drive it from Python as a test or a notebook would::

    panel = TimingPanel("amd-k8-2010")
    panel.set(exit_entry=690)          # the sliders move, the table redraws
    panel.rows[0].model                # the port-hammer ratio now
    panel.profile_picker.value = "modern-nested"

CSS classes: ``hvmio-timing`` the panel; ``hvmio-timing-slider`` each stage slider;
``hvmio-timing-table`` the predicted table; ``hvmio-timing-chart`` the stage chart;
``hvmio-timing-caption`` its totals in words (or why there is no chart);
``hvmio-error`` the message (empty while all is well); ``hvmio-na`` a row the model cannot
price.
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


def why_not(workload: str, profile: timing.Profile, error: Exception) -> str:
    """Why the model cannot price ``workload`` with these costs, in plain words."""
    stages = profile.stages
    if isinstance(error, ZeroDivisionError) or not any(stages.values()):
        return ("n/a: with every stage at 0 cycles an exit costs nothing on either path, so "
                "there is no ratio to take")
    if "second" in str(error):
        return ("n/a: exit + entry this long makes the PM-timer guest spend more than a second "
                "per second on its exits alone, so the seed's exit rate cannot be met"
                if workload == "pmtimer_heavy" else
                "n/a: with these costs the exits alone take longer than the time the workload "
                "has for them")  # fmt: skip
    return "n/a: the model cannot price this workload with these costs"


def seed_rows(profile: timing.Profile) -> tuple[list[timing.SeedRow], dict[str, str],
                                                dict[str, dict[str, float]]]:  # fmt: skip
    """The seed's rows priced one by one: (rows, workload → why not, workload → cycles)."""
    rows, unavailable, cycles = [], {}, {}
    for name in timing.seed_workloads():
        try:
            row = timing.seed_row(name, profile)
            per_exit = timing.predict(profile, timing.workload_mix(name, profile)).cycles
        except (ArithmeticError, ValueError) as e:  # the model's own refusal, put in words
            unavailable[name] = why_not(name, profile, e)
            continue
        rows.append(row)
        cycles[name] = per_exit
    return rows, unavailable, cycles


def rows_html(rows: list[timing.SeedRow], prediction_cycles: dict[str, dict[str, float]],
              unavailable: dict[str, str] | None = None) -> str:  # fmt: skip
    """The predicted seed table as HTML; a workload the model cannot price says why."""
    head = ("<tr><th>workload</th><th>seed</th><th>model</th><th>fast cycles/exit</th>"
            "<th>emulate cycles/exit</th><th>in the seed's range?</th></tr>")  # fmt: skip
    body = {}
    for r in rows:
        cycles = prediction_cycles[r.workload]
        figure = timing.format_figure(r.metric, r.model)
        mark = "✓" if r.in_range else "✗"
        body[r.workload] = (
            f"<tr><td>{html.escape(r.workload)}</td><td>{html.escape(r.seed_text)}</td>"
            f"<td><b>{figure}</b></td><td>{cycles['fast']:,.0f}</td>"
            f"<td>{cycles['emulate']:,.0f}</td><td>{mark}</td></tr>"
        )
    for workload, why in (unavailable or {}).items():
        body[workload] = (f"<tr class='hvmio-na'><td>{html.escape(workload)}</td>"
                          f"<td colspan='5'><i>{html.escape(why)}</i></td></tr>")  # fmt: skip
    order = {w: i for i, w in enumerate(timing.seed_workloads())}
    body = [body[w] for w in sorted(body, key=lambda w: order.get(w, len(order)))]
    return f"<table class='hvmio-table'>{head}{''.join(body)}</table>"


def chart_caption(workload: str, prediction: timing.Prediction) -> str:
    """The chart's totals in words (what the bars add up to), redrawn with the picture."""
    c = prediction.cycles
    return f"{workload}, one exit: fast {c['fast']:,.0f} cycles, emulate {c['emulate']:,.0f}"


def _cycles(stage: str, value: object) -> int:
    """A slider value from what ``set`` was given, or ValueError saying what is wrong."""
    label = _LABELS[stage]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{label} is a number of cycles, e.g. 690; got {value!r}")
    try:
        number = float(value.replace(",", "").replace("_", "")) if isinstance(value, str) else (
            float(value))  # fmt: skip
    except ValueError:
        raise ValueError(f"{label} is a number of cycles, e.g. 690; got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{label} must be a finite number of cycles; got {value!r}")
    if number < 0:
        raise ValueError(f"{label} cannot be negative; got {value!r}")
    return round(number)


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
        self.chart_note = W.HTML("")
        self.chart_note.add_class("hvmio-timing-caption")
        self.show_chart = chart
        self.rows: list[timing.SeedRow] = []
        self.unavailable: dict[str, str] = {}

        self.profile_picker.observe(self._on_profile, "value")
        self.workload_picker.observe(self._redraw, "value")
        controls = [W.HBox([self.profile_picker, self.reset_button]), *self.sliders.values()]
        views = [self.title, self.message, self.table]
        if chart:
            views += [self.workload_picker, self.chart_note, self.chart]
        super().__init__([W.VBox(controls), *views])
        self.add_class("hvmio-timing")
        self._redraw()

    @property
    def profile(self) -> timing.Profile:
        """The profile with the sliders' values."""
        return self.base.with_stages(**{s: w.value for s, w in self.sliders.items()})

    def set(self, **cycles: object) -> None:
        """Move sliders by stage name; the table redraws once. A value that is not a
        number of cycles moves no slider and says why; one beyond a slider's range is
        clamped to it, and the message says so."""
        unknown = set(cycles) - set(self.sliders)
        if unknown:
            self.message.value = (f"⚠ no stage {', '.join(sorted(unknown))}; the stages are "
                                  f"{', '.join(self.sliders)}")  # fmt: skip
            return
        try:
            values = {stage: _cycles(stage, value) for stage, value in cycles.items()}
        except ValueError as e:
            self.message.value = f"⚠ {html.escape(str(e))}"
            return
        clamped = []
        self._syncing = True
        try:
            for stage, value in values.items():
                slider = self.sliders[stage]
                slider.value = max(slider.min, min(slider.max, value))
                if slider.value != value:
                    clamped.append(f"{_LABELS[stage]} {value:,} is beyond the slider: set to "
                                   f"{slider.value:,}")  # fmt: skip
        finally:
            self._syncing = False
        self._redraw()
        if clamped:
            self.message.value = f"⚠ {html.escape('; '.join(clamped))}"

    def reset(self) -> None:
        """Back to the chosen profile's own figures."""
        self.set(**{s: int(c) for s, c in self.base.stages.items()})

    def _on_profile(self, change) -> None:
        try:
            self.base = timing.load_profile(change["new"])
        except (TypeError, ValueError):
            self.message.value = (f"⚠ pick a profile: {', '.join(timing.profiles())}")
            return
        self.reset()

    def _redraw(self, _change=None) -> None:
        if self._syncing:
            return
        try:
            self._draw()
        except Exception:  # the last guard: say so, and show nothing older than the sliders
            self.rows, self.unavailable = [], {}
            self.table.value = self.chart_note.value = ""
            self.chart.value = b""
            self.message.value = "⚠ the model could not price these costs; move a slider back"

    def _draw(self) -> None:
        profile = self.profile
        self.rows, self.unavailable, cycles = seed_rows(profile)
        self.table.value = rows_html(self.rows, cycles, self.unavailable)
        edited = profile.stages != self.base.stages
        self.title.value = (f"<b>{html.escape(self.base.title)}</b>"
                            + (" — <i>edited</i>" if edited else ""))  # fmt: skip
        self.message.value = ""
        if self.show_chart:
            self._redraw_chart(profile)

    def _redraw_chart(self, profile: timing.Profile) -> None:
        """The chart of the picked workload, or, where it cannot be priced, no chart and the
        reason (never the previous picture)."""
        name = self.workload_picker.value
        try:
            prediction = timing.predict(profile, timing.workload_mix(name, profile))
            fig = stage_bars(prediction, title=f"{name}: one exit, predicted")
        except (ArithmeticError, ValueError, TypeError) as e:
            why = why_not(name, profile, e) if name else "pick a workload to chart"
            self.chart_note.value = f"<i>{html.escape(why)}</i>"
            self.chart.value = b""
            self.chart.layout.display = "none"
            return
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=72)
        self.chart.value = buffer.getvalue()
        self.chart.layout.display = None
        self.chart_note.value = html.escape(chart_caption(name, prediction))

    def __repr__(self) -> str:
        figures = [f"{r.workload} {timing.format_figure(r.metric, r.model)}" for r in self.rows]
        figures += [f"{w} n/a" for w in self.unavailable]
        return f"TimingPanel({self.profile.name}: {', '.join(figures)})"

    def _repr_mimebundle_(self, **kwargs):
        """The live widget, plus the table as text and HTML for readers without a kernel."""
        data = super()._repr_mimebundle_(**kwargs) or {}
        data["text/plain"] = repr(self)
        data["text/html"] = f"<div>{self.title.value}{self.table.value}</div>"
        return data

    @property
    def table_text(self) -> str:
        """The predicted table as text (for tests and for a notebook's stored output)."""
        text = timing.format_seed_table(self.rows, self.profile.name)
        return "\n".join([text, *(f"{w}: {why}" for w, why in self.unavailable.items())])
