"""Exercise checks: right answers get ✓, the typical wrong answers get the hint written for them.

Right answers are worked out here from the manuals' tables (IO_EXITS.md §2), not taken from
the checks module.
"""

import pytest

from hvmio_lab import checks
from hvmio_lab.checks import EXERCISES
from hvmio_lab.checks.common import AnswerError, parse_access, parse_instruction


def judge(key, *answer):
    return EXERCISES[key].judge(*answer)


def ok(key, *answer):
    v = judge(key, *answer)
    assert v.ok and v.message.startswith("✓"), v.message


def hint(key, *answer, says):
    v = judge(key, *answer)
    assert not v.ok and v.message.startswith("✗"), v.message
    for word in [says] if isinstance(says, str) else says:
        assert word in v.message, v.message


# -- 02.1: encode in eax, dx from 0x1F48 in 64-bit mode -----------------------------------------

IN_EAX_DX_64 = (0x1F48 << 16) | (1 << 9) | (1 << 6) | 1  # PORT, A64, SZ32, TYPE


def test_02_1_right():
    ok("02_1", IN_EAX_DX_64)
    ok("02_1", hex(IN_EAX_DX_64))  # a string works too


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (IN_EAX_DX_64 & ~1, "OUT"),  # TYPE forgotten
        ((IN_EAX_DX_64 & ~(1 << 9)) | (1 << 8), "A64"),  # A32: operand size mixed with address
        (IN_EAX_DX_64 | (1 << 5), "one-hot"),  # two SZ bits
        (IN_EAX_DX_64 & ~(1 << 9), "A64"),  # no A bit at all
        ((IN_EAX_DX_64 & ~(1 << 6)) | (1 << 5), "SZ32"),  # SZ16
        ((0x1F48 << 16) | (3 << 0) | (1 << 3), "VMX"),  # the VMX qualification for the same IN
        (0x1F48, "31:16"),  # port in the low bits
        ((0x1F49 << 16) | 0x241, "0x1F48"),
        (IN_EAX_DX_64 | (1 << 2), "string"),
        ("eax", "number"),
    ],
)
def test_02_1_hints(answer, says):
    hint("02_1", answer, says=says)


def test_02_1_nonzero_seg_is_accepted_with_a_note():
    v = judge("02_1", IN_EAX_DX_64 | (3 << 10))
    assert v.ok and "SEG" in v.message


# -- 02.2: two SZ bits -----------------------------------------------------------------------------


def test_02_2_right():
    # 0x1F480261 >> 4 & 7 = 0b110 = 6
    ok("02_2", "SZ", 6)
    ok("02_2", "sz16/sz32", "6")
    ok("02_2", "the SZ field", 6)


@pytest.mark.parametrize(
    ("field", "count", "says"),
    [
        ("A", 6, "bits 6:4"),
        ("PORT", 6, "bits 6:4"),
        ("SZ", 4, "0b110"),  # picked one of the bits
        ("SZ", 2, "0b110"),
        ("SZ", 48, "bytes"),
        ("width", 6, "manual"),
    ],
)
def test_02_2_hints(field, count, says):
    hint("02_2", field, count, says=says)


def test_02_2_one_answer_instead_of_two():
    hint("02_2", "SZ", says="how many answers")


# -- 02.3: EXITINFO2 -------------------------------------------------------------------------------


def test_02_3():
    ok("02_3", 2, 0x7C12)  # 0x7C12 − 0x7C10
    hint("02_3", 1, 0x7C12, says="operand size")
    hint("02_3", 2, 0x7C10, says="advance RIP")
    hint("02_3", 2, 0x7C11, says="EXITINFO2")
    hint("02_3", 3, 0x7C13, says="EXITINFO2 − RIP")


# -- 03.1: decode 0x5658000B -----------------------------------------------------------------------


def test_03_1():
    ok("03_1", "in eax, dx")
    ok("03_1", "IN EAX,DX")
    hint("03_1", "in ax, dx", says="size − 1")  # read 0b011 as... 2 bytes
    hint("03_1", "out dx, eax", says="IN")
    hint("03_1", "in eax, 0x58", says="DX")
    hint("03_1", "insd", says="string")
    hint("03_1", "mov eax, dx", says="Intel syntax")


# -- 03.2: encode out 0x80, al ---------------------------------------------------------------------

OUT_80_AL = (0x80 << 16) | (1 << 6)


def test_03_2():
    ok("03_2", OUT_80_AL)
    hint("03_2", 0x80 << 16, says="bit 6")  # immediate forgotten
    hint("03_2", OUT_80_AL | 1, says="size − 1")  # byte count instead of size − 1
    hint("03_2", OUT_80_AL | (1 << 3), says="OUT")
    hint("03_2", 0x80 | (1 << 6), says="31:16")  # port in the low bits
    hint("03_2", (0x80 << 16) | (1 << 9) | (1 << 4), says="SVM")  # EXITINFO1 of the same OUT


# -- 03.3: size encoding 2 -------------------------------------------------------------------------


def test_03_3():
    ok("03_3", "a")
    ok("03_3", "(A)")
    for choice, says in (("b", "same bits"), ("c", "one number"), ("d", "size − 1")):
        hint("03_3", choice, says=says)
    hint("03_3", "e", says="'a', 'b', 'c' or 'd'")
    assert set(checks.CHOICES_03_3) == {"a", "b", "c", "d"}


# -- 03.4: translate 0xCF80140 ---------------------------------------------------------------------


def test_03_4():
    ok("03_4", 0x0CF80003, 1)  # size−1 = 3, OUT, DX, port 0xCF8; EF is 1 byte
    hint("03_4", 0x0CF80043, 1, says="imm8")
    hint("03_4", 0x0CF80004, 1, says="size")
    hint("03_4", 0x0CF8000B, 1, says="OUT")
    hint("03_4", 0x0CF80003, 4, says="same length")
    hint("03_4", 0xCF80140, 1, says="SVM value")


# -- the public names and the printed forms --------------------------------------------------------


def test_check_prints_and_reveal_shows_the_solution(capsys):
    checks.check_02_1(IN_EAX_DX_64)
    checks.check_03_2(0)
    checks.reveal_02_1()
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("✓") and out[1].startswith("✗")
    assert any("0x1F480241" in line for line in out[2:])


def test_every_exercise_has_a_solution_and_public_functions():
    for key, ex in EXERCISES.items():
        assert ex.solution.strip() and ex.question.strip()
        assert getattr(checks, f"check_{key}") == ex.check
        assert getattr(checks, f"reveal_{key}") == ex.reveal
    assert {"02_1", "02_2", "02_3", "03_1", "03_2", "03_3", "03_4", "00_1", "00_2"} <= set(
        EXERCISES
    )


# -- 00: route and RIP -----------------------------------------------------------------------------


def test_00_1_and_00_2():
    ok("00_1", ["instruction", "trap", "record", "path", "device", "resume"])
    hint("00_1", ["instruction", "device", "trap", "record", "path", "resume"],
         says="does not answer the guest directly")  # fmt: skip
    hint("00_1", ["instruction", "record", "trap", "path", "device", "resume"], says="trap first")
    hint("00_1", ["instruction", "trap"], says="exactly once")
    ok("00_2", "the hypervisor")
    hint("00_2", "CPU", says="does not move on by itself")
    hint("00_2", "device", says="value")


# -- practice --------------------------------------------------------------------------------------


def test_practice_is_seeded():
    a, b = checks.practice_02(seed=7, n=8), checks.practice_02(seed=7, n=8)
    c = checks.practice_02(seed=8, n=8)
    assert a.text() == b.text()
    assert a.text() != c.text()
    assert checks.practice_03(seed=3).text() == checks.practice_03(seed=3).text()


@pytest.mark.parametrize("make", [checks.practice_02, checks.practice_03])
def test_practice_answers_are_accepted_and_mistakes_hinted(make):
    p = make(seed=11, n=30)
    for q in p.questions:
        assert q.judge(q.answer).ok, (q.prompt, q.answer)
    valid = [q for q in p.questions if not q.answer.startswith("invalid")]
    invalid = [q for q in p.questions if q.answer.startswith("invalid")]
    assert valid and invalid
    q = valid[0]
    flipped = q.answer.replace("OUT", "@").replace("IN", "OUT").replace("@", "IN")
    v = q.judge(flipped)
    assert not v.ok and "Direction" in v.message
    assert not q.judge("invalid").ok
    assert not invalid[0].judge("IN 8-bit port 0x60").ok


def test_practice_decodes_match_the_manual_tables():
    # Re-derive each valid practice answer from the raw value with the tables' shifts.
    for q in checks.practice_02(seed=5, n=30).questions:
        if q.answer.startswith("invalid"):
            continue
        x = int(q.prompt.split("=")[1], 16)
        got = parse_access(q.answer)
        assert got.is_in == bool(x & 1) and got.size == (x >> 4) & 7
        assert got.string == bool(x >> 2 & 1) and got.rep == bool(x >> 3 & 1)
        assert got.port == x >> 16
    for q in checks.practice_03(seed=5, n=30).questions:
        if q.answer.startswith("invalid"):
            continue
        x = int(q.prompt.split("=")[1], 16)
        got = parse_access(q.answer)
        assert got.is_in == bool(x >> 3 & 1) and got.size == (x & 7) + 1
        assert got.port == x >> 16


def test_practice_check_and_reveal_print(capsys):
    p = checks.practice_03(seed=1, n=3)
    p.check(1, "nonsense")
    p.reveal(1)
    out = capsys.readouterr().out
    assert out.startswith("Q1: ✗") and "answer:" in out
    p.reveal(4)  # a question the set does not have: a message, not an IndexError
    assert "questions 1 to 3" in capsys.readouterr().out


# -- answer parsers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("in al, dx", (True, 1, False, False, False)),
        ("out 0x80, al", (False, 1, False, False, True)),
        ("OUT DX,EAX", (False, 4, False, False, False)),
        ("rep insw", (True, 2, True, True, None)),
        ("outsd", (False, 4, True, False, None)),
    ],
)
def test_parse_instruction(text, fields):
    i = parse_instruction(text)
    assert (i.is_in, i.size, i.string, i.rep, i.immediate) == fields


@pytest.mark.parametrize("text", ["in bl, dx", "in al, cx", "in al", 5, "rep in al, dx"])
def test_parse_instruction_refuses(text):
    with pytest.raises(AnswerError):
        parse_instruction(text)
