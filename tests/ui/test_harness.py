"""The UI harness proved on a stand-in notebook (written to a temp root, never notebooks/).

The stand-in honours the same widget CSS contract as the workbook, so the scenario
checks exercised here are exactly those the real-notebook tests run.
"""

from __future__ import annotations

import pytest

from . import scenarios
from .lab import LabPage, record
from .standin import BROKEN_NAME, STANDIN_NAME, standin_notebook

pytestmark = pytest.mark.ui


def test_lab_run_all_and_widgets(lab: LabPage) -> None:
    elapsed = lab.run_all(STANDIN_NAME)
    record("lab stand-in Run All (s)", elapsed)
    # The status bar went through a named kernel before idle (not the toolbar circle).
    assert lab.kernel_states[-1].endswith("| Idle"), lab.kernel_states
    assert not lab.kernel_states[-1].startswith("No Kernel"), lab.kernel_states
    # 1 + 1 ran: the last cell's output is there.
    assert lab.page.locator(".jp-OutputArea-output", has_text="2").count() >= 1

    record("lab click->HTML latency, toggle (ms)", scenarios.check_bitflipper(lab))
    record("lab click->HTML latency, step (ms)", scenarios.check_stepper(lab))

    assert lab.server is not None
    assert len(lab.server.sessions()) == 1, "the opened notebook should own one session"
    assert not lab.blocked_requests, f"JupyterLab tried the network: {lab.blocked_requests}"
    lab.assert_no_widget_errors()


def test_lab_harness_catches_failures(lab: LabPage) -> None:
    """Negative control: a failing cell and a broken widget view must be reported."""
    assert lab.server is not None
    # The previous test's kernel was deleted through the REST API (with X-XSRFToken).
    assert lab.server.sessions() == []
    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        lab.run_all(BROKEN_NAME)
    # Run All stopped at the error: the cell after it never ran.
    last_prompt = lab.page.locator(".jp-CodeCell .jp-InputPrompt").last.inner_text()
    assert "[ ]" in last_prompt
    lab.widget_errors_expected = True
    # A widget whose view class cannot load: ipywidgets 8 shows its error placeholder.
    with pytest.raises(AssertionError, match="broken widget view"):
        lab.assert_no_widget_errors()
    # The literal "Error displaying widget" (model not found, view creation failed).
    lab.page.evaluate(
        "() => { document.querySelector('.jupyter-widgets-error-widget').remove();"
        " document.body.append('Error displaying widget: model not found'); }"
    )
    with pytest.raises(AssertionError, match="Error displaying widget"):
        lab.assert_no_widget_errors()
    with pytest.raises(AssertionError, match="Traceback"):
        lab.assert_no_traceback()
    # No news/announcement toast: the notification settings override is in force.
    assert lab.page.locator(".Toastify__toast").count() == 0


def test_voila_standin(voila) -> None:
    ui = voila("standin.ipynb", standin_notebook())
    record("voila stand-in page->widget (s)", ui.open(".hvmio-bit"))
    # Classroom mode hides the code: no CodeMirror editors on the page.
    assert ui.page.locator(".cm-editor").count() == 0
    record("voila click->HTML latency, toggle (ms)", scenarios.check_bitflipper(ui))
    record("voila click->HTML latency, step (ms)", scenarios.check_stepper(ui))
    # Voila's template links a CDN font stylesheet; offline it is refused and the
    # page still renders and works.
    print("blocked off-machine requests:", ui.blocked_requests)
    ui.assert_no_widget_errors()
