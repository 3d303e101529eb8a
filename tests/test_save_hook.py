"""The save hook and the static views: a notebook saved from JupyterLab, reopened without a
kernel, must fall back to each widget's static view instead of "model not found"."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import nbformat
import pytest

from hvmio_lab.checks import practice_02
from hvmio_lab.fields import EXITINFO1
from hvmio_lab.guest import Guest
from hvmio_lab.widgets import (
    BitFlipper,
    DecoderWidget,
    DefectExplorer,
    ExitStepper,
    FastPathExplorer,
    TimingPanel,
    exercise,
    practice,
    predict,
)
from hvmio_lab.widgets.save_hook import (
    NO_STATIC_VIEW,
    WIDGET_STATE,
    WIDGET_VIEW,
    main,
    pre_save_hook,
    strip_widget_views,
)


def _view(model_id: str, html: str | None = "<b>static</b>") -> dict:
    data = {"text/plain": "Widget(...)", WIDGET_VIEW: {"version_major": 2, "version_minor": 0,
                                                       "model_id": model_id}}
    if html is not None:
        data["text/html"] = html
    return nbformat.v4.new_output("display_data", data=data)


def _notebook(stored: tuple[str, ...] = ()) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("w")
    cell.outputs = [_view("live-1"), _view("stored-1"), _view("bare", html=None),
                    nbformat.v4.new_output("stream", text="printed\n")]
    nb.cells = [cell, nbformat.v4.new_markdown_cell("text")]
    if stored:
        nb.metadata["widgets"] = {WIDGET_STATE: {"version_major": 2, "version_minor": 0,
                                                 "state": {m: {} for m in stored}}}
    return nb


def test_every_view_loses_its_reference_and_keeps_its_static_view():
    nb = _notebook()
    assert strip_widget_views(nb) == 3
    outputs = nb.cells[0].outputs
    assert all(WIDGET_VIEW not in (o.get("data") or {}) for o in outputs)
    assert outputs[0]["data"]["text/html"] == "<b>static</b>"
    assert outputs[2]["data"]["text/plain"] == "Widget(...)"
    assert outputs[3]["text"] == "printed\n"
    nbformat.validate(nb)


def test_stored_state_goes_too():
    """Stored state draws in nbconvert's HTML only with a manager fetched from unpkg.com, and
    JupyterLab drops it on its own next save: the static view is what always reads."""
    nb = _notebook(stored=("stored-1",))
    assert strip_widget_views(nb) == 3
    assert "widgets" not in nb.metadata
    nbformat.validate(nb)


def test_an_output_left_empty_still_reads():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("w")
    cell.outputs = [nbformat.v4.new_output("display_data", data={WIDGET_VIEW: {"model_id": "x"}})]
    nb.cells = [cell]
    strip_widget_views(nb)
    assert cell.outputs[0]["data"] == {"text/plain": NO_STATIC_VIEW}


def test_pre_save_hook_edits_notebook_models_only():
    nb = _notebook()
    model = {"type": "notebook", "content": nb}
    pre_save_hook(model, path="x.ipynb", contents_manager=None)
    assert not any(WIDGET_VIEW in (o.get("data") or {}) for o in nb.cells[0].outputs)
    text = {"type": "file", "content": json.dumps(_notebook())}
    before = copy.deepcopy(text)
    pre_save_hook(text)
    assert text == before


def test_main_rewrites_files(tmp_path, capsys):
    path = tmp_path / "nb.ipynb"
    nbformat.write(_notebook(), path)
    assert main([str(path)]) == 0
    assert "3 widget views removed" in capsys.readouterr().out
    assert WIDGET_VIEW not in path.read_text()


def test_save_hook_imports_no_jupyter():
    import subprocess
    import sys

    code = ("import sys, hvmio_lab.widgets.save_hook; "
            "print(sorted(m for m in ('ipywidgets', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


WIDGETS = {
    "BitFlipper": lambda: BitFlipper(EXITINFO1, 0x1F480241),
    "DecoderWidget": lambda: DecoderWidget("26 67 F3 6F", 32),
    "ExitStepper": lambda: ExitStepper(Guest("uart_hello")),
    "TimingPanel": lambda: TimingPanel("amd-k8-2010", chart=False),
    "exercise": lambda: exercise("02_1"),
    "practice": lambda: practice(practice_02(seed=1)),
    "predict": lambda: predict("How many?", reveal="3"),
    "FastPathExplorer": FastPathExplorer,
    "DefectExplorer": DefectExplorer,
}


@pytest.mark.parametrize("name", sorted(WIDGETS))
def test_every_widget_output_carries_a_static_view(name):
    bundle = WIDGETS[name]()._repr_mimebundle_()
    assert WIDGET_VIEW in bundle
    html, plain = bundle.get("text/html", ""), bundle.get("text/plain", "")
    assert len(html) > 80 and "<" in html
    assert plain and not plain.startswith(("VBox(", "HBox("))


NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_notebooks_carry_static_views_only(path):
    """As shipped, as nbconvert renders it and on GitHub: no output points at a widget model
    (which could only show an error or nothing), and every widget output has its HTML."""
    nb = json.loads(path.read_text())
    assert "widgets" not in nb["metadata"], "stored widget state: run the save hook over it"
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            data = out.get("data") or {}
            assert WIDGET_VIEW not in data, f"cell {i}: a widget view without a kernel"


def test_nbconvert_html_shows_the_static_views():
    """Static HTML (nbconvert) of a chapter: every widget output is its table or question,
    with no widget-view script left to fail or stay blank offline."""
    from nbconvert import HTMLExporter

    path = next(p for p in NOTEBOOKS if p.name.startswith("02-"))
    body, _ = HTMLExporter().from_filename(str(path))
    assert WIDGET_VIEW not in body
    assert "hvmio-static" in body and "Answer in the live notebook" in body  # exercises
    assert "<table class=\"hvmio-table\">" in body or "<table class='hvmio-table'>" in body
