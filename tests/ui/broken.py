"""A negative-control notebook for the harness: it must make the real-notebook checks fail.

The widget CSS contract the scenarios rely on is described in ``tests/ui/README.md``.
"""

from __future__ import annotations

import nbformat

BROKEN_NAME = "zz-ui-broken.ipynb"


def broken_notebook() -> str:
    """A negative control: a widget whose view module does not exist, a button whose
    callback raises, then 1/0."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import ipywidgets as w\n"
            "from traitlets import Unicode\n\n\n"
            "class NoSuchView(w.DOMWidget):\n"
            '    _view_name = Unicode("NoSuchView").tag(sync=True)\n'
            '    _view_module = Unicode("hvmio-no-such-module").tag(sync=True)\n'
            '    _view_module_version = Unicode("1.0.0").tag(sync=True)\n\n\n'
            "NoSuchView()"
        ),
        nbformat.v4.new_code_cell(
            "def boom(_):\n"
            "    raise ValueError('raised in a widget callback')\n\n\n"
            "b = w.Button(description='boom')\n"
            "b.add_class('hvmio-boom')\n"
            "b.on_click(boom)\n"
            "b"
        ),
        nbformat.v4.new_code_cell("1 / 0"),
        nbformat.v4.new_code_cell("'never runs'"),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    return nbformat.writes(nb)
