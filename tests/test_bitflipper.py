"""The BitFlipper widget, driven from Python as a learner's clicks would drive it."""

import pytest

from hvmio_lab import EXIT_QUALIFICATION, EXITINFO1, INSTRUCTION_INFO, ExitInfoError
from hvmio_lab.widgets import BitFlipper
from hvmio_lab.widgets.bitflipper import parse_register_text

IN_EAX_DX = 0x1F480241  # TYPE, SZ32, A64, port 0x1F48 (APM table, bit by bit)


def rows(bf):
    return {(r.bits, r.field): r for r in bf.table_rows}


def test_toggles_are_one_per_bit_msb_first_with_css_classes():
    bf = BitFlipper(EXITINFO1, IN_EAX_DX)
    bits = [w for w in bf.bit_toggles.values()]
    assert sorted(bf.bit_toggles) == list(range(32))
    assert all("hvmio-bit" in w._dom_classes for w in bits)
    assert "hvmio-high" in bf.high_toggle._dom_classes  # 63:32 as one toggle
    assert "hvmio-hex" in bf.hex._dom_classes and not bf.hex.continuous_update
    assert "hvmio-decoded" in bf.decoded._dom_classes
    assert "hvmio-error" in bf.error._dom_classes
    assert "hvmio-translated" in bf.translated._dom_classes
    # the DOM order of the per-bit toggles is MSB first
    found = []

    def walk(w):
        if "hvmio-bit" in getattr(w, "_dom_classes", ()):
            found.append(w.tooltip)
        for child in getattr(w, "children", ()):
            walk(child)

    walk(bf)
    assert found[0].startswith("bit 31") and found[-1].startswith("bit 0")
    assert len(found) == 32


def test_initial_state_shows_value_table_and_no_error():
    bf = BitFlipper(EXITINFO1, IN_EAX_DX)
    assert bf.hex.value == "0x1f480241"
    assert bf.error_text == "" and bf.error.value == ""
    assert bf.bit_toggles[0].value and bf.bit_toggles[6].value and bf.bit_toggles[9].value
    assert not bf.bit_toggles[1].value and not bf.high_toggle.value
    assert rows(bf)[("0", "TYPE")].meaning == "IN"
    assert "IN" in bf.decoded.value and "0x1f48" in bf.decoded.value


def test_clicking_a_bit_updates_value_table_and_hex():
    bf = BitFlipper(EXITINFO1, IN_EAX_DX)
    bf.bit_toggles[0].value = False  # the learner un-presses TYPE
    assert bf.value == IN_EAX_DX & ~1
    assert rows(bf)[("0", "TYPE")].meaning == "OUT"
    assert bf.hex.value == "0x1f480240"
    assert bf.bit_toggles[0].description == "0"
    assert ">OUT<" in bf.decoded.value


def test_flipping_into_an_invalid_value_shows_the_error_in_place():
    bf = BitFlipper(EXITINFO1, IN_EAX_DX)
    bf.toggle(5)  # SZ16 as well as SZ32
    assert "SZ" in bf.error_text and "one-hot" in bf.error_text
    assert "SZ" in bf.error.value and "Traceback" not in bf.error.value
    assert not rows(bf)[("6:4", "SZ")].ok
    bf.toggle(5)
    assert bf.error_text == "" and bf.error.value == ""


def test_reserved_bits_and_the_high_half():
    bf = BitFlipper(EXITINFO1, IN_EAX_DX)
    bf.toggle(1)
    assert "reserved" in bf.error_text
    bf.toggle(1)
    bf.high_toggle.value = True  # "63:32 ≠ 0"
    assert bf.value == IN_EAX_DX | 1 << 32
    assert "63:32" in bf.error_text
    bf.value = IN_EAX_DX | 1 << 50  # a bit set from Python shows on the block toggle
    assert bf.high_toggle.value
    bf.high_toggle.value = False  # clears all of 63:32
    assert bf.value == IN_EAX_DX and bf.error_text == ""


def test_typing_hex():
    bf = BitFlipper(EXITINFO1, IN_EAX_DX)
    bf.type_hex("0x70")  # the browser tests' invalid value: SZ8|SZ16|SZ32
    assert bf.value == 0x70 and "SZ" in bf.error_text
    bf.type_hex("0x1f48_0241")  # hvmio_lab.numbers: 0x for hex, plain digits decimal
    assert bf.value == IN_EAX_DX and bf.error_text == ""
    bf.type_hex("zz")
    assert bf.value == IN_EAX_DX and "not a number" in bf.error_text
    bf.type_hex("0x1" + "0" * 16)  # 65 bits
    assert bf.value == IN_EAX_DX and "64 bits" in bf.error_text
    bf.toggle(0)  # any valid change clears the input error
    assert bf.error_text == ""


@pytest.mark.parametrize(("text", "value"), [
    ("0x1f480241", IN_EAX_DX), ("0X1F480241", IN_EAX_DX), (" 0b101 ", 5), ("0o17", 15),
    ("10", 10),
])  # fmt: skip
def test_parse_register_text(text, value):
    assert parse_register_text(text) == value


@pytest.mark.parametrize("text", ["", "0xg", "1.5", "--", "1f480241"])
def test_parse_register_text_refuses(text):
    with pytest.raises(ExitInfoError):
        parse_register_text(text)


def test_value_out_of_range_from_python_is_refused():
    bf = BitFlipper(EXIT_QUALIFICATION, 0x600048)
    with pytest.raises(ExitInfoError):
        bf.value = 1 << 64
    with pytest.raises(ExitInfoError):
        bf.toggle(64)
    assert bf.value == 0x600048


def test_vmx_layout_decodes_the_keyboard_sample():
    bf = BitFlipper(EXIT_QUALIFICATION, 0x600048)  # in al, 0x60
    r = rows(bf)
    assert r[("6", "operand encoding")].meaning == "immediate port"
    assert r[("3", "direction")].meaning == "IN"
    assert r[("2:0", "size")].meaning == "1 byte"
    bf.toggle(1)  # size − 1 = 2: never used
    assert "size" in bf.error_text
    bf.toggle(1)
    bf.toggle(4)  # string with an immediate port
    assert "operand encoding" in bf.error_text


def test_translation_svm_to_vmx_asks_for_the_immediate_bit():
    bf = BitFlipper(EXITINFO1, 0xCF80140)  # out dx, eax to 0xCF8
    assert bf.translated_value is None  # switch off
    bf.switch.value = True
    assert bf.translated_value is None and "DX or an immediate" in bf.translated_text
    bf.immediate_choice.value = "DX"
    assert bf.translated_value == 0x0CF80003  # size−1 = 3, OUT, DX (SDM table)
    assert "0xcf80003" in bf.translated.value
    bf.toggle(0)  # now IN: the translation follows
    assert bf.translated_value == 0x0CF8000B
    bf.toggle(5)  # invalid: nothing to translate
    assert bf.translated_value is None and "nothing to translate" in bf.translated_text


def test_translation_vmx_to_svm_asks_for_address_size_and_segment():
    bf = BitFlipper(EXIT_QUALIFICATION, 0x600048)  # in al, 0x60
    bf.translate()
    assert bf.translated_value is None and "address size" in bf.translated_text
    bf.translate(address_size=32)
    assert bf.translated_value == 0x00600111  # TYPE, SZ8 (bit 4), A32 (bit 8), PORT 0x60
    bf.value = 0x3F80030  # rep outsb to 0x3F8: needs the segment too
    assert bf.translated_value is None and "segment" in bf.translated_text
    bf.translate(segment="DS")
    # STR, REP, SZ8, A32, SEG 3, PORT 0x3F8
    assert bf.translated_value == (0x3F8 << 16) | (3 << 10) | (1 << 8) | (1 << 4) | 0b1100


def test_imm8_choice_for_a_wide_port_is_refused():
    bf = BitFlipper(EXITINFO1, 0x1F480241)  # port 0x1f48 cannot come from an imm8
    bf.translate(immediate=True)
    assert bf.translated_value is None
    assert "cannot translate" in bf.translated_text and "imm8" in bf.translated_text


def test_readonly_disables_input_but_shows_values():
    bf = BitFlipper(EXITINFO1, IN_EAX_DX, readonly=True)
    assert all(t.disabled for t in bf.bit_toggles.values())
    assert bf.hex.disabled and bf.high_toggle.disabled
    bf.value = 0x600211  # the stepper sets a new record
    assert bf.hex.value == "0x600211" and rows(bf)[("31:16", "PORT")].raw == "0x60"


def test_instruction_information_layout_has_no_translation_and_no_high_block():
    bf = BitFlipper(INSTRUCTION_INFO, (1 << 7) | (3 << 15))
    assert sorted(bf.bit_toggles) == list(range(32)) and bf.high_toggle is None
    assert bf.target is None and bf.error_text == ""
    assert rows(bf)[("17:15", "segment")].meaning == "DS"
    bf.value = 7 << 15
    assert "segment" in bf.error_text


def test_static_views_are_deterministic_text_and_html():
    bf = BitFlipper(EXITINFO1, IN_EAX_DX)
    bundle = bf._repr_mimebundle_()
    assert bundle["text/plain"] == "BitFlipper(EXITINFO1, value=0x1f480241)"
    assert "<table" in bundle["text/html"] and "model_id" not in bundle["text/html"]
    assert "application/vnd.jupyter.widget-view+json" in bundle
    text = bf.text()
    assert text.splitlines()[0] == "EXITINFO1 = 0x1f480241"
    assert "access: IN 32-bit port 0x1f48" in text


def _bits_row(bf):
    return next(c for c in bf.children if "hvmio-bits" in getattr(c, "_dom_classes", ()))


def test_the_bit_row_never_wraps_it_scrolls():
    """At 1280–1400 px with the file browser open the 32 bits must stay one row (bit 0 at
    the far right, as the chapter says): the row is nowrap and scrolls sideways, and no
    field group may shrink."""
    bf = BitFlipper(EXITINFO1, IN_EAX_DX)
    row = _bits_row(bf)
    assert row.layout.flex_flow == "row nowrap" and row.layout.overflow == "auto"
    assert all(group.layout.flex == "0 0 auto" for group in row.children)


def _ins_qualification() -> int:
    return EXIT_QUALIFICATION.encode(size=0, direction=1, string=1, REP=0, port=0x3F8,
                                     **{"operand encoding": 0})


def test_translating_an_ins_refuses_any_segment_but_es():
    bf = BitFlipper(EXIT_QUALIFICATION, _ins_qualification())
    for seg in ("CS", "SS", "DS", "FS", "GS"):
        bf.translate(address_size=64, segment=seg)
        assert bf.translated_value is None and "ES" in bf.translated_text, seg
    bf.translate(address_size=64, segment="ES")
    value = bf.translated_value
    assert value is not None and value >> 10 & 7 == 0  # SEG = ES in EXITINFO1 bits 12:10
    assert value & 1 and value >> 2 & 1  # TYPE = IN, STR


def test_choices_set_to_none_from_code_are_messages():
    bf = BitFlipper(EXIT_QUALIFICATION, _ins_qualification())
    bf.translate(address_size=64, segment="ES")
    bf.address_size_choice.value = None
    assert bf.translated_value is None and "address size" in bf.translated_text
    bf.address_size_choice.value = 32
    bf.segment_choice.value = None
    assert bf.translated_value is None and "segment" in bf.translated_text
    svm = BitFlipper(EXITINFO1, IN_EAX_DX)
    svm.translate(immediate=False)
    svm.immediate_choice.value = None
    assert svm.translated_value is None and "port from" in svm.translated_text
