"""Every exercise through its widget (answer boxes, Check, Hint, Solution), the practice sets'
bad inputs, the predict prompt, and the rule that nothing is revealed before it is asked.

Right answers (``exercise_answers.py``) are worked out from the manuals' layouts, the guest
itself or the chapter's own numbers, not read from the checks under test.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from exercise_answers import ANSWERS, answer_values

from hvmio_lab import checks
from hvmio_lab.checks import EXERCISES
from hvmio_lab.widgets import ExerciseWidget, PracticeWidget, PredictWidget, exercise, predict

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_every_chapter_exercise_has_a_widget_test():
    workbook = {k for k in EXERCISES if k[:2] <= "07"}
    assert workbook == set(ANSWERS)


def test_names_are_derived_from_the_registry():
    for key, ex in EXERCISES.items():
        assert getattr(checks, f"check_{key}") == ex.check
        assert getattr(checks, f"hint_{key}") == ex.hint
        assert getattr(checks, f"reveal_{key}") == ex.reveal
        assert f"check_{key}" in checks.__all__


@pytest.mark.parametrize("key", sorted(ANSWERS))
def test_exercise_widget_wrong_then_right(key, capsys):
    right, wrong = answer_values(key)
    w = exercise(key)
    assert len(w.boxes) == len(right)
    w.check_button.click()  # nothing typed yet: a prompt, not a verdict
    if not any(b.ask.several for b in w.boxes):  # ticking nothing is an answer there
        assert w.verdict is None and "first" in w.result_text
    w.answer(*wrong)
    w.check_button.click()
    assert w.verdict is not None and not w.verdict.ok, w.result_text
    assert "hvmio-wrong" in w.result._dom_classes and "#b00000" in w.result.value
    w.answer(*right)
    w.check_button.click()
    assert w.verdict.ok, w.result_text
    assert "hvmio-ok" in w.result._dom_classes and "hvmio-wrong" not in w.result._dom_classes
    # the code path runs the same judge: check_NN_k(value) agrees with the widget
    getattr(checks, f"check_{key}")(*right)
    assert capsys.readouterr().out.startswith("✓")


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_hint_and_solution_only_on_request(key):
    w = exercise(key)
    ex = EXERCISES[key]
    static = w._repr_mimebundle_()["text/html"]
    first_line = ex.solution.strip().splitlines()[0]
    for shown in (static, w.hint_text, w.solution_text, repr(w)):
        assert ex.hint_line not in shown
        assert first_line not in shown
    assert "Answer in the live notebook" in static
    w.hint_button.click()
    assert ex.hint_line in html.unescape(w.hint_text)
    w.solution_button.click()
    assert first_line in html.unescape(w.solution_text)
    w.solution_button.click()  # hides it again
    assert w.solution_text == ""


def test_an_answer_the_judge_cannot_read_is_a_message():
    w = exercise("02_1")
    w.answer("zero-x-one")
    w.check_button.click()
    assert not w.verdict.ok and "number" in w.result_text
    assert not re.search(r"\w+Error", w.result.value)


def test_unknown_exercise_names_the_known_ones():
    with pytest.raises(ValueError, match="02_1"):
        ExerciseWidget("99_9")


# -- practice sets --------------------------------------------------------------------------

PRACTICES = [checks.practice_01, checks.practice_02, checks.practice_03, checks.practice_04,
             checks.practice_05, checks.practice_06]


@pytest.mark.parametrize("make", PRACTICES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("number", [0, 6, -1, 99, "Q9", "abc", None, True, 1.5, [1]])
def test_practice_bad_question_numbers_are_messages(make, number, capsys):
    p = make(seed=1, n=5)
    verdict = p.judge(number, "1")
    assert not verdict.ok and ("1 to 5" in verdict.message), verdict.message
    p.check(number, "1")
    p.hint(number)
    p.reveal(number)  # reveal(None) is the first open question, not a bad number
    out = capsys.readouterr().out
    assert out.count("1 to 5") == (2 if number is None else 3) and "Traceback" not in out


@pytest.mark.parametrize("make", PRACTICES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("answer", [None, "", 3.5j, object(), ["x"], True])
def test_practice_bad_answer_types_are_messages(make, answer):
    p = make(seed=1, n=3)
    verdict = p.judge(1, answer)
    assert not verdict.ok and verdict.message.startswith("✗")


@pytest.mark.parametrize("make", PRACTICES, ids=lambda f: f.__name__)
def test_practice_numbers_as_text_and_one_reveal(make, capsys):
    p = make(seed=2, n=4)
    assert p.judge("Q3", "x").message == p.judge(3, "x").message == p.judge("3", "x").message
    p.reveal()
    out = capsys.readouterr().out
    assert out.count("answer:") == 1 and out.startswith("Q1.")
    assert p.hint_line(2) and "1 to 4" not in p.hint_line(2)


def test_reveal_without_a_number_skips_what_is_solved():
    p = checks.practice_05(seed=3, n=3)
    first = p.questions[0]
    assert p.judge(1, first.answer).ok
    assert p.reveal_text().startswith("Q2.")


def test_practice_02_accepts_field_synonyms():
    """'invalid address size' names the A field as well as 'invalid A' does."""
    questions = [q for seed in range(1, 40) for q in checks.practice_02(seed=seed, n=10).questions]
    by_field = {}
    for q in questions:
        if q.answer.startswith("invalid "):
            by_field.setdefault(q.answer.removeprefix("invalid "), q)
    synonyms = {"A": ["invalid address size", "invalid: address-size", "invalid A64"],
                "SZ": ["invalid size", "invalid operand size", "invalid SZ bits"],
                "SEG": ["invalid segment"], "reserved": ["invalid reserved bits", "invalid rsvd"]}
    for field, answers in synonyms.items():
        q = by_field[field]
        for answer in answers:
            assert q.judge(answer).ok, (field, answer)
        other = next(f for f in synonyms if f != field)
        assert not q.judge(f"invalid {other}").ok


def test_practice_02_never_asks_an_ins_with_another_segment():
    """INS always writes ES:[rDI] (no override), so a valid question never shows SEG ≠ ES."""
    for seed in range(1, 60):
        for q in checks.practice_02(seed=seed, n=20).questions:
            value = int(q.prompt.split("=")[1], 16)
            if q.answer.startswith("invalid"):
                continue
            is_in, string, seg = value & 1, value >> 2 & 1, value >> 10 & 7
            if is_in and string:
                assert seg == 0, q.prompt


def test_practice_widget_rows_check_hint_reveal():
    p = checks.practice_05(seed=4, n=3)
    w = PracticeWidget(p)
    assert len(w.rows) == 3
    row = w.rows[1]
    row.check_button.click()
    assert not row.verdict.ok and "No answer yet" in row.result.value
    row.answer(p.questions[1].answer)
    row.check_button.click()
    assert row.verdict.ok and "#0a6b0a" in row.result.value
    assert w.rows[0].solution_area.value == ""
    w.rows[0].reveal_button.click()
    assert p.questions[0].answer in w.rows[0].solution_area.value
    assert w.rows[2].solution_area.value == ""  # one question revealed, not all
    w.rows[2].hint_button.click()
    assert "Hint" in w.rows[2].hint_area.value
    static = w._repr_mimebundle_()["text/html"]
    assert all(q.answer not in static for q in p.questions if q.answer not in q.prompt)
    assert all(q.worked not in static for q in p.questions)


# -- predict, then check ---------------------------------------------------------------------


def test_predict_computes_nothing_until_asked():
    calls = []

    def reveal():
        calls.append(1)
        return "14 exits"

    w = predict("How many exits?", reveal=reveal, options=["7", "14", "15"], answer="14")
    assert isinstance(w, PredictWidget) and not calls
    assert "14 exits" not in w._repr_mimebundle_()["text/html"]
    w.reveal_button.click()  # no guess yet
    assert not calls and "prediction first" in w.result.value and not w.revealed
    w.guess("7")
    w.reveal_button.click()
    assert calls and "14 exits" in w.solution_area.value and "Not what you said" in w.result.value
    assert w.revealed
    w.guess("14")
    w.reveal_button.click()
    assert "As predicted" in w.result.value


def test_predict_free_text_shows_the_guess_beside_the_code():
    w = predict("What is in RAX?", reveal=lambda: "0x12345678")
    w.guess("0xdeadbeef12345678")
    w.reveal_button.click()
    assert "0xdeadbeef12345678" in w.result.value and "0x12345678" in w.solution_area.value


# -- nothing revealed in the stored notebooks ------------------------------------------------


def _outputs_text(path: Path) -> list[tuple[int, str]]:
    nb = json.loads(path.read_text())
    found = []
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            parts = [out.get("text", "")]
            for mime in ("text/plain", "text/html", "text/markdown"):
                parts.append((out.get("data") or {}).get(mime, ""))
            text = "".join("".join(p) if isinstance(p, list) else p for p in parts)
            found.append((i, text))
    return found


def _giveaways(key: str) -> list[str]:
    ex = EXERCISES[key]
    lines = [line.strip() for line in ex.solution.strip().splitlines()]
    return [ex.hint_line] + [line for line in lines if len(line) >= 30]


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_stored_outputs_reveal_no_hint_or_answer(path):
    outputs = _outputs_text(path)
    for key in EXERCISES:
        for text in _giveaways(key):
            for cell, shown in outputs:
                assert text not in shown, f"{path.name} cell {cell} shows {key}'s: {text!r}"
