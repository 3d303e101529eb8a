"""Save notebooks so that no widget output can show "Error displaying widget: model not found".

A widget output stores a reference to a model (``application/vnd.jupyter.widget-view+json``)
beside its static view (``text/html``, ``text/plain``). The model lives in the kernel; once the
kernel is gone nothing can draw it, and JupyterLab 4 shows the red error line instead of falling
back to the static view (jupyterlab/jupyterlab#15361). JupyterLab does not store widget state by
default, and saving a notebook that had stored state drops it (ipywidgets#3888). Stored state
would not be enough anyway: nbconvert's HTML draws it only with a widget manager fetched from
unpkg.com, so offline (or on GitHub) the output is blank, and what it draws is a frozen copy
that does not respond to clicks.

So the rule is the simplest one that always holds: on every save, every widget-view reference
is removed, and with it any stored widget state. What remains is each output's static view,
which JupyterLab, Voilà's source view, nbconvert and GitHub all render; running the cell again
makes the widget live. The workbook's own widgets make that static view worth reading (the
table, the decode, the question: see ``hvmio_lab.widgets.static``).

Wired by ``make lab`` and ``hvmio-lab lab`` as the Jupyter server's
``ContentsManager.pre_save_hook = "hvmio_lab.widgets.save_hook.pre_save_hook"``. Run as a
script it stores notebooks the same way: ``python -m hvmio_lab.widgets.save_hook NB.ipynb…``.
It imports nothing from Jupyter or ipywidgets: the server loads it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
NO_STATIC_VIEW = "(a widget: run the cell to show it)"


def strip_widget_views(nb: MutableMapping[str, Any]) -> int:
    """Drop every widget-view reference and any stored widget state; return how many views.

    An output left with no data at all gets a one-line text, so that it still reads."""
    dropped = 0
    for cell in nb.get("cells", []):
        for output in cell.get("outputs") or []:
            data = output.get("data")
            if not data or WIDGET_VIEW not in data:
                continue
            del data[WIDGET_VIEW]
            dropped += 1
            if not data:
                data["text/plain"] = NO_STATIC_VIEW
    nb.get("metadata", {}).pop("widgets", None)
    return dropped


def pre_save_hook(model: MutableMapping[str, Any], **kwargs: Any) -> None:
    """jupyter_server's pre-save hook: notebooks are saved with their static views only."""
    if model.get("type") == "notebook" and isinstance(model.get("content"), MutableMapping):
        strip_widget_views(model["content"])


def main(paths: list[str]) -> int:
    """Rewrite each notebook file in place (only when something changed); print a summary."""
    for name in paths:
        path = Path(name)
        nb = json.loads(path.read_text(encoding="utf-8"))
        had_state = "widgets" in nb.get("metadata", {})
        n = strip_widget_views(nb)
        if n or had_state:
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"{path}: {n} widget view{'s' if n != 1 else ''} removed"
              + (", stored widget state dropped" if had_state else ""))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
