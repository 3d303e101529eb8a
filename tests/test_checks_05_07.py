"""Chapters 05 and 07: right answers get ✓, typical wrong answers get the hint aimed at them."""

import hashlib
from pathlib import Path

import pytest

from hvmio_lab import checks
from hvmio_lab.checks import ch05, ch07
from hvmio_lab.checks.common import EXERCISES
from hvmio_lab.machine import merge_gpr

RIGHT = ["fast", "fast", "emulate", "emulate", "fast", "fast"]


def judge(key, *answer):
    return EXERCISES[key].judge(*answer)


def hint(key, *answer):
    verdict = judge(key, *answer)
    assert not verdict.ok, verdict
    assert verdict.message.startswith("✗")
    return verdict.message


# -- 05.1 ---------------------------------------------------------------------------------------


def test_05_1_records_match_their_intended_paths():
    """The exercise's answer key agrees with the real dispatcher's rule."""
    for record, path in zip(ch05.EXITS_05_1, RIGHT, strict=True):
        assert ("emulate" if record.access().string else "fast") == path
    assert ch05.describe_exits_05_1().count("Exit ") == 6


def test_05_1_right_answer():
    assert judge("05_1", RIGHT).ok
    assert judge("05_1", ["Fast path", "fast", "emulator", "Emulation", "fast", "FAST"]).ok


def test_05_1_rep_is_not_what_matters():
    answer = RIGHT.copy()
    answer[3] = "fast"  # outsb without REP
    assert "not REP" in hint("05_1", answer)


def test_05_1_device_model_does_not_choose_the_path():
    answer = RIGHT.copy()
    answer[4] = "emulate"  # out dx, al to the UART
    message = hint("05_1", answer)
    assert "device model" in message and "does not" in message
    assert "Exit 5" in message and "Exit 4" not in message


def test_05_1_immediate_bit_is_not_string():
    answer = RIGHT.copy()
    answer[1] = "emulate"
    assert "Bit 6" in hint("05_1", answer)


def test_05_1_bad_forms():
    assert "six" in hint("05_1", "fast")
    assert "6 exits" in hint("05_1", ["fast"] * 5)
    assert "'fast' or 'emulate'" in hint("05_1", ["quick"] * 6)


# -- 05.2 ---------------------------------------------------------------------------------------


def test_05_2_right_answer():
    assert judge("05_2", 0x1234_5678).ok
    assert judge("05_2", "0x12345678").ok
    assert judge("05_2", "0x00000000_12345678").ok


def test_05_2_merge_is_the_2010_bug():
    message = hint("05_2", 0xDEAD_BEEF_1234_5678)
    assert "2010" in message and "clears bits 63:32" in message


@pytest.mark.parametrize("size", [1, 2])
def test_05_2_small_merge(size):
    assert "EAX" in hint("05_2", merge_gpr(ch05.RAX_05_2, ch05.DATA_05_2, size))


def test_05_2_other_slips():
    assert "sign" in hint("05_2", 0xFFFF_FFFF_1234_5678)
    assert "low 32 bits" in hint("05_2", 0x1234_5678_0000_0000)
    assert "cannot stay" in hint("05_2", ch05.RAX_05_2)
    assert "number" in hint("05_2", "twelve")


# -- 05.3 ---------------------------------------------------------------------------------------


def test_05_3():
    assert judge("05_3", "b").ok
    assert judge("05_3", "(b)").ok
    assert "4–5 %" in hint("05_3", "c")
    assert "CPU" in hint("05_3", "a")
    assert "completion" in hint("05_3", "d")
    assert "CHOICES_05_3" in hint("05_3", "e")


# -- practice 05 ------------------------------------------------------------------------------


def test_practice_05_is_seeded_and_judges_both_kinds():
    p = ch05.practice_05(4)
    assert p.text() == ch05.practice_05(4).text()
    assert p.text() != ch05.practice_05(5).text()
    kinds = {q.prompt.split()[0] for q in p.questions}
    assert kinds == {"in", "out"}
    for i, q in enumerate(p.questions, 1):
        assert p.judge(i, int(q.answer, 16)).ok, q.prompt
        assert not p.judge(i, int(q.answer, 16) ^ 1).ok


def test_practice_05_hints():
    for seed in range(1, 40):
        for q in ch05.practice_05(seed, 10).questions:
            rax = int(q.prompt.split("RAX = ")[1].split(",")[0], 16)
            if q.prompt.startswith("in eax"):
                data = int(q.prompt.rsplit(" ", 1)[1], 16)
                stale = (rax & ~0xFFFF_FFFF) | data
                if stale != data:
                    assert "2010" in q.judge(stale).message
                    return
    pytest.fail("no 32-bit IN with a non-zero upper half in 39 seeds")


def test_practice_05_out_sends_only_size_bytes():
    for seed in range(1, 40):
        for q in ch05.practice_05(seed, 10).questions:
            if q.prompt.startswith("out dx, al"):
                rax = int(q.prompt.split("RAX = ")[1], 16)
                if rax > 0xFF:
                    assert "Hyperlight" in q.judge(rax).message
                    return
    pytest.fail("no `out dx, al` with a wide RAX in 39 seeds")


def test_practice_05_refuses_silly_sizes():
    with pytest.raises(ValueError):
        ch05.practice_05(1, 0)


# -- 07.1 ---------------------------------------------------------------------------------------


# Digests of every line the patch adds (tests/data/seed_patch_added_lines.sha256): the test
# needs no copy of Xen's code, and nothing outside the repo.
SEED_LINES = Path(__file__).with_name("data") / "seed_patch_added_lines.sha256"


def test_07_1_excerpt_names_the_changeset():
    assert "147808b8b8" in ch07.EXCERPT_07_1


def test_07_1_excerpt_is_quoted_verbatim_from_the_patch():
    digests = {line for line in SEED_LINES.read_text().splitlines() if not line.startswith("#")}
    quoted = [line for line in ch07.EXCERPT_07_1.splitlines() if line.startswith("+")]
    assert len(quoted) == 7
    for line in quoted:
        assert hashlib.sha256(line.encode()).hexdigest()[:16] in digests, line


def test_07_1():
    assert judge("07_1", "rip before gp").ok
    assert judge("07_1", "RIP before #GP").ok
    assert "__update_guest_eip" in hint("07_1", "stale stash")
    assert "rc = 0" in hint("07_1", "re-emulation")
    assert "memcpy" in hint("07_1", "zero extension")
    assert "DEFECTS_07" in hint("07_1", "a race")


# -- 07.2 ---------------------------------------------------------------------------------------


def test_07_2_right_answer():
    assert judge("07_2", 0xDEAD_BEEF_1234_5678, "63:32").ok
    assert judge("07_2", "0xdeadbeef12345678", "RAX[63:32]").ok
    assert judge("07_2", 0xDEAD_BEEF_1234_5678, 0xFFFF_FFFF_0000_0000).ok
    assert judge("07_2", 0xDEAD_BEEF_1234_5678, "upper 32 bits").ok


def test_07_2_typical_slips():
    assert "should" in hint("07_2", 0x1234_5678, "63:32")  # the modern answer
    assert "did arrive" in hint("07_2", 0xDEAD_BEEF_0000_0000, "63:32")
    assert "hold the device's answer" in hint("07_2", 0xDEAD_BEEF_1234_5678, "31:0")
    assert "which bits differ" in hint("07_2", 0xDEAD_BEEF_1234_5678, "7:0")
    assert "Check how many answers" in hint("07_2", 0xDEAD_BEEF_1234_5678)


# -- 07.3 ---------------------------------------------------------------------------------------


def test_07_3():
    assert judge("07_3", 0x3F8, 2, "out").ok
    assert judge("07_3", "0x3f8", 2, "write").ok
    assert "io_size first" in hint("07_3", 0x80, 1, "out")
    assert "size comes from the stash" in hint("07_3", 0x3F8, 1, "out")
    assert "OUT" in hint("07_3", 0x3F8, 2, "in")
    assert "'in' or 'out'" in hint("07_3", 0x3F8, 2, "sideways")


def test_07_3_matches_the_seed2010_model():
    """The exercise's answer is what path="seed2010" really does."""
    from hvmio_lab import Machine
    from hvmio_lab.hypervisor import Hypervisor

    machine = Machine.pc(64)
    machine.memory.write(0x1000, b"\x66\xef\xf3\x6e")  # out dx, ax ; rep outsb
    machine.cpu.rip, machine.cpu.rdx, machine.cpu.rax = 0x1000, 0x3F8, 0x4142
    hv = Hypervisor(machine, "svm", "seed2010")
    assert hv.step().fault is not None
    machine.cpu.rdx, machine.cpu.rcx, machine.cpu.rsi = 0x80, 2, 0x8000
    outcome = hv.step()
    assert (outcome.access.port, outcome.access.size, outcome.access.is_in) == (0x3F8, 2, False)


# -- 07.4 ---------------------------------------------------------------------------------------


def test_07_4():
    assert judge("07_4", ["VirtualBox", "ACRN"]).ok
    assert judge("07_4", ("acrn", "virtualbox")).ok
    assert "2013" in hint("07_4", ["xen", "virtualbox", "acrn"])
    assert "size < 4" in hint("07_4", ["kvm", "virtualbox", "acrn"])
    assert "opposite" in hint("07_4", ["bhyve", "virtualbox", "acrn"])
    assert "1 more still merges" in hint("07_4", "acrn")
    assert "Name hypervisors" in hint("07_4", ["hyper-v"])


# -- the package surface ------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["05_1", "05_2", "05_3", "07_1", "07_2", "07_3", "07_4"])
def test_check_reveal_hint_are_exported_and_print(key, capsys):
    getattr(checks, f"reveal_{key}")()
    out = capsys.readouterr().out
    assert out.startswith(f"Exercise {key}:") and len(out) > 200
    getattr(checks, f"hint_{key}")()
    assert capsys.readouterr().out.strip()
    assert callable(getattr(checks, f"check_{key}"))


def test_check_prints_one_line(capsys):
    checks.check_05_2(0x1234_5678)
    assert capsys.readouterr().out.startswith("✓")
    checks.check_07_3(0x80, 1, "out")
    assert capsys.readouterr().out.startswith("✗")
