"""The UI harness proved on stand-in notebooks (written to a temp root, never notebooks/).

A negative control: a notebook with a failing cell and a broken widget view must make the
harness fail, so the real-notebook tests (``test_reopen.py``, ``test_voila_exercises.py``) can be
trusted to notice.
"""

from __future__ import annotations

import pytest

from .broken import BROKEN_NAME
from .lab import LabPage

pytestmark = pytest.mark.ui


def test_lab_harness_catches_failures(lab: LabPage) -> None:
    """Negative control: a failing cell and a broken widget view must be reported."""
    assert lab.server is not None
    # Any earlier test's kernel was deleted through the REST API (with X-XSRFToken).
    assert lab.server.sessions() == []
    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        lab.run_all(BROKEN_NAME)
    # The harness waited for the status bar to name a kernel and say Idle.
    assert lab.kernel_states[-1].endswith("| Idle"), lab.kernel_states
    assert not lab.kernel_states[-1].startswith("No Kernel"), lab.kernel_states
    assert len(lab.server.sessions()) == 1, "the opened notebook should own one session"
    assert not lab.blocked_requests, f"JupyterLab tried the network: {lab.blocked_requests}"
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
    # A callback that raises shows nothing on the page: only the log console knows.
    lab.page.evaluate(
        "() => document.querySelectorAll('[data-mime-type=\"application/vnd.jupyter.stderr\"]')"
        ".forEach(e => e.remove())"
    )
    lab.assert_no_traceback()
    lab.page.locator(".hvmio-boom").click()
    with pytest.raises(AssertionError, match="raised in a widget callback"):
        lab.page.wait_for_function(
            "() => document.querySelector('.jp-LogConsoleStatusItem:not(.lm-mod-hidden)')"
        )
        lab.assert_no_traceback()
    # No news/announcement toast: the notification settings override is in force.
    assert lab.page.locator(".Toastify__toast").count() == 0
