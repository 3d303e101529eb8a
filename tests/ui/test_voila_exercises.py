"""`make demo`: in Voilà a class answers one exercise per chapter through its widget, wrong and
then right; chapter 02's BitFlipper responds; chapter 06's timing panel survives its sliders'
extremes. One Voilà server serves every chapter (a server per chapter cost ~8 s each)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from . import scenarios
from .lab import NOTEBOOKS, VoilaPage, record

pytestmark = pytest.mark.ui

# The chapters whose exercises tests/exercise_answers.py can answer (00-07); the others are
# covered by test_reopen.py.
CHAPTERS = sorted(p.name for p in NOTEBOOKS.glob("0[0-7]-*.ipynb") if "exercise(" in p.read_text())


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_in_voila(voila_page: VoilaPage, name: str) -> None:
    ui = voila_page
    seconds = ui.open(scenarios.EXERCISE, f"/voila/render/{quote(name)}")
    record(f"voila {name} page->exercise (s)", seconds)
    assert ui.page.locator(".cm-editor").count() == 0, "Voila should hide the code"
    scenarios.check_exercise(ui)
    if ui.page.locator(scenarios.LIVE_BIT).count():
        record(f"voila click->HTML latency, BitFlipper {name} (ms)",
               scenarios.check_bitflipper(ui))
    if ui.page.locator(".hvmio-timing").count():
        scenarios.check_timing_extremes(ui)
    ui.assert_no_widget_errors()
