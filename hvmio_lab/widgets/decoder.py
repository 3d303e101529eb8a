"""DecoderWidget: type instruction bytes, pick the mode, see the decode or the refusal.

A text box for hex bytes and a mode dropdown; below them, the byte-by-byte table from
``hvmio_lab.decoder.explain`` and the decoded fields, or the ``InvalidInstruction`` message
in place (never a traceback). The widget only wires the core together with ``observe``:
everything it shows comes from ``decode_instruction``, ``explain`` and ``describe``.

Drive it from Python as a test or a notebook would::

    w = DecoderWidget("26 67 F3 6F", mode=32)
    w.instruction.text    # 'rep outsd dx, dword ptr es:[si]'
    w.type_hex("F0 EC")
    w.error_text          # 'byte 0xf0 at offset 0 is LOCK, which raises #UD on IN/OUT/INS/OUTS'

CSS classes (for the browser tests): ``hvmio-decoder`` the whole widget; ``hvmio-hex`` the
bytes box; ``hvmio-mode`` the mode dropdown; ``hvmio-decoded`` the decode tables (empty on
error); ``hvmio-error`` the message (empty when the bytes decode).
"""

from __future__ import annotations

import html

import ipywidgets as W

from ..decoder import (
    IoInstruction,
    decode_instruction,
    decode_table,
    describe,
    explain,
    parse_hex,
)
from ..errors import InvalidInstruction

MODES = (("16-bit", 16), ("32-bit", 32), ("64-bit", 64))
MODE_BITS = {bits for _, bits in MODES}
NO_MODE = "pick a mode: 16-, 32- or 64-bit"


def _table(head: tuple[str, ...], rows: list[tuple[str, ...]], cls: str) -> str:
    th = "".join(f"<th style='text-align:left;padding:0 8px'>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td style='padding:0 8px'>{html.escape(c)}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return f"<table class='{cls}'><tr>{th}</tr>{body}</table>"


class DecoderWidget(W.VBox):
    """Hex bytes + mode in, the decoder's answer out; redrawn by one observer."""

    def __init__(self, code: str = "26 67 F3 6F", mode: int = 32):
        self.hex = W.Text(value=code, description="bytes", continuous_update=True)
        self.hex.add_class("hvmio-hex")
        self.mode = W.Dropdown(options=MODES, value=mode, description="mode")
        self.mode.add_class("hvmio-mode")
        self.decoded = W.HTML()
        self.decoded.add_class("hvmio-decoded")
        self.error = W.HTML()
        self.error.add_class("hvmio-error")
        self.instruction: IoInstruction | None = None
        self.error_text = ""
        super().__init__([W.HBox([self.hex, self.mode]), self.error, self.decoded])
        self.add_class("hvmio-decoder")
        self.hex.observe(self._redraw, "value")
        self.mode.observe(self._redraw, "value")
        self._redraw()

    def type_hex(self, text: str) -> None:
        """Type ``text`` into the bytes box, as a learner would."""
        self.hex.value = text

    def choose_mode(self, mode: int) -> None:
        self.mode.value = mode

    @property
    def rows(self) -> tuple[tuple[str, str], ...]:
        """The decoded fields as shown, or () when the bytes are refused."""
        return describe(self.instruction) if self.instruction else ()

    def __repr__(self) -> str:
        """What a notebook shows without a live kernel: the same decode, as text."""
        if self.mode.value not in MODE_BITS:
            return f"DecoderWidget\n{NO_MODE}"
        try:
            text = decode_table(parse_hex(self.hex.value), self.mode.value)
        except InvalidInstruction as e:
            text = f"{self.hex.value!r}: {e}"
        return f"DecoderWidget\n{text}"

    def _repr_mimebundle_(self, **kwargs):
        """The live widget, plus the same decode as text for a page without a kernel."""
        data = super()._repr_mimebundle_(**kwargs) or {}
        data["text/plain"] = repr(self)
        data["text/html"] = f"<pre>{html.escape(repr(self))}</pre>"
        return data

    def _refuse(self, message: str) -> None:
        self.instruction, self.error_text = None, message
        self.error.value = (
            f"<span style='color:#b00000;font-weight:bold'>✗ {html.escape(message)}</span>"
        )
        self.decoded.value = ""

    def _redraw(self, change=None) -> None:
        if self.mode.value not in MODE_BITS:  # set to None from code: say so, stay usable
            self._refuse(NO_MODE)
            return
        try:
            code = parse_hex(self.hex.value)
            insn = decode_instruction(code, self.mode.value)
        except InvalidInstruction as e:
            self._refuse(str(e))
            return
        self.instruction, self.error_text = insn, ""
        self.error.value = ""
        roles = [(str(r.offset), f"{r.byte:02X}", r.role) for r in explain(insn)]
        rest = ""
        if insn.length < len(code):
            rest = (f"<p><i>Bytes from offset {insn.length} on ({code[insn.length:].hex(' ')}) "
                    "belong to the next instruction: only the first is decoded.</i></p>")
        self.decoded.value = (
            f"<p><code>{html.escape(insn.text)}</code></p>"
            + _table(("offset", "byte", "what it does"), roles, "hvmio-table hvmio-bytes")
            + rest
            + _table(("field", "value"), list(describe(insn)[1:]), "hvmio-table hvmio-fields")
        )
