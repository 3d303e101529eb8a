"""Chapter 01's exercise checks: right answers pass, each misconception gets its hint, and
the answers agree with what the guest really does."""

import ast

import pytest

from hvmio_lab.checks import (
    EXERCISES,
    check_01_1,
    practice_01,
    reveal_01_1,
    reveal_01_2,
)
from hvmio_lab.guest import Guest, load_program

HELLO = load_program("uart_hello")
MESSAGE = HELLO.params["message"]


def judge(key, answer):
    return EXERCISES[key].judge(answer)


def post_write_site() -> int:
    return next(a for a, text in HELLO.io_instructions().items() if text == "out 0x80, al")


def test_chapter_01_exercises_are_registered():
    assert {"01_1", "01_2", "01_3", "01_4"} <= set(EXERCISES)


def test_exit_count_right_answer_is_what_the_guest_does():
    per_character = 2  # one LSR poll (IN) and one THR write (OUT)
    expected = per_character * len(MESSAGE) + 1  # + the POST code
    assert judge("01_1", expected).ok
    assert judge("01_1", str(expected)).ok
    assert Guest("uart_hello", recording=False).run().exits == expected


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (len(MESSAGE), "poll"),  # only the THR writes
        (2 * len(MESSAGE), "0x80"),  # forgot the POST code
        (len(MESSAGE) + 1, "LSR"),  # one exit per character
        (2 * (len(MESSAGE) - 1) + 1, "newline"),  # the \n is a character too
        (2 * len(MESSAGE) + 2, "HLT"),  # HLT is not an I/O exit
    ],
)
def test_exit_count_hints_aim_at_the_mistake(answer, hint):
    verdict = judge("01_1", answer)
    assert not verdict.ok and hint in verdict.message


def test_rip_after_out_right_answer_is_where_the_guest_resumes():
    site = post_write_site()
    guest = Guest("uart_hello")
    while (outcome := guest.step()).access.port != 0x80:
        pass
    assert outcome.exit.rip == site
    resumed = outcome.diff.register("rip")[1]
    assert resumed == site + 2  # `out 0x80, al` is E6 80: opcode and imm8 port
    assert judge("01_2", resumed).ok
    assert judge("01_2", hex(resumed)).ok


def test_rip_after_out_misconceptions():
    site = post_write_site()
    same = judge("01_2", site)  # "RIP moves on by itself"
    assert not same.ok and "hypervisor advances it" in same.message
    one = judge("01_2", site + 1)  # "every IN/OUT is one byte"
    assert not one.ok and "two bytes" in one.message


def test_bitmap_question():
    assert judge("01_3", "B").ok and judge("01_3", "bitmap b").ok
    verdict = judge("01_3", "A")
    assert not verdict.ok and "0x7FFF" in verdict.message
    assert "Answer 'A' or 'B'" in judge("01_3", "C").message


def test_who_writes_al():
    assert judge("01_4", "the hypervisor").ok
    device = judge("01_4", "device")
    assert not device.ok and "does not answer the guest directly" in device.message
    assert not judge("01_4", "CPU").ok
    assert not judge("01_4", 42).ok  # a hint about the form, not an exception


def test_check_prints_a_verdict_and_reveal_the_working(capsys):
    check_01_1(2 * len(MESSAGE) + 1)
    assert capsys.readouterr().out.startswith("✓")
    check_01_1("lots")
    assert capsys.readouterr().out.startswith("✗")
    reveal_01_1()
    out = capsys.readouterr().out
    assert f"2 × {len(MESSAGE)} + 1" in out
    reveal_01_2()
    assert "EXITINFO2" in capsys.readouterr().out


def test_practice_is_seeded_and_its_answers_pass(capsys):
    a, b = practice_01(seed=7), practice_01(seed=7)
    assert a.text() == b.text()
    assert practice_01(seed=8).text() != a.text()
    for i, q in enumerate(a.questions, 1):
        assert a.judge(i, q.answer).ok
        assert not a.judge(i, int(q.answer) - 1).ok  # forgetting the POST write


def test_practice_without_busy_polls_counts_like_uart_hello():
    practice = practice_01(seed=3, n=20)
    for q in practice.questions:
        if "always empty" in q.prompt:
            message = ast.literal_eval(q.prompt.split(", ")[0].removeprefix("message "))
            assert int(q.answer) == 2 * len(message) + 1


def test_importing_the_checks_loads_no_guest():
    """The texts that quote uart_hello are made when first read, not on import."""
    import subprocess
    import sys

    code = ("import hvmio_lab.checks as c; from hvmio_lab.checks import ch01; "
            "print(ch01.hello.cache_info().currsize); c.EXERCISES['01_1'].question; "
            "print(ch01.hello.cache_info().currsize)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "1"]
