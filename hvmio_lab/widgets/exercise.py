"""Exercises, practice sets and predict-then-check prompts as widgets.

Each widget is built from a declaration in ``hvmio_lab.checks`` and only wires it to buttons:
the judging is ``Exercise.judge`` / ``Practice.judge``, the same code ``check_02_1(value)``
runs, so a test of the checks reaches every rule the widget applies.

Nothing is revealed before the learner asks. Building a widget (Run All) computes the question
and nothing else; the hint and the solution are read only when their button is pressed, and
the static view (what a page without a kernel shows) carries the question alone.

Drive them from Python as a test or a notebook would::

    w = ExerciseWidget("02_1")
    w.answer("0x1f480241")
    w.check_button.click()
    w.verdict.ok, w.result_text          # True, '✓ Correct. …'

    pw = PracticeWidget(practice_02(seed=1))
    pw.rows[0].answer("invalid A"); pw.rows[0].check_button.click()

CSS classes (the browser tests rely on them): ``hvmio-exercise``, ``hvmio-practice`` and
``hvmio-predict`` the widgets; ``hvmio-answer`` each answer box; ``hvmio-check``,
``hvmio-hint-button``, ``hvmio-solution-button`` the buttons; ``hvmio-result`` the coloured
result (``hvmio-ok`` / ``hvmio-wrong`` added); ``hvmio-hint`` and ``hvmio-solution`` the
areas those buttons fill.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ipywidgets as W

from ..checks import EXERCISES, Ask, Exercise, Practice, Verdict
from .static import StaticView, escape

OK_STYLE = "color:#0a6b0a;background:#e8f5e8;border-left:4px solid #0a6b0a"
WRONG_STYLE = "color:#9b1c1c;background:#fdecec;border-left:4px solid #b00000"
NOTE_STYLE = "color:#7a4d00;background:#fff6e0;border-left:4px solid #c88a00"
BOX = "padding:4px 8px;margin:4px 0;border-radius:3px"
UNREADABLE = "That answer could not be read. Check the form the question asks for."


def text_html(text: str) -> str:
    """Question text as HTML: `code` spans become <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text))


def result_html(verdict: Verdict | None, note: str = "") -> str:
    if verdict is None:
        return f"<div style='{NOTE_STYLE};{BOX}'>{escape(note)}</div>"
    style = OK_STYLE if verdict.ok else WRONG_STYLE
    return f"<div style='{style};{BOX}'>{escape(verdict.message)}</div>"


def _button(description: str, cls: str, style: str = "") -> W.Button:
    b = W.Button(description=description, button_style=style, layout=W.Layout(width="auto"))
    b.add_class(cls)
    return b


def _area(cls: str) -> W.HTML:
    area = W.HTML("")
    area.add_class(cls)
    return area


class AnswerBox:
    """The input widgets for one ``Ask``, and its value (None while unanswered)."""

    def __init__(self, ask: Ask):
        self.ask = ask
        self.inputs: list[W.Widget] = []
        if ask.several:
            self.inputs = [W.Checkbox(value=False, description=label, indent=False)
                           for label in (ask.options or {}).values()]  # fmt: skip
            self.widget: W.Widget = W.VBox([W.HTML(f"<b>{escape(ask.label)}</b> (tick any)"),
                                            *self.inputs])  # fmt: skip
        elif ask.count:
            options = [("—", None), *((label, v) for v, label in (ask.options or {}).items())]
            self.inputs = [W.Dropdown(options=options, value=None,
                                      description=f"{ask.label} {i}",
                                      layout=W.Layout(width="auto"))
                           for i in range(1, ask.count + 1)]  # fmt: skip
            self.widget = W.HBox(self.inputs, layout=W.Layout(flex_flow="row wrap"))
        elif ask.options:
            choice = W.RadioButtons(options=[(label, v) for v, label in ask.options.items()],
                                    value=None, description=ask.label,
                                    layout=W.Layout(width="auto"))  # fmt: skip
            self.inputs = [choice]
            self.widget = choice
        else:
            box = W.Text(value="", placeholder=ask.placeholder, description=ask.label,
                         style={"description_width": "initial"})  # fmt: skip
            self.inputs = [box]
            self.widget = box
        for w in self.inputs:
            w.add_class("hvmio-answer")

    @property
    def value(self) -> Any:
        if self.ask.several:
            keys = list(self.ask.options or {})
            return [k for k, box in zip(keys, self.inputs, strict=True) if box.value]
        values = [w.value for w in self.inputs]
        if any(v is None or (isinstance(v, str) and not v.strip()) for v in values):
            return None
        values = [v.strip() if isinstance(v, str) else v for v in values]
        return values if self.ask.count else values[0]

    def set(self, value: Any) -> None:
        """Answer as a learner would: type the text, pick the option(s)."""
        if self.ask.several:
            chosen = {value} if isinstance(value, str) else set(value or ())
            for key, box in zip(list(self.ask.options or {}), self.inputs, strict=True):
                box.value = key in chosen
        elif self.ask.count:
            for w, v in zip(self.inputs, value, strict=True):
                w.value = v
        elif self.ask.options:
            self.inputs[0].value = value
        else:
            self.inputs[0].value = "" if value is None else str(value)


class ExerciseWidget(StaticView, W.VBox):
    """One exercise: its question, answer boxes, Check / Hint / Solution, a coloured result."""

    says_it_is_static = True  # its static view says where to answer

    def __init__(self, key: str | Exercise):
        if isinstance(key, Exercise):
            self.exercise = key
        elif key in EXERCISES:
            self.exercise = EXERCISES[key]
        else:
            raise ValueError(f"no exercise {key!r}; the exercises are {', '.join(EXERCISES)}")
        ex = self.exercise
        self.verdict: Verdict | None = None
        self.result_text = ""
        self.title = W.HTML(f"<b>Exercise {ex.key.replace('_', '.')}</b>: "
                            f"{text_html(ex.widget_question)}")  # fmt: skip
        self.title.add_class("hvmio-question")
        parts: list[W.Widget] = [self.title]
        given = ex.given_text
        if given:
            parts.append(W.HTML(f"<pre style='margin:4px 0'>{escape(given)}</pre>"))
        self.boxes = [AnswerBox(ask) for ask in ex.asks]
        parts += [b.widget for b in self.boxes]
        self.check_button = _button("Check", "hvmio-check", "primary")
        self.hint_button = _button("Hint", "hvmio-hint-button")
        self.solution_button = _button("Solution", "hvmio-solution-button")
        self.check_button.on_click(lambda _: self.check())
        self.hint_button.on_click(lambda _: self.show_hint())
        self.solution_button.on_click(lambda _: self.toggle_solution())
        self.result = _area("hvmio-result")
        self.hint_area = _area("hvmio-hint")
        self.solution_area = _area("hvmio-solution")
        parts += [W.HBox([self.check_button, self.hint_button, self.solution_button]),
                  self.result, self.hint_area, self.solution_area]  # fmt: skip
        super().__init__(parts)
        self.add_class("hvmio-exercise")

    def answer(self, *values: Any) -> None:
        """Fill the answer boxes, one value per box, as a learner would."""
        for box, value in zip(self.boxes, values, strict=True):
            box.set(value)

    def check(self) -> Verdict | None:
        values = [b.value for b in self.boxes]
        missing = [b.ask.label for b, v in zip(self.boxes, values, strict=True) if v is None]
        self.result.remove_class("hvmio-ok")
        self.result.remove_class("hvmio-wrong")
        if missing:
            self.verdict = None
            self.result_text = f"Give your answer first ({', '.join(missing)}), then Check."
            self.result.value = result_html(None, self.result_text)
            return None
        try:
            self.verdict = self.exercise.judge(*values)
        except Exception:  # a judge that trips on an odd answer says so; no traceback
            self.verdict = Verdict(False, f"✗ {UNREADABLE}")
        self.result_text = self.verdict.message
        self.result.value = result_html(self.verdict)
        self.result.add_class("hvmio-ok" if self.verdict.ok else "hvmio-wrong")
        return self.verdict

    def show_hint(self) -> None:
        self.hint_area.value = result_html(None, f"Hint: {self.exercise.hint_line}")

    def toggle_solution(self) -> None:
        if self.solution_area.value:
            self.solution_area.value = ""
            self.solution_button.description = "Solution"
            return
        self.solution_area.value = (f"<pre style='white-space:pre-wrap;margin:4px 0'>"
                                    f"{escape(self.exercise.solution.strip())}</pre>")  # fmt: skip
        self.solution_button.description = "Hide solution"

    @property
    def hint_text(self) -> str:
        return self.hint_area.value

    @property
    def solution_text(self) -> str:
        return self.solution_area.value

    def __repr__(self) -> str:
        return (f"Exercise {self.exercise.key.replace('_', '.')}: {self.exercise.question}\n"
                "(answer it in the live notebook: JupyterLab or Voilà)")  # fmt: skip

    def static_html(self) -> str:
        given = self.exercise.given_text
        given = f"<pre>{escape(given)}</pre>" if given else ""
        given += "".join(  # a choice reads on paper too: list its options
            f"<ul>{''.join(f'<li>{escape(label)}</li>' for label in ask.options.values())}</ul>"
            for ask in self.exercise.asks if ask.options and not ask.count)  # fmt: skip
        return (f"<p>{self.title.value}</p>{given}<p><i>Answer in the live notebook "
                "(JupyterLab or Voilà): the answer boxes and the Check, Hint and Solution "
                "buttons appear there.</i></p>")  # fmt: skip


class PracticeRow:
    """One practice question: a text box with Check, Hint and Reveal, and its result."""

    def __init__(self, practice: Practice, number: int):
        self.practice, self.number = practice, number
        q = practice.questions[number - 1]
        self.prompt = W.HTML(f"<b>Q{number}.</b> <code>{escape(q.prompt)}</code>")
        self.box = W.Text(placeholder="your answer", layout=W.Layout(width="22em"))
        self.box.add_class("hvmio-answer")
        self.check_button = _button("Check", "hvmio-check", "primary")
        self.hint_button = _button("Hint", "hvmio-hint-button")
        self.reveal_button = _button("Reveal", "hvmio-solution-button")
        self.check_button.on_click(lambda _: self.check())
        self.hint_button.on_click(lambda _: self.show_hint())
        self.reveal_button.on_click(lambda _: self.reveal())
        self.result = _area("hvmio-result")
        self.hint_area = _area("hvmio-hint")
        self.solution_area = _area("hvmio-solution")
        self.verdict: Verdict | None = None
        self.widget = W.VBox([
            self.prompt,
            W.HBox([self.box, self.check_button, self.hint_button, self.reveal_button]),
            self.result, self.hint_area, self.solution_area,
        ])  # fmt: skip

    def answer(self, value: Any) -> None:
        self.box.value = "" if value is None else str(value)

    def check(self) -> Verdict:
        self.verdict = self.practice.judge(self.number, self.box.value)
        self.result.value = result_html(self.verdict)
        return self.verdict

    def show_hint(self) -> None:
        self.hint_area.value = result_html(None, f"Hint: {self.practice.hint_line(self.number)}")

    def reveal(self) -> None:
        self.solution_area.value = (f"<pre style='white-space:pre-wrap;margin:4px 0'>"
                                    f"{escape(self.practice.reveal_text(self.number))}</pre>")


class PracticeWidget(StaticView, W.VBox):
    """A seeded practice set, one row per question, each with its own Check/Hint/Reveal."""

    says_it_is_static = True  # its static view says where to answer

    def __init__(self, practice: Practice):
        self.practice = practice
        how = practice.how.split("\n")[0]  # the rest tells a code cell how to check
        head = W.HTML(f"<b>{escape(practice.title)}</b> (seed {practice.seed})"
                      + (f"<br>{text_html(how)}" if how else ""))  # fmt: skip
        self.rows = [PracticeRow(practice, i) for i in range(1, len(practice.questions) + 1)]
        super().__init__([head, *(r.widget for r in self.rows)])
        self.add_class("hvmio-practice")

    def __repr__(self) -> str:
        return self.practice.text()

    def static_html(self) -> str:
        items = "".join(f"<li><code>{escape(q.prompt)}</code></li>"
                        for q in self.practice.questions)  # fmt: skip
        how = self.practice.how.split("\n")[0]
        return (f"<p><b>{escape(self.practice.title)}</b> (seed {self.practice.seed})<br>"
                f"{text_html(how)}</p><ol>{items}</ol><p><i>Answer them in the live "
                "notebook: each question gets Check, Hint and Reveal there.</i></p>")


class PredictWidget(StaticView, W.VBox):
    """Predict, then check: the learner commits to a guess before the code's answer shows.

    ``reveal`` is what the code shows: text, or a function called only when the learner asks
    (so Run All computes nothing that gives the answer away). With ``options`` the guess is a
    pick, and ``answer`` (an option key) marks it right or wrong; without, a free-text guess is
    shown beside the reveal for the learner to compare."""

    says_it_is_static = True  # its static view says where to answer

    def __init__(self, question: str, reveal: str | Callable[[], str],
                 options: Mapping[str, str] | Sequence[str] | None = None,
                 answer: str | None = None, explain: str = ""):  # fmt: skip
        self.question, self._reveal, self.answer_key, self.explain = (
            question, reveal, answer, explain)
        if options is not None and not isinstance(options, Mapping):
            options = {o: o for o in options}
        self.options = options
        self.prompt = W.HTML(f"<b>Predict:</b> {text_html(question)}")
        self.prompt.add_class("hvmio-question")
        if options:
            self.guess_box: W.Widget = W.RadioButtons(
                options=[(label, k) for k, label in options.items()], value=None,
                layout=W.Layout(width="auto"))  # fmt: skip
        else:
            self.guess_box = W.Text(placeholder="your prediction", layout=W.Layout(width="30em"))
        self.guess_box.add_class("hvmio-answer")
        self.reveal_button = _button("Show what the code does", "hvmio-check", "primary")
        self.reveal_button.on_click(lambda _: self.show())
        self.result = _area("hvmio-result")
        self.solution_area = _area("hvmio-solution")
        self.revealed = False
        super().__init__([self.prompt, self.guess_box, self.reveal_button, self.result,
                          self.solution_area])  # fmt: skip
        self.add_class("hvmio-predict")

    def guess(self, value: str) -> None:
        self.guess_box.value = value

    def show(self) -> None:
        guess = self.guess_box.value
        guess = guess.strip() if isinstance(guess, str) else guess
        if not guess:
            self.result.value = result_html(None, "Make your prediction first: it is the point.")
            return
        try:
            shown = self._reveal() if callable(self._reveal) else self._reveal
        except Exception:  # the reveal's own failure, shown in words
            self.result.value = result_html(None, "The code could not run here; see the "
                                                  "chapter's cells for what it shows.")
            return
        said = self.options[guess] if self.options else guess
        if self.options and self.answer_key is not None:
            ok = guess == self.answer_key
            verdict = Verdict(ok, f"{'✓ As predicted' if ok else '✗ Not what you said'}: "
                                  f"you said {said!r}.")  # fmt: skip
            self.result.value = result_html(verdict)
        else:
            self.result.value = result_html(None, f"You said: {said}. Compare with the code:")
        extra = f"\n\n{self.explain}" if self.explain else ""
        self.solution_area.value = (f"<pre style='white-space:pre-wrap;margin:4px 0'>"
                                    f"{escape(str(shown) + extra)}</pre>")  # fmt: skip
        self.revealed = True

    def __repr__(self) -> str:
        return f"Predict: {self.question}"

    def static_html(self) -> str:
        opts = ""
        if self.options:
            opts = "<ul>" + "".join(f"<li>{escape(v)}</li>" for v in self.options.values())
            opts += "</ul>"
        return (f"<p><b>Predict:</b> {text_html(self.question)}</p>{opts}<p><i>Make your "
                "prediction in the live notebook, then see what the code shows.</i></p>")


def exercise(key: str) -> ExerciseWidget:
    """The widget of exercise ``key`` (e.g. ``"02_1"``)."""
    return ExerciseWidget(key)


def practice(p: Practice) -> PracticeWidget:
    """The widget of a practice set, e.g. ``practice(practice_02(seed=1))``."""
    return PracticeWidget(p)


def predict(question: str, reveal: str | Callable[[], str], **kwargs: Any) -> PredictWidget:
    """A predict-then-check prompt; see ``PredictWidget``."""
    return PredictWidget(question, reveal, **kwargs)
