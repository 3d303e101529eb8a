"""The I/O instruction decoder, against capstone 5 as the oracle.

capstone decodes the same bytes independently; for every I/O opcode × prefix combination ×
mode we compare length, operand size, address size, rep, segment and port, and where
capstone refuses the bytes (or decodes something that is not an I/O instruction) we must
refuse them too. Three documented disagreements, where we follow the manuals instead:

1. REX.W right before the opcode together with 66 (``66 48 ED``). SDM Vol. 2 §2.2.1.2:
   REX.W beats 66, and the I/O operands are of type *z*, a doubleword for a 64-bit operand
   size (Appendix A.2.2), so this is ``in eax, dx``. capstone lets 66 win (``in ax, dx``);
   unicorn (QEMU) runs it as a 32-bit IN and the iced decoder reads it so, as we do.
2. ES/CS/SS/DS overrides in 64-bit mode are null prefixes that take no part in the
   multiple-prefix rules (AMD APM Vol. 3 §1.2.4): the effective segment is DS, or the last
   FS/GS if one was given, whatever comes after it. A real CPU uses FS for ``64 26 …``
   (DynamoRIO issue 6003). capstone 5.0 prints the last segment prefix as written
   (``64 26 6E`` shows ``es:[rsi]``; fixed upstream later, capstone PR 2819), and QEMU, so
   unicorn, lets it cancel FS/GS (unicorn issue 1781).
3. LOCK followed by F2 or F3 (``F0 F3 6C``). The three share prefix group 1 and capstone
   keeps only the last, so it prints ``rep insb``. The SDM (LOCK) says LOCK with any
   instruction not on its list raises #UD, whatever else is there, so we refuse. (unicorn
   is no help here: it runs ``F0 EC`` without #UD.)
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import capstone
import pytest
from capstone import x86 as csx
from hypothesis import given, settings
from hypothesis import strategies as st

from hvmio_lab import (
    ExitInfoError,
    InvalidInstruction,
    IoAccess,
    IoInstruction,
    PageFault,
    decode_instruction,
)
from hvmio_lab.decoder import (
    OPCODES,
    FetchedBytes,
    TruncatedInstruction,
    describe,
    explain,
    parse_hex,
)

MODES = (16, 32, 64)
IO_OPCODES = tuple(OPCODES)  # E4 E5 E6 E7 EC ED EE EF 6C 6D 6E 6F
LEGACY = (0x66, 0x67, 0xF3, 0xF2, 0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65)
SEGMENT_BYTES = {0x26: "ES", 0x2E: "CS", 0x36: "SS", 0x3E: "DS", 0x64: "FS", 0x65: "GS"}
REX = tuple(range(0x40, 0x50))
CS_SEGMENTS = {
    csx.X86_REG_ES: "ES", csx.X86_REG_CS: "CS", csx.X86_REG_SS: "SS",
    csx.X86_REG_DS: "DS", csx.X86_REG_FS: "FS", csx.X86_REG_GS: "GS",
}  # fmt: skip
CS_IO = {
    csx.X86_INS_IN: "in", csx.X86_INS_OUT: "out",
    csx.X86_INS_INSB: "ins", csx.X86_INS_INSW: "ins", csx.X86_INS_INSD: "ins",
    csx.X86_INS_OUTSB: "outs", csx.X86_INS_OUTSW: "outs", csx.X86_INS_OUTSD: "outs",
}  # fmt: skip
_CS = {}


class Oracle(NamedTuple):
    text: str  # capstone's spelling: mnemonic and operands
    length: int
    mnemonic: str
    size: int
    address_size: int
    rep: bool
    segment: str | None
    port: int | None


def disassembler(mode: int) -> capstone.Cs:
    if mode not in _CS:
        cs_mode = {16: capstone.CS_MODE_16, 32: capstone.CS_MODE_32, 64: capstone.CS_MODE_64}[mode]
        md = capstone.Cs(capstone.CS_ARCH_X86, cs_mode)
        md.detail = True
        _CS[mode] = md
    return _CS[mode]


def oracle(code: bytes, mode: int) -> Oracle | None:
    """capstone's reading of ``code``, or None if it is not exactly one I/O instruction."""
    insn = next(disassembler(mode).disasm(code, 0, count=1), None)
    if insn is None or insn.id not in CS_IO or insn.size != len(code):
        return None
    mnemonic = CS_IO[insn.id]
    string = mnemonic in ("ins", "outs")
    size, segment, port = None, None, None
    for op in insn.operands:
        if op.type == csx.X86_OP_MEM:
            size = op.size
            default = "ES" if mnemonic == "ins" else "DS"
            segment = CS_SEGMENTS.get(op.mem.segment, default)
        elif op.type == csx.X86_OP_REG and op.reg != csx.X86_REG_DX:
            size = op.size
        elif op.type == csx.X86_OP_REG and not string and len(insn.operands) == 2:
            other = insn.operands[1 if insn.operands[0].reg == csx.X86_REG_DX else 0]
            size = size or (other.size if other.type == csx.X86_OP_REG else None)
        elif op.type == csx.X86_OP_IMM:
            port = op.imm
    if size is None:  # in ax, dx: both operands are DX-sized registers
        size = insn.operands[0].size
    return Oracle(
        f"{insn.mnemonic} {insn.op_str}", insn.size, mnemonic, size, 8 * insn.addr_size,
        string and insn.prefix[0] in (0xF2, 0xF3), segment, port,
    )  # fmt: skip


def capstone_spelling(expected: Oracle) -> str:
    """capstone's text with the two spellings IoInstruction.text documents as its own: the
    memory operand always names its segment, and the imm8 port is always hex."""
    text = expected.text
    if "ptr [" in text:
        text = text.replace("ptr [", f"ptr {expected.segment.lower()}:[")
    if expected.port is not None:  # capstone: "in al, 5" and "in al, 0x60"
        mnemonic, operands = text.split(" ", 1)
        hexed = [f"{expected.port:#x}" if op in (str(expected.port), f"{expected.port:#x}")
                 else op for op in operands.split(", ")]  # fmt: skip
        text = f"{mnemonic} {', '.join(hexed)}"
    return text


def prefix_run(code: bytes, mode: int) -> int:
    """How many leading bytes are prefixes in ``mode``."""
    prefixes = (*LEGACY, 0xF0, *(REX if mode == 64 else ()))
    return next((i for i, b in enumerate(code) if b not in prefixes), len(code))


def rex_w_with_66(code: bytes, mode: int) -> bool:
    """Disagreement 1: an effective REX.W (right before the opcode) alongside a 66 prefix."""
    if mode != 64 or len(code) < 2:
        return False
    op_at = next(i for i, b in enumerate(code) if b not in LEGACY and b not in REX)
    return op_at >= 1 and code[op_at - 1] in REX and code[op_at - 1] & 8 and 0x66 in code[:op_at]


def assert_agrees(code: bytes, mode: int) -> IoInstruction | None:
    """Our decode equals capstone's, or both refuse; returns our decode."""
    if 0xF0 in code[: min(prefix_run(code, mode), 15)]:  # disagreement 3: LOCK is #UD, always
        with pytest.raises(InvalidInstruction, match="is LOCK"):
            decode_instruction(code, mode)
        return None
    expected = oracle(code, mode)
    if expected is None:
        with pytest.raises(InvalidInstruction):
            decode_instruction(code, mode)
        return None
    got = decode_instruction(code, mode)
    assert (got.length, got.mnemonic, got.address_size, got.rep, got.port) == (
        expected.length, expected.mnemonic, expected.address_size, expected.rep, expected.port,
    ), code.hex(" ")  # fmt: skip
    agreed = True
    if (
        rex_w_with_66(code, mode)
        and OPCODES[code[got.length - 1 - got.immediate]].byte_form is False
    ):
        assert (expected.size, got.size) == (2, 4), code.hex(" ")  # disagreement 1
        agreed = False
    else:
        assert got.size == expected.size, code.hex(" ")
    if mode == 64 and expected.segment in ("ES", "CS", "SS", "DS") and got.mnemonic == "outs":
        fs_gs = [SEGMENT_BYTES[b] for b in code if b in (0x64, 0x65)]  # disagreement 2
        assert got.segment == (fs_gs[-1] if fs_gs else "DS"), code.hex(" ")
        agreed = agreed and got.segment == expected.segment
    else:
        assert got.segment == expected.segment, code.hex(" ")
    if agreed:  # the text, too, is capstone's but for the spellings it documents
        assert got.text == capstone_spelling(expected), code.hex(" ")
    assert got.is_in == (got.mnemonic in ("in", "ins"))
    assert got.string == (got.mnemonic in ("ins", "outs"))
    assert got.immediate == (expected.port is not None)
    return got


def with_operands(prefixes: tuple[int, ...], opcode: int, imm: int = 0x60) -> bytes:
    return bytes(prefixes) + bytes([opcode]) + (bytes([imm]) if OPCODES[opcode].immediate else b"")


# ---------------------------------------------------------------- capstone, exhaustively


PREFIX_SETS = [
    tuple(p for p in (osz, asz, rep) if p) + seg + rex
    for osz, asz, rep in itertools.product((0, 0x66), (0, 0x67), (0, 0xF3, 0xF2))
    for seg in [(), *((s,) for s in SEGMENT_BYTES)]
    for rex in ((), (0x40,), (0x48,), (0x41,))
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("opcode", IO_OPCODES, ids=lambda op: f"{op:02X}")
def test_every_opcode_and_prefix_set_agrees_with_capstone(opcode, mode):
    decoded = 0
    for prefixes in PREFIX_SETS:
        decoded += assert_agrees(with_operands(prefixes, opcode), mode) is not None
    assert decoded >= len(PREFIX_SETS) // 4  # REX makes 3/4 of them INC/DEC outside 64-bit mode


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("opcode", IO_OPCODES, ids=lambda op: f"{op:02X}")
def test_ordered_prefix_pairs_agree_with_capstone(opcode, mode):
    for first, second in itertools.product((*LEGACY, 0x48), repeat=2):
        assert_agrees(with_operands((first, second), opcode), mode)


@settings(max_examples=200, deadline=None)
@given(
    mode=st.sampled_from(MODES),
    prefixes=st.lists(st.sampled_from((*LEGACY, 0xF0, *REX)), max_size=16),
    opcode=st.sampled_from(IO_OPCODES),
    imm=st.integers(0, 255),
    cut=st.integers(0, 2),
)
def test_random_prefix_strings_agree_with_capstone(mode, prefixes, opcode, imm, cut):
    code = with_operands(tuple(prefixes), opcode, imm)
    code = code[: len(code) - cut] if cut else code
    assert_agrees(code, mode)


# ---------------------------------------------------------------- the rules, one by one


def test_the_chapter_04_exercise():
    insn = decode_instruction(bytes.fromhex("66 67 F3 6D"), 16)
    assert (insn.text, insn.size, insn.address_size, insn.rep, insn.segment) == (
        "rep insd dword ptr es:[edi], dx", 4, 32, True, "ES",
    )  # fmt: skip
    assert insn.prefixes == ("o32", "a32", "rep")
    assert insn.length == 4


@pytest.mark.parametrize(
    ("mode", "code", "size"),
    [(16, "ED", 2), (16, "66 ED", 4), (32, "ED", 4), (32, "66 ED", 2), (64, "ED", 4),
     (64, "66 ED", 2), (64, "66 66 ED", 2), (32, "66 EC", 1), (64, "48 ED", 4),
     (64, "66 48 ED", 4), (64, "48 66 ED", 2), (64, "66 48 EC", 1)],
)  # fmt: skip
def test_operand_size(mode, code, size):
    assert decode_instruction(bytes.fromhex(code), mode).size == size


@pytest.mark.parametrize(
    ("mode", "code", "address_size"),
    [(16, "6C", 16), (16, "67 6C", 32), (32, "6C", 32), (32, "67 6C", 16), (64, "6C", 64),
     (64, "67 6C", 32), (64, "67 67 6C", 32), (16, "67 EC", 32)],
)  # fmt: skip
def test_address_size(mode, code, address_size):
    assert decode_instruction(bytes.fromhex(code), mode).address_size == address_size


@pytest.mark.parametrize("mode", MODES)
def test_f2_repeats_string_io_like_f3(mode):
    """F2 is "REPNE", but INS/OUTS do not test ZF: both prefixes just repeat (unicorn too,
    see test_emulator.py::test_f2_repeats_in_unicorn_too)."""
    for opcode in (0x6C, 0x6D, 0x6E, 0x6F):
        f2 = decode_instruction(bytes([0xF2, opcode]), mode)
        f3 = decode_instruction(bytes([0xF3, opcode]), mode)
        assert f2.rep and f3.rep and f2.access(0) == f3.access(0)
        assert f2.prefixes == ("repne",)


@pytest.mark.parametrize("mode", MODES)
def test_rep_is_ignored_on_in_and_out(mode):
    for code in ("F3 EC", "F2 ED", "F3 E4 60", "F2 F3 EE"):
        insn = decode_instruction(bytes.fromhex(code), mode)
        assert not insn.rep and not insn.access(0).rep


def test_segments():
    outs = [
        ("2E 6E", 32, "CS"), ("26 6E", 16, "ES"), ("36 6E", 16, "SS"), ("65 6E", 32, "GS"),
        ("6E", 16, "DS"), ("26 64 6E", 32, "FS"), ("64 26 6E", 32, "ES"), ("26 6E", 64, "DS"),
        ("64 6E", 64, "FS"), ("64 26 6E", 64, "FS"), ("65 3E 6F", 64, "GS"),
    ]  # fmt: skip
    for code, mode, segment in outs:
        assert decode_instruction(bytes.fromhex(code), mode).segment == segment, code
    for mode in MODES:  # INS always writes ES; the override changes nothing
        assert decode_instruction(bytes.fromhex("64 6C"), mode).segment == "ES"
        assert decode_instruction(bytes.fromhex("2E EC"), mode).segment is None


def test_rex_is_ignored_in_64_bit_mode():
    plain = decode_instruction(b"\xe5\x60", 64)
    for rex in REX:
        insn = decode_instruction(bytes([rex, 0xE5, 0x60]), 64)
        assert insn.access(0) == plain.access(0) and insn.length == 3
    assert decode_instruction(bytes.fromhex("4F 41 F3 6D"), 64).prefixes == (
        "rex.wrxb",
        "rex.b",
        "rep",
    )


def test_access_fills_what_the_decoder_knows():
    insn = decode_instruction(bytes.fromhex("26 67 F3 6F"), 64)
    assert insn.access(0xABCD_03F8) == IoAccess(
        port=0x03F8, size=4, is_in=False, string=True, rep=True, address_size=32, segment="DS",
        immediate=False,
    )  # fmt: skip
    imm = decode_instruction(bytes.fromhex("67 E6 80"), 16)
    assert imm.access(0x1234) == IoAccess(0x80, 1, False, address_size=32, immediate=True)
    assert imm.port == 0x80 and imm.immediate


def test_every_port_in_turn_gets_its_own_access_and_the_kept_ones_stay_bounded():
    """A guest (or a fuzzer) may walk all 65,536 ports with ``in al, dx``: each exit must still
    name its own port, twice over, and what is kept between exits must not grow with them."""
    from hvmio_lab import decoder, kept

    insn = decode_instruction(b"\xec", 16)
    for port in range(0x10000):
        first = insn.access(port)
        assert first.port == port and insn.access(port) is first  # the second ask is kept
        assert len(decoder._ACCESSES) <= kept.LIMIT
    assert insn.access(0x10000 | 0x3F8).port == 0x3F8  # DX's low 16 bits name the port


def test_values_are_immutable_and_hashable():
    insn = decode_instruction(bytes.fromhex("66 E5 60"), 32)
    with pytest.raises(AttributeError):
        insn.size = 4  # type: ignore[misc]
    rebuilt = IoInstruction(**insn._asdict())
    assert rebuilt == insn and hash(rebuilt) == hash(insn)
    access = insn.access(0)
    with pytest.raises(AttributeError):
        access.port = 1  # type: ignore[misc]
    with pytest.raises(ExitInfoError):
        access._replace(size=3)  # replacing a field is validated like building


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("code", "mode", "message"),
    [
        ("F0 EC", 32, "byte 0xf0 at offset 0 is LOCK"),
        ("66 F0 6C", 64, "byte 0xf0 at offset 1 is LOCK"),
        ("66 67 90", 32, "byte 0x90 at offset 2 is not an I/O opcode"),
        ("48 ED", 32, "byte 0x48 at offset 0 is not an I/O opcode (INC/DEC outside 64-bit mode)"),
        ("0F 31", 64, "byte 0x0f at offset 0 is not an I/O opcode"),
        ("", 16, "the bytes end at offset 0, before the opcode"),
        ("66 67", 16, "the bytes end at offset 2, before the opcode"),
        ("F3 E4", 64, "the bytes end at offset 2, before the imm8 port of in"),
        ("F3 " * 15 + "6C", 32, "byte 0x6c at offset 15 is past the 15-byte instruction limit"),
        ("F3 " * 14 + "E6", 32, "offset 15 is past the 15-byte instruction limit"),
        ("26 " * 20, 16, "byte 0x26 at offset 15 is past the 15-byte"),
    ],
)
def test_refusals_name_the_byte_and_offset(code, mode, message):
    with pytest.raises(InvalidInstruction, match=message.replace("(", r"\(").replace(")", r"\)")):
        decode_instruction(bytes.fromhex(code), mode)
    assert oracle(bytes.fromhex(code), mode) is None  # capstone refuses them too


def test_longest_legal_instructions():
    assert decode_instruction(bytes.fromhex("F3 " * 14 + "6C"), 32).length == 15
    assert decode_instruction(bytes.fromhex("66 " * 13 + "E5 60"), 16).length == 15


def test_truncation_is_its_own_class():
    with pytest.raises(TruncatedInstruction) as info:
        decode_instruction(b"\x66\xe5", 32)
    assert info.value.offset == 2


def test_a_fetch_cut_short_raises_its_fault_only_when_the_bytes_are_needed():
    code = FetchedBytes(b"\x66\xe5")
    code.stop = PageFault(0x2000, write=False)
    with pytest.raises(PageFault, match="0x2000"):
        decode_instruction(code, 32)
    whole = FetchedBytes(b"\x66\xed")
    whole.stop = PageFault(0x2000, write=False)
    assert decode_instruction(whole, 32).size == 2  # complete before the page ended


def test_mode_must_be_16_32_or_64():
    with pytest.raises(ValueError, match="mode must be 16, 32 or 64"):
        decode_instruction(b"\xec", 8)


# ---------------------------------------------------------------- display


def test_text_matches_capstone_spelling():
    for mode, code in [(16, "E4 60"), (32, "66 E7 80"), (64, "EE"), (32, "F3 6D"), (16, "2E 6E")]:
        insn = decode_instruction(bytes.fromhex(code), mode)
        cs = next(disassembler(mode).disasm(insn.code, 0))
        assert insn.text == f"{cs.mnemonic} {cs.op_str}"


def test_explain_says_what_each_byte_does():
    insn = decode_instruction(bytes.fromhex("48 66 26 64 F2 E5 60"), 64)
    roles = [row.role for row in explain(insn)]
    assert roles == [
        "REX.W: ignored, not right before the opcode",
        "operand-size override: 32 → 16 bits",
        "ES override: ignored in 64-bit mode",
        "FS override: no memory operand, so no effect",
        "REPNE: ignored on IN/OUT",
        "opcode: IN eAX, imm8",
        "imm8: port 0x60",
    ]
    assert dict(describe(insn))["instruction"] == "in ax, 0x60"
    assert [row.offset for row in explain(insn)] == list(range(7))


# ---------------------------------------------------------------- the widget, driven from Python


def test_decoder_widget_shows_the_decode_or_the_refusal():
    from hvmio_lab.widgets import DecoderWidget  # ipywidgets is a dependency: no skip

    w = DecoderWidget("26 67 F3 6F", mode=32)
    assert w.instruction is not None and w.instruction.text == "rep outsd dx, dword ptr es:[si]"
    assert w.error_text == "" and "ES override" in w.decoded.value
    assert dict(w.rows)["address size"] == "16-bit"
    w.choose_mode(16)  # the same bytes in a 16-bit segment: both overrides now point up
    assert w.instruction.text == "rep outsw dx, word ptr es:[esi]"
    w.type_hex("F0 EC")
    assert w.instruction is None and w.rows == () and w.decoded.value == ""
    assert "LOCK" in w.error_text and "LOCK" in w.error.value
    w.type_hex("0x66, 0xED")
    assert w.instruction.text == "in eax, dx" and w.error.value == ""
    w.type_hex("6")
    assert "1 hex digits" in w.error_text
    assert "DecoderWidget" in repr(w) and "1 hex digits" in repr(w)
    classes = {c for part in (w, w.hex, w.mode, w.decoded, w.error) for c in part._dom_classes}
    assert {"hvmio-decoder", "hvmio-hex", "hvmio-mode", "hvmio-decoded", "hvmio-error"} <= classes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("66 67 F3 6D", "6667f36d"),
        ("6667f36d", "6667f36d"),
        ("0x66,0x67", "6667"),
        (r"\x66\xed", "66ed"),
    ],
)
def test_parse_hex(text, expected):
    assert parse_hex(text).hex() == expected


@pytest.mark.parametrize("field, bad", [("size", True), ("size", 2.0), ("is_in", 1),
                                        ("string", 0), ("address_size", 32.0),
                                        ("immediate", 0)])  # fmt: skip
def test_a_hand_built_instruction_gets_a_checked_access_whatever_was_asked_before(field, bad):
    """``access`` keeps the accesses it has checked; an instruction whose field only equals a
    valid one (True == 1, 32.0 == 32) must still be refused, not handed the kept access."""
    insn = decode_instruction(b"\x66\xed", 32)  # in ax, dx
    good = insn.access(0x1F0)
    assert good == IoAccess(0x1F0, 2, True, False, False, 32, None, False)
    assert insn.access(0x1F0) is good  # kept
    with pytest.raises(ExitInfoError, match=field):
        insn._replace(**{field: bad}).access(0x1F0)
    assert insn._replace(segment=None).access(0x1F1).port == 0x1F1
