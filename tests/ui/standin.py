"""A stand-in notebook that honours the workbook's widget CSS contract.

It lets the harness (and the scenario checks in ``scenarios.py``) be proved before the
real notebooks exist.  Contract, as the real widgets are expected to follow it:

BitFlipper
    ``.hvmio-flipper``  the whole widget (a notebook may show several, some read-only)
    ``.hvmio-bit``      ToggleButtons, one per EXITINFO1 bit (``disabled`` if read-only)
    ``.hvmio-decoded``  HTML widget whose text is the decoded field table
    ``.hvmio-hex``      Text widget (class on the wrapper; an <input> inside)
    ``.hvmio-error``    HTML widget, empty until the typed value is invalid
ExitStepper (scoped by the cell output holding its button)
    ``.hvmio-step``     Button
    ``.hvmio-regs``     HTML widget with the register dump
    ``.hvmio-rip``      the highlighted listing line (an element inside an HTML widget)
"""

from __future__ import annotations

import nbformat

STANDIN_NAME = "zz-ui-standin.ipynb"

_FLIPPER = r'''
import html
import ipywidgets as w

SZ = {4: "SZ8", 5: "SZ16", 6: "SZ32"}
NAMES = {0: "TYPE", 2: "STR", 3: "REP", 4: "SZ8", 5: "SZ16", 6: "SZ32"}


class StandInFlipper(w.VBox):
    """Eight bits of a fake EXITINFO1, echoing the real BitFlipper's classes."""

    def __init__(self, readonly=False):
        self.bits = [w.ToggleButton(description=str(i), layout=w.Layout(width="3.2em"),
                                    disabled=readonly)
                     for i in reversed(range(8))]
        self.decoded = w.HTML()
        self.hex = w.Text(value="0x00", continuous_update=False, description="hex")
        self.error = w.HTML()
        for b in self.bits:
            b.add_class("hvmio-bit")
            b.observe(self._from_bits, "value")
        self.decoded.add_class("hvmio-decoded")
        self.hex.add_class("hvmio-hex")
        self.error.add_class("hvmio-error")
        self.hex.observe(self._from_hex, "value")
        super().__init__([w.HBox(self.bits), self.hex, self.decoded, self.error])
        self.add_class("hvmio-flipper")
        self._from_bits()

    def value(self):
        return sum(1 << int(b.description) for b in self.bits if b.value)

    def _from_bits(self, _=None):
        v = self.value()
        self.hex.value = f"0x{v:02x}"
        rows = "".join(f"<tr><td>{html.escape(n)}</td><td>{(v >> i) & 1}</td></tr>"
                       for i, n in sorted(NAMES.items()))
        self.decoded.value = f"<table><tr><th>value</th><td>0x{v:02x}</td></tr>{rows}</table>"

    def _from_hex(self, change):
        try:
            v = int(change["new"], 0)
        except ValueError:
            self.error.value = f"not a number: {html.escape(change['new'])}"
            return
        sizes = [name for bit, name in SZ.items() if (v >> bit) & 1]
        if len(sizes) > 1:
            self.error.value = "SZ bits are one-hot, got " + " + ".join(sizes)
            return
        self.error.value = ""
        for b in self.bits:
            b.value = bool((v >> int(b.description)) & 1)


# A read-only flipper first (as a notebook showing a recorded exit might), then a live one.
w.VBox([StandInFlipper(readonly=True), StandInFlipper()])
'''

_STEPPER = r'''
class StandInStepper(w.VBox):
    """A three-instruction listing with a RIP marker and a register dump."""

    LISTING = ["mov dx, 0x3f8", "mov al, 0x41", "out dx, al", "hlt"]

    def __init__(self):
        self.i = 0
        self.rax = 0
        self.step = w.Button(description="step")
        self.step.add_class("hvmio-step")
        self.regs = w.HTML()
        self.regs.add_class("hvmio-regs")
        self.listing = w.HTML()
        self.step.on_click(self._step)
        super().__init__([self.step, self.listing, self.regs])
        self._show()

    def _step(self, _):
        self.i = min(self.i + 1, len(self.LISTING) - 1)
        self.rax += 0x41
        self._show()

    def _show(self):
        lines = [
            f'<div class="hvmio-rip" style="background:#ff0">{1000 + 3 * k:#x}: {s}</div>'
            if k == self.i else f"<div>{1000 + 3 * k:#x}: {s}</div>"
            for k, s in enumerate(self.LISTING)
        ]
        self.listing.value = "".join(lines)
        self.regs.value = f"<pre>RIP={1000 + 3 * self.i:#x} RAX={self.rax:#x}</pre>"


StandInStepper()
'''


def standin_notebook() -> str:
    """The stand-in notebook as .ipynb text (a markdown cell, two widget cells, 1+1)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# UI harness stand-in\nNot part of the workbook."),
        nbformat.v4.new_code_cell(_FLIPPER.strip()),
        nbformat.v4.new_code_cell(_STEPPER.strip()),
        nbformat.v4.new_code_cell(""),
        nbformat.v4.new_code_cell("1 + 1"),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    return nbformat.writes(nb)


BROKEN_NAME = "zz-ui-broken.ipynb"


def broken_notebook() -> str:
    """A negative control: a widget whose view module does not exist, then 1/0."""
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
        nbformat.v4.new_code_cell("1 / 0"),
        nbformat.v4.new_code_cell("'never runs'"),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    return nbformat.writes(nb)
