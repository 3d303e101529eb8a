"""What a student does with each widget, written once for JupyterLab and Voila pages.

Each check drives one widget through the CSS contract documented in ``README.md`` and
returns the click-to-update latency in ms (measured, printed, never asserted).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .lab import BrowserPage

# 0x70 sets SZ8, SZ16 and SZ32 at once in EXITINFO1 (one-hot: invalid); in the VMX
# qualification it is a string access with an imm8 port, which is invalid too.
INVALID_HEX = "0x70"


LIVE_BIT = ".hvmio-bit:not([disabled])"


def check_bitflipper(ui: BrowserPage, index: int = 0) -> float:
    """Flip a bit of the ``index``-th interactive BitFlipper (read-only ones, whose
    toggles are disabled, are passed over), then type an invalid value into it."""
    scope = ui.page.locator(".hvmio-flipper").filter(has=ui.page.locator(LIVE_BIT)).nth(index)
    scope.wait_for(timeout=ui.timeout_ms)
    # one row, bit 0 at the far right, as the chapters say (1400 px, file browser open)
    tops = scope.locator(".hvmio-bit").evaluate_all(
        "els => els.map(e => Math.round(e.getBoundingClientRect().top))")
    assert len(tops) >= 16 and len(set(tops)) == 1, f"the bits wrap onto {len(set(tops))} rows"
    before = ui.widget_text(".hvmio-decoded", within=scope)
    latency = ui.click_latency_ms(ui.widget(LIVE_BIT, within=scope), scope, ".hvmio-decoded")
    after = ui.wait_text_change(".hvmio-decoded", before, within=scope)
    assert after != before
    ui.snap("bit-flipped")

    from playwright.sync_api import expect

    ui.set_text(".hvmio-hex", INVALID_HEX, within=scope)
    error = ui.widget(".hvmio-error", within=scope)
    # EXITINFO1 names SZ; the VMX qualification refuses 0x70 for its string/imm8 bits
    expect(error).to_contain_text(re.compile(r"✗ .*(SZ|operand encoding|must)"),
                                  timeout=ui.timeout_ms)
    ui.snap("invalid-hex")
    ui.assert_no_traceback()
    ui.assert_no_widget_errors()
    return latency


def check_stepper(ui: BrowserPage, index: int = 0) -> float:
    """Press Step on the ``index``-th ExitStepper: the exit count and the registers move, and
    the RIP line is still drawn. The RIP line itself may read the same: a loop that exits at
    one instruction every time (firmware printing to its debug port) resumes at one place."""
    scope = ui.output_of(".hvmio-rip", index)  # a stepper whose RIP is in its listing
    scope.wait_for(timeout=ui.timeout_ms)
    status_before = ui.widget_text(".hvmio-status", within=scope)
    regs_before = ui.widget_text(".hvmio-regs", within=scope)
    latency = ui.click_latency_ms(ui.widget(".hvmio-step", within=scope), scope, ".hvmio-regs")
    ui.wait_text_change(".hvmio-status", status_before, within=scope)
    ui.wait_text_change(".hvmio-regs", regs_before, within=scope)
    assert ui.widget_text(".hvmio-rip", within=scope).startswith("▶")
    ui.snap("stepped")
    ui.assert_no_traceback()
    ui.assert_no_widget_errors()
    return latency


# -- exercises: answer one through its widget, wrong then right -----------------------------

EXERCISE = ".hvmio-exercise"


def exercise_key(scope) -> str:
    """'02_1' from the widget's title, 'Exercise 02.1: …'."""
    title = scope.locator(".hvmio-question").first.inner_text()
    number = title.split(":")[0].split()[-1]
    return number.replace(".", "_")


def _fill(ui: BrowserPage, scope, key: str, values: list) -> None:
    """Type or pick ``values`` (one per answer box) into the exercise widget ``scope``."""
    from hvmio_lab.checks import EXERCISES

    inputs = scope.locator(".hvmio-answer")
    i = 0
    for ask, value in zip(EXERCISES[key].asks, values, strict=True):
        if ask.several:
            chosen = {value} if isinstance(value, str) else set(value)
            for option in ask.options:
                inputs.nth(i).locator("input[type=checkbox]").set_checked(option in chosen)
                i += 1
        elif ask.count:
            for v in value:
                inputs.nth(i).locator("select").select_option(label=ask.options[v])
                i += 1
        elif ask.options:
            inputs.nth(i).locator("label").filter(has_text=ask.options[value]).first.click()
            i += 1
        else:
            inputs.nth(i).locator("input").fill(str(value))
            i += 1
    ui.page.wait_for_timeout(150)  # let the last value reach the kernel before Check


def check_exercise(ui: BrowserPage, index: int = 0) -> str:
    """Answer the ``index``-th exercise widget wrong (a red ✗ and a hint), then right (a green
    ✓); return its key."""
    from exercise_answers import ANSWERS, answer_values
    from playwright.sync_api import expect

    exercises = ui.page.locator(EXERCISE)
    exercises.first.wait_for(timeout=ui.timeout_ms)
    keys = [exercise_key(exercises.nth(i)) for i in range(exercises.count())]
    known = [i for i, k in enumerate(keys) if k in ANSWERS]
    assert known, f"no exercise of {keys} has answers in tests/exercise_answers.py"
    scope = exercises.nth(known[index])
    scope.scroll_into_view_if_needed()
    key = keys[known[index]]
    right, wrong = answer_values(key)
    result = scope.locator(".hvmio-result")
    _fill(ui, scope, key, wrong)
    scope.locator(".hvmio-check").click()
    expect(result).to_contain_text("✗ Not yet", timeout=ui.timeout_ms)
    ui.snap(f"exercise-{key}-wrong")
    _fill(ui, scope, key, right)
    scope.locator(".hvmio-check").click()
    expect(result).to_contain_text("✓ Correct", timeout=ui.timeout_ms)
    expect(result).to_have_class(re.compile(r"\bhvmio-ok\b"), timeout=ui.timeout_ms)
    ui.snap(f"exercise-{key}-right")
    ui.assert_no_traceback()
    return key


# -- the timing panel at its sliders' extremes ------------------------------------------------

_EXCEPTION_NAME = r"\b[A-Z]\w*(Error|Exception)\b"


def set_slider(ui: BrowserPage, slider, value: int) -> None:
    """Type ``value`` into a slider's readout and press Enter, as a learner can."""
    readout = slider.locator(".widget-readout")
    readout.click()
    ui.page.keyboard.press("Control+A")
    ui.page.keyboard.type(str(value))
    ui.page.keyboard.press("Enter")


def check_timing_extremes(ui: BrowserPage) -> None:
    """Exit + entry at its maximum, then every slider at 0: the table follows the sliders
    each time (it reads what a Python panel with the same values computes), a row the model
    cannot price says n/a in words, and no exception name shows."""
    from playwright.sync_api import expect

    from hvmio_lab.widgets import TimingPanel

    panel_el = ui.page.locator(".hvmio-timing").first
    panel_el.wait_for(timeout=ui.timeout_ms)
    panel_el.scroll_into_view_if_needed()
    sliders = panel_el.locator(".hvmio-timing-slider")
    table = panel_el.locator(".hvmio-timing-table")
    model = TimingPanel()  # the same computation, in this process
    stages = list(model.sliders)
    top = model.sliders["exit_entry"].max
    set_slider(ui, sliders.nth(stages.index("exit_entry")), top)
    model.set(exit_entry=top)
    want = [timing_figure(r) for r in model.rows]
    for figure in want:
        expect(table).to_contain_text(figure, timeout=ui.timeout_ms)
    expect(table).to_contain_text("n/a: exit + entry this long", timeout=ui.timeout_ms)
    caption = panel_el.locator(".hvmio-timing-caption")  # the chart's totals, redrawn with it
    expect(caption).to_have_text(model.chart_note.value, timeout=ui.timeout_ms)
    ui.snap("timing-exit-entry-max")
    text = panel_el.inner_text()
    assert not re.search(_EXCEPTION_NAME, text), text
    for i in range(len(stages)):
        set_slider(ui, sliders.nth(i), 0)
    expect(table).to_contain_text("every stage at 0 cycles", timeout=ui.timeout_ms)
    model.set(**{stage: 0 for stage in stages})
    expect(caption).to_have_text(model.chart_note.value, timeout=ui.timeout_ms)
    ui.snap("timing-all-zero")
    text = panel_el.inner_text()
    assert not re.search(_EXCEPTION_NAME, text), text
    assert top and "66.0%" not in table.inner_text()  # nothing left from the profile's figures
    ui.assert_no_traceback()


def timing_figure(row) -> str:
    from hvmio_lab import timing

    return timing.format_figure(row.metric, row.model)
