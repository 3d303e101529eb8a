"""What a student does with each widget, written once for JupyterLab and Voila pages.

Each check drives one widget through the CSS contract documented in ``README.md`` and
returns the click-to-update latency in ms (measured, printed, never asserted).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .lab import BrowserPage

# 0x70 sets SZ8, SZ16 and SZ32 at once: the size field is one-hot, so this is invalid.
INVALID_HEX = "0x70"


LIVE_BIT = ".hvmio-bit:not([disabled])"


def check_bitflipper(ui: BrowserPage, index: int = 0) -> float:
    """Flip a bit of the ``index``-th interactive BitFlipper (read-only ones, whose
    toggles are disabled, are passed over), then type an invalid value into it."""
    scope = ui.page.locator(".hvmio-flipper").filter(has=ui.page.locator(LIVE_BIT)).nth(index)
    scope.wait_for(timeout=ui.timeout_ms)
    before = ui.widget_text(".hvmio-decoded", within=scope)
    latency = ui.click_latency_ms(ui.widget(LIVE_BIT, within=scope), scope, ".hvmio-decoded")
    after = ui.wait_text_change(".hvmio-decoded", before, within=scope)
    assert after != before
    ui.snap("bit-flipped")

    from playwright.sync_api import expect

    ui.set_text(".hvmio-hex", INVALID_HEX, within=scope)
    error = ui.widget(".hvmio-error", within=scope)
    expect(error).to_contain_text("SZ", timeout=ui.timeout_ms)
    ui.snap("invalid-hex")
    ui.assert_no_traceback()
    ui.assert_no_widget_errors()
    return latency


def check_stepper(ui: BrowserPage, index: int = 0) -> float:
    """Press Step on the ``index``-th ExitStepper: the RIP line and registers move."""
    scope = ui.output_of(".hvmio-step", index)
    scope.wait_for(timeout=ui.timeout_ms)
    rip_before = ui.widget_text(".hvmio-rip", within=scope)
    regs_before = ui.widget_text(".hvmio-regs", within=scope)
    latency = ui.click_latency_ms(ui.widget(".hvmio-step", within=scope), scope, ".hvmio-regs")
    rip_after = ui.wait_text_change(".hvmio-rip", rip_before, within=scope)
    regs_after = ui.wait_text_change(".hvmio-regs", regs_before, within=scope)
    assert (rip_after, regs_after) != (rip_before, regs_before)
    ui.snap("stepped")
    ui.assert_no_traceback()
    ui.assert_no_widget_errors()
    return latency
