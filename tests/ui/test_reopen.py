"""The real notebooks in JupyterLab, as a learner meets them: every chapter opened as shipped,
then Run All (with the chapter's widgets clicked: the BitFlipper in 02, the ExitStepper in 01),
save, kernel shutdown and reopen. Never "Error displaying widget": the widgets are live or show
their static views. The server runs with the config `make lab` uses, whose save hook is under
test here."""

from __future__ import annotations

import json
import time

import pytest

from . import lab as L
from . import scenarios
from .lab import NOTEBOOKS, LabPage, record

pytestmark = pytest.mark.ui

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
NOTEBOOK_NAMES = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))


def _saved(lab: LabPage, name: str, since: str) -> dict:
    """Wait until the server holds a save newer than ``since``; return the notebook."""
    assert lab.server is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        model = lab.server.api("GET", f"/api/contents/{name}?content=1")
        if model["last_modified"] != since:
            return model["content"]
        lab.page.wait_for_timeout(200)
    raise AssertionError(f"{name} was not saved")


def _click_widgets(lab: LabPage, name: str) -> None:
    """What a learner does with the chapter's first flipper and stepper, if it has them."""
    if lab.page.locator(scenarios.LIVE_BIT).count():
        # the narrow end of a classroom screen, file browser open: the bits must stay one row
        lab.page.set_viewport_size({"width": 1280, "height": 3000})
        try:
            latency = scenarios.check_bitflipper(lab)
        finally:
            lab.page.set_viewport_size(L.VIEWPORT)
        record(f"lab click->HTML latency, BitFlipper {name} (ms)", latency)
    if lab.output_of(".hvmio-rip").count():  # an ExitStepper (with its RIP line)
        record(f"lab click->HTML latency, ExitStepper {name} (ms)", scenarios.check_stepper(lab))


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_notebook_opens_clean_as_shipped_and_after_run_save_reopen(lab: LabPage, name: str):
    assert lab.server is not None
    lab.open_notebook(name)
    lab.assert_no_widget_errors()  # as shipped
    lab.snap("as-shipped")
    before = lab.server.api("GET", f"/api/contents/{name}?content=0")["last_modified"]
    record(f"lab Run All {name} (s)", lab.run_all_cells())
    lab.assert_no_widget_errors()
    _click_widgets(lab, name)
    lab.assert_no_traceback()
    lab.page.locator(".jp-Notebook").first.click()
    lab.page.keyboard.press("Control+s")
    saved = _saved(lab, name, before)
    views = [o for c in saved["cells"] for o in c.get("outputs", [])
             if WIDGET_VIEW in (o.get("data") or {})]
    assert not views, f"{len(views)} widget views saved: the save hook did not run"
    lab.page.goto("about:blank")
    lab.server.delete_sessions()  # the kernel is gone: nothing can serve the old models
    lab.open_notebook(name, wait_kernel=False)  # a reader's view: no kernel needed
    lab.assert_no_widget_errors()
    lab.snap("reopened")
    assert "model not found" not in lab.page_text()
    if "hvmio-static" in json.dumps(saved["cells"]):  # an exercise, explorer or prompt
        assert lab.page.locator(".hvmio-static").count() > 0, "no static view rendered"
