"""Chapters 05 and 07's explorers: what they show is what the core's both_paths computes, and
the facts hold (fast and emulate end the same; each 2010 defect shows beside the modern path).
"""

from __future__ import annotations

import pytest

from hvmio_lab.checks.ch05 import INSTRUCTIONS_05, run_05
from hvmio_lab.checks.ch07 import DEFECT_RUNS_07, DEFECTS_07, run_defect_07
from hvmio_lab.widgets import DefectExplorer, FastPathExplorer


@pytest.mark.parametrize("vendor", ["svm", "vmx"])
@pytest.mark.parametrize("instruction", list(INSTRUCTIONS_05))
def test_fast_and_emulate_end_the_same_for_every_instruction(instruction, vendor):
    c = run_05(instruction, vendor)
    assert c.same_machine and c.accesses_agree, c.differences
    assert [o.path for o in c.outcomes] == ["fast", "emulate"] or "rep" in instruction


def test_string_io_is_declined_by_the_fast_path():
    """STR set: the fast path hands the exit to the emulator, which reads the bytes."""
    c = run_05("rep outsb (UART THR 0x3F8)", "svm")
    assert all(o.instruction is not None for o in c.outcomes)


def test_fast_path_explorer_shows_the_comparison_and_follows_its_pickers():
    w = FastPathExplorer()
    assert "✓" in w.verdict.value and "exit record" in w.table.value
    w.pick(instruction="out 0x80, al (POST)", vendor="vmx")
    assert "exit qualification" in w.table.value.lower() or "qualification" in w.table.value
    assert w.comparison.outcomes[0].exit.rip == 0x1000
    w.pick(paths=("seed2010", "fast"), instruction="in eax, dx (PM timer 0x1F48)")
    assert w.comparison.paths == ("seed2010", "fast") and "✗" in w.verdict.value


def test_explorer_set_to_nothing_says_so():
    w = FastPathExplorer()
    w.vendor.value = None
    assert "Pick one" in w.message.value and w.table.value == "" and w.comparison is None
    w.vendor.value = "svm"
    assert w.message.value == "" and w.comparison is not None


def test_every_defect_has_a_run():
    assert set(DEFECT_RUNS_07) == set(DEFECTS_07)


@pytest.mark.parametrize("vendor", ["svm", "vmx"])
def test_zero_extension_defect(vendor):
    c = run_defect_07("zero extension", vendor)
    (seed_rax, modern_rax) = (o.diff.register("rax")[1] for o in c.outcomes)
    assert seed_rax >> 32 == 0xFFFF_FFFF  # the 2010 memcpy left bits 63:32
    assert modern_rax >> 32 == 0 and seed_rax & 0xFFFF_FFFF == modern_rax
    assert not c.same_machine


@pytest.mark.parametrize("vendor", ["svm", "vmx"])
def test_rip_before_gp_defect(vendor):
    seed, modern = run_defect_07("rip before gp", vendor).outcomes
    assert seed.fault is not None and modern.fault is not None
    assert modern.fault.rip == 0x1000  # the fault is on the OUT itself
    assert seed.fault.rip == 0x1002  # 66 EF: RIP already moved past it


def test_stale_stash_defect():
    seed, modern = run_defect_07("stale stash").outcomes
    assert modern.access.port == 0x80 and seed.access.port == 0x3F8


def test_re_emulation_defect():
    seed, modern = run_defect_07("re-emulation").outcomes
    assert seed.reemulated and not modern.reemulated


def test_leftover_data_defect():
    c = run_defect_07("leftover data")
    seed_rax, modern_rax = (o.diff.register("rax")[1] if o.diff.register("rax") else 0
                            for o in c.outcomes)
    assert seed_rax != modern_rax and not c.same_machine


def test_defect_explorer_follows_its_pickers():
    w = DefectExplorer()
    for defect in DEFECT_RUNS_07:
        w.pick(defect=defect)
        assert w.comparison.paths[0] == "seed2010" and w.table.value
    w.pick(modern="emulate", vendor="vmx")
    assert w.comparison.paths == ("seed2010", "emulate")
    assert "A static copy" in w._repr_mimebundle_()["text/html"]
