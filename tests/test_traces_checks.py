"""Chapter 09's exercises: the right answers pass, the usual mistakes get their hint, and the
material (the kvm_exit line, the trace) says what the solutions claim. Expectations are worked
out here from the manuals' bit positions, not taken from the checks."""

from __future__ import annotations

import re

from hvmio_lab import traces
from hvmio_lab.checks import BACKENDS_09_3, EXERCISES, LINE_09_1, TRACE_09_2


def judge(key, *answer):
    return EXERCISES[key].judge(*answer)


def test_09_1_the_line_is_a_vmx_pm_timer_read():
    info1 = int(re.search(r"info1 0x([0-9a-f]+)", LINE_09_1)[1], 16)
    assert info1 >> 16 == 0xB008 and info1 >> 3 & 1 == 1 and info1 & 7 == 3  # IN, 4 bytes
    assert judge("09_1", "IN 32-bit port 0xb008").ok
    assert judge("09_1", "in 32-bit port 45064").ok
    out = judge("09_1", "OUT 32-bit port 0xb008")
    assert not out.ok and "bit 3" in out.message.lower()
    size = judge("09_1", "IN 8-bit port 0xb008")  # reading size − 1 = 3 as 3 bytes… or 1
    assert not size.ok and "minus one" in size.message


def test_09_2_the_pm_timer_dominates_and_is_fast_path_material():
    infos = re.findall(r"info1 0x([0-9a-f]+)", TRACE_09_2)
    counts = {}
    for value in infos:
        counts[int(value, 16)] = counts.get(int(value, 16), 0) + 1
    top = max(counts, key=counts.get)
    assert top >> 16 == 0xB008 and not top & 1 << 2  # STR clear
    assert counts[top] == 12 and len(infos) == 21  # as the solution says
    assert judge("09_2", "0xb008", "yes").ok
    assert not judge("09_2", "0xb008", "no").ok
    wrong_port = judge("09_2", "0x3f8", "yes")
    assert not wrong_port.ok and "bits 31:16" in wrong_port.message
    assert "yes" in judge("09_2", "0xb008", "maybe").message
    stats = traces.summarize(traces.read(TRACE_09_2))  # the reader agrees with the count
    assert stats.rows()[0].port == 0xB008 and stats.string == 3


def test_09_3_pvm_emulates_bare_metal_exits_nested_exits_twice():
    assert "PVM" in BACKENDS_09_3["b"]
    assert judge("09_3", ["b", "a", "c"]).ok
    assert judge("09_3", "b, a, c").ok
    first = judge("09_3", ["a", "a", "c"])
    assert not first.ok and "kvm_pvm" in first.message
    nested = judge("09_3", ["b", "a", "a"])
    assert not nested.ok and "outer hypervisor" in nested.message
    assert "three letters" in judge("09_3", "b a").message


def test_every_09_exercise_has_a_widget_declaration_and_a_solution():
    for key in ("09_1", "09_2", "09_3"):
        ex = EXERCISES[key]
        assert ex.asks and ex.solution.strip() and ex.given_text


def test_09_widgets_wrong_then_right():
    from hvmio_lab.widgets import exercise

    cases = {
        "09_1": (["IN 32-bit port 0xb008"], ["OUT 32-bit port 0xb008"]),
        "09_2": (["0xb008", "yes"], ["0xb008", "no"]),
        "09_3": ([["b", "a", "c"]], [["a", "b", "c"]]),
    }
    for key, (right, wrong) in cases.items():
        w = exercise(key)
        assert len(w.boxes) == len(right)
        w.answer(*wrong)
        w.check_button.click()
        assert w.verdict is not None and not w.verdict.ok, w.result_text
        w.answer(*right)
        w.check_button.click()
        assert w.verdict.ok, w.result_text
