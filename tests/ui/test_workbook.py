"""The workbook's notebooks, driven in a real browser as a student would."""

from __future__ import annotations

import pytest

from . import scenarios
from .lab import LabPage, record

pytestmark = pytest.mark.ui

NB_IO_EXIT = "01-the-io-exit.ipynb"
NB_EXITINFO1 = "02-svm-exitinfo1.ipynb"


def test_exitinfo1_bitflipper(lab: LabPage) -> None:
    record(f"lab Run All {NB_EXITINFO1} (s)", lab.run_all(NB_EXITINFO1))
    record("lab click->HTML latency, BitFlipper (ms)", scenarios.check_bitflipper(lab))
    lab.assert_no_traceback()
    lab.assert_no_widget_errors()


def test_io_exit_stepper(lab: LabPage) -> None:
    record(f"lab Run All {NB_IO_EXIT} (s)", lab.run_all(NB_IO_EXIT))
    record("lab click->HTML latency, ExitStepper (ms)", scenarios.check_stepper(lab))
    lab.assert_no_traceback()
    lab.assert_no_widget_errors()


def test_exitinfo1_classroom_mode(voila) -> None:
    """`make demo`: Voila renders the notebook offline, code hidden, widgets live."""
    ui = voila(NB_EXITINFO1)
    record(f"voila {NB_EXITINFO1} page->widget (s)", ui.open(".hvmio-bit"))
    assert ui.page.locator(".cm-editor").count() == 0, "Voila should hide the code"
    record("voila click->HTML latency, BitFlipper (ms)", scenarios.check_bitflipper(ui))
    ui.assert_no_widget_errors()
