"""DecoderWidget fixes: single-digit bytes stay separate bytes (checked against capstone), the
note for trailing bytes shows as in the text form, and a mode set to None is a message."""

from __future__ import annotations

import capstone
import pytest

from hvmio_lab.widgets import DecoderWidget

_CS = {32: capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32)}


@pytest.mark.parametrize(("typed", "code"), [
    ("0x6, 0xc", b"\x06\x0c"),
    (r"\x6\xc", b"\x06\x0c"),
    ("0xf3 0x6c", b"\xf3\x6c"),
    ("0x6 c", None),  # a bare single digit is not a whole byte
])
def test_bytes_with_prefixes_are_one_byte_each(typed, code):
    w = DecoderWidget(typed, 32)
    if code is None:
        assert w.instruction is None and "hex digit" in w.error_text
        return
    insn = next(_CS[32].disasm(code, 0), None)
    if insn is not None and insn.mnemonic.startswith(("in", "out", "rep")):
        assert w.instruction is not None and w.instruction.code == code[: insn.size]
    else:  # 06 is PUSH ES, not an I/O instruction: refused, and named as byte 0x06
        assert w.instruction is None and "0x06" in w.error_text


def test_trailing_bytes_get_the_note_the_text_form_prints():
    w = DecoderWidget("ec 90 90", 64)
    assert w.instruction.text.startswith("in")
    assert "next instruction" in w.decoded.value and "90 90" in w.decoded.value
    assert "next instruction" in repr(w)
    bundle = w._repr_mimebundle_()
    assert "next instruction" in bundle["text/html"]


def test_mode_set_to_none_is_a_message_and_recovers():
    w = DecoderWidget("ed", 32)
    w.mode.value = None
    assert w.instruction is None and "pick a mode" in w.error_text
    assert "pick a mode" in repr(w)
    w.mode.value = 64
    assert w.error_text == "" and w.instruction.text.startswith("in")
