"""What every chapter's exercises share: a registry, check/hint/reveal, seeded practice.

An exercise is a judge function wrapped by ``@exercise``::

    @exercise("02_1", "Encode `in eax, dx` from port 0x1F48 as EXITINFO1.", solution=TEXT)
    def ex_02_1(answer):
        value = as_int(answer, "EXITINFO1")
        if value == 0x1F480241:
            return right("TYPE, SZ32, A64 and the port: that is the whole record.")
        if value & 1 == 0:
            return wrong("That is an OUT: TYPE (bit 0) is 1 for IN.")
        ...
        return wrong("...")

That one declaration is the whole exercise: ``checks/__init__.py`` derives the names
``check_02_1``, ``hint_02_1`` and ``reveal_02_1`` from the registry, and the exercise widget
(``hvmio_lab.widgets.exercise("02_1")``) builds its answer boxes from ``ask=`` (one ``Ask`` per
judge argument; without it, one text box per parameter of the judge). ``given=`` is material
shown with the question (a string, or a function called only when shown).

``check`` prints ✓ or ✗ with a hint aimed at the likely misconception and returns nothing (so
a notebook cell shows just the line); ``judge`` returns the ``Verdict`` for tests. A judge
that cannot read the answer raises ``AnswerError``, which ``check`` prints as a hint about the
expected form. ``Practice`` holds seeded questions, OSTEP style: the same seed gives the same
questions, ``check(i, answer)`` marks one, ``reveal()`` prints the worked answers.
"""

from __future__ import annotations

import inspect
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..errors import ExitInfoError, InvalidValue
from ..exits import IoAccess
from ..numbers import parse_number

RIGHT, WRONG = "✓", "✗"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    message: str

    def __str__(self) -> str:
        return self.message


def right(note: str = "") -> Verdict:
    return Verdict(True, f"{RIGHT} Correct." + (f" {note}" if note else ""))


def wrong(hint: str) -> Verdict:
    return Verdict(False, f"{WRONG} Not yet. {hint}")


class AnswerError(ValueError):
    """The answer is not in the form the exercise asks for; the message says which form."""


@dataclass(frozen=True)
class Ask:
    """One answer box of an exercise: a text box, or a pick among ``options`` (value → label).
    ``count`` > 0 asks for a list of that many values (one box each); ``several`` lets the
    learner tick any number of the options (the answer is the list ticked)."""

    label: str
    options: Mapping[str, str] | None = None
    count: int = 0
    several: bool = False
    placeholder: str = ""


Text = str | Callable[[], str]  # a text, or a function that makes it when first needed


@dataclass
class Exercise:
    """One exercise. Its question and solution may be given as functions, so that a chapter
    whose texts quote a guest program loads nothing until the text is first read."""

    key: str
    question_source: Text
    solution_source: Text
    judge_fn: Callable[..., Verdict]
    hint_text: str = ""
    ask: tuple[Ask, ...] = ()
    given: str | Callable[[], str] = ""
    prompt: str = ""

    @cached_property
    def question(self) -> str:
        q = self.question_source
        return q() if callable(q) else q

    @cached_property
    def solution(self) -> str:
        s = self.solution_source
        return s() if callable(s) else s

    @property
    def widget_question(self) -> str:
        """The question as its widget asks it: as declared by ``prompt``, else the question
        without the sentence that tells a code cell how to shape its answer (the widget's
        labelled boxes say that)."""
        if self.prompt:
            return self.prompt
        return _CODE_FORM.sub("", self.question).strip()

    @property
    def asks(self) -> tuple[Ask, ...]:
        """The answer boxes: as declared, or one text box per parameter of the judge."""
        if self.ask:
            return self.ask
        names = inspect.signature(self.judge_fn).parameters
        return tuple(Ask(name.replace("_", " ")) for name in names)

    @property
    def given_text(self) -> str:
        """The material shown with the question (computed only when asked for)."""
        return self.given() if callable(self.given) else self.given

    @property
    def hint_line(self) -> str:
        return self.hint_text or f"Re-read the question: {self.question}"

    def judge(self, *answer: Any) -> Verdict:
        if any(a is None or a is Ellipsis for a in answer):
            return Verdict(False, f"{WRONG} No answer yet: replace None with yours, then run the "
                                  "cell again.")
        try:
            return self.judge_fn(*answer)
        except AnswerError as e:
            return wrong(str(e))
        except TypeError as e:  # wrong number of answers
            if "positional argument" in str(e):
                return wrong(f"Check how many answers exercise {self.key} asks for: "
                             f"{self.question}")
            raise

    def check(self, *answer: Any) -> None:
        """Print ✓ or ✗ with a hint."""
        print(self.judge(*answer))

    def hint(self) -> None:
        """Print a nudge that gives nothing away."""
        print(self.hint_line)

    def reveal(self) -> None:
        """Print the worked solution."""
        print(f"Exercise {self.key}: {self.question}\n\n{self.solution.strip()}")


EXERCISES: dict[str, Exercise] = {}
# "Answer (field, bytes).", "Pick 'a', 'b' … from CHOICES_05_3.", "Answer a list of names."
_CODE_FORM = re.compile(r"\s*(Answer \(.*|Pick '.*|Answer a list of .*)$")


def exercise(key: str, question: Text, solution: Text, hint: str = "",
             ask: Sequence[Ask] = (), given: str | Callable[[], str] = "",
             prompt: str = ""):  # fmt: skip
    """Register the decorated judge as exercise ``key`` and return the ``Exercise``."""

    def register(judge_fn: Callable[..., Verdict]) -> Exercise:
        if key in EXERCISES:
            raise ValueError(f"exercise {key} is defined twice")
        EXERCISES[key] = ex = Exercise(key, question, solution, judge_fn, hint, tuple(ask),
                                       given, prompt)  # fmt: skip
        return ex

    return register


# -- reading answers -----------------------------------------------------------------------


def as_int(answer: Any, what: str) -> int:
    """An integer answer; a string such as '0x1f480241' is read too."""
    if isinstance(answer, int) and not isinstance(answer, bool):
        return answer
    if isinstance(answer, str):
        try:
            return parse_number(answer)
        except InvalidValue:
            pass
    what = what[0].lower() + what[1:] if what.startswith("The ") else what
    raise AnswerError(f"Answer {what} with a number, e.g. 12 or 0x2a; got {answer!r}.")


ROLES = {
    "hypervisor": "hypervisor", "vmm": "hypervisor", "host": "hypervisor", "kvm": "hypervisor",
    "xen": "hypervisor", "cpu": "cpu", "hardware": "cpu", "processor": "cpu", "guest": "guest",
    "device": "device", "device model": "device", "uart": "device", "qemu": "device",
}  # fmt: skip


ROLE_OPTIONS = {"cpu": "the CPU", "guest": "the guest", "device": "the device",
                "hypervisor": "the hypervisor"}  # fmt: skip


def as_role(answer: Any) -> str:
    """Who did it: 'hypervisor', 'cpu', 'guest' or 'device', however the learner names it."""
    role = ROLES.get(as_word(answer, "who"))
    if role is None:
        raise AnswerError("Answer 'hypervisor', 'cpu', 'guest' or 'device'.")
    return role


def as_choice(answer: Any, choices: dict[str, str], name: str) -> str:
    """One letter of a multiple-choice question whose options are printed as ``name``."""
    choice = as_word(answer, "with a letter")
    if choice not in choices:
        *first, last = (f"'{c}'" for c in sorted(choices))
        raise AnswerError(f"Answer {', '.join(first)} or {last} (see {name}); got {answer!r}.")
    return choice


def as_word(answer: Any, what: str) -> str:
    """A short text answer, lower-cased, punctuation and a leading "the" dropped."""
    if not isinstance(answer, str):
        raise AnswerError(f"Answer {what} with a word in quotes; got {answer!r}.")
    words = re.sub(r"[^\w\s:-]", " ", answer.lower()).split()
    if words[:1] == ["the"]:
        words = words[1:]
    return " ".join(words)


_REG_SIZE = {"al": 1, "ax": 2, "eax": 4}
_SUFFIX_SIZE = {"b": 1, "w": 2, "d": 4}


@dataclass(frozen=True)
class Instruction:
    """An I/O instruction as a learner writes it in Intel syntax."""

    is_in: bool
    size: int
    string: bool = False
    rep: bool = False
    immediate: bool | None = None  # None for string instructions (they always use DX)
    port: int | None = None  # the imm8, when there is one


def parse_instruction(text: Any) -> Instruction:
    """Read ``in al, dx``, ``out 0x80, al``, ``in eax,dx``, ``rep insw``, ``outsb`` …"""
    if not isinstance(text, str):
        raise AnswerError(f"Write the instruction as text, e.g. 'in al, dx'; got {text!r}.")
    s = " ".join(text.lower().replace(",", " , ").split())
    m = re.fullmatch(r"(rep\s+)?(ins|outs)([bwd])", s)
    if m:
        return Instruction(m[2] == "ins", _SUFFIX_SIZE[m[3]], True, bool(m[1]))
    m = re.fullmatch(r"(in|out)\s+(\S+)\s*,\s*(\S+)", s)
    if not m:
        raise AnswerError(
            f"Write the instruction in Intel syntax, e.g. 'in al, dx' or 'out 0x80, al'; "
            f"got {text!r}."
        )
    is_in = m[1] == "in"
    reg, port = (m[2], m[3]) if is_in else (m[3], m[2])
    if reg not in _REG_SIZE:
        raise AnswerError(f"The data register of IN/OUT is al, ax or eax; got {reg!r}.")
    if port == "dx":
        return Instruction(is_in, _REG_SIZE[reg], immediate=False)
    try:
        value = int(port, 0)
    except ValueError:
        raise AnswerError(
            f"The port operand is dx or a number such as 0x60; got {port!r}."
        ) from None
    return Instruction(is_in, _REG_SIZE[reg], immediate=True, port=value)


_ACCESS_RE = re.compile(
    r"(?P<rep>rep\s+)?(?P<op>ins|outs|in|out)\s+(?P<bits>8|16|32)[- ]?bits?\s+"
    r"(?:port\s+)?(?P<port>0x[0-9a-f_]+|\d+)"
)


def parse_access(text: Any) -> IoAccess | str:
    """Read a practice answer: ``IN 32-bit port 0x1f48`` (the way ``str(IoAccess)`` prints
    one), ``rep OUTS 8-bit port 0x3f8``, or ``invalid`` / ``invalid SZ``. An invalid answer
    comes back as the (lower-case) field named, or '' when none is."""
    if not isinstance(text, str):
        raise AnswerError(f"Answer like 'IN 32-bit port 0x1f48' or 'invalid SZ'; got {text!r}.")
    s = " ".join(text.strip().lower().split())
    if s.startswith("invalid"):
        return s[len("invalid") :].strip(" :-")
    m = _ACCESS_RE.fullmatch(s)
    if not m:
        raise AnswerError(
            f"Answer like 'IN 32-bit port 0x1f48', 'rep OUTS 8-bit port 0x3f8' or "
            f"'invalid SZ'; got {text!r}."
        )
    return IoAccess(
        port=int(m["port"].replace("_", ""), 0) & 0xFFFF,
        size=int(m["bits"]) // 8,
        is_in=m["op"] in ("in", "ins"),
        string=m["op"] in ("ins", "outs"),
        rep=bool(m["rep"]),
    )


# What learners call the fields a broken record gets wrong (SVM and VMX names alike).
_FIELD_NAMES = {
    "sz": "size", "size": "size", "operand size": "size", "data size": "size",
    "access size": "size", "a": "address size", "address size": "address size",
    "address": "address size", "addr": "address size", "addr size": "address size",
    "asz": "address size", "seg": "segment", "segment": "segment", "sreg": "segment",
    "reserved": "reserved", "rsvd": "reserved", "mbz": "reserved", "must be zero": "reserved",
    "operand encoding": "operand encoding", "operand": "operand encoding",
    "encoding": "operand encoding", "immediate": "operand encoding", "imm": "operand encoding",
    "imm8": "operand encoding",
}  # fmt: skip


def field_name(text: str) -> str:
    """One name for a field however it is written: 'A', 'address size', 'A64 bits' → the
    same; unknown names come back lower-cased."""
    words = [w for w in re.sub(r"[^\w\s]", " ", text.lower()).split()
             if w not in ("bit", "bits", "field", "the", "is", "wrong", "bad", "invalid")]
    phrase = " ".join(words)
    if phrase in _FIELD_NAMES:
        return _FIELD_NAMES[phrase]
    first = words[0] if words else ""
    sized = re.fullmatch(r"(sz|a)(8|16|32|64)", first)  # SZ16, A64: a bit of the field
    return _FIELD_NAMES.get(sized[1] if sized else first, phrase)


def judge_access(answer: Any, expected: IoAccess | str, hints: dict[str, str]) -> Verdict:
    """Mark a decode answer (see ``parse_access``) against ``expected``: an access, or the
    name of the field that makes the record invalid. ``hints`` gives the vendor's wording for
    each part a learner may get wrong: direction, size, port, string, rep, invalid, valid."""
    got = parse_access(answer)
    if isinstance(expected, str):
        if not isinstance(got, str):
            return wrong(hints["invalid"])
        if got and field_name(got) != field_name(expected):
            return wrong(f"It is invalid, but not because of {got!r}. {hints['invalid']}")
        return right(f"Invalid: {expected}.")
    if isinstance(got, str):
        return wrong(hints["valid"])
    parts = [
        ("direction", got.is_in == expected.is_in),
        ("size", got.size == expected.size),
        ("string", got.string == expected.string),
        ("rep", got.rep == expected.rep),
        ("port", got.port == expected.port),
    ]
    bad = [name for name, ok in parts if not ok]
    if not bad:
        return right(str(expected))
    return wrong(" ".join(hints[name] for name in bad))


# -- seeded practice -----------------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    prompt: str
    answer: str  # what reveal() prints first
    worked: str  # how to get there
    judge: Callable[[Any], Verdict]
    hint: str = ""  # a nudge for this question; the set's hint when empty


@dataclass
class Practice:
    """Seeded questions (OSTEP homework style): print them, answer, check, reveal one.

    Questions are numbered from 1; ``check``, ``hint`` and ``reveal`` take the number (``3``,
    ``"3"`` or ``"Q3"``) and answer a bad one with a message, never an exception. ``reveal()``
    without a number shows one answer: the first question not yet answered right."""

    title: str
    seed: int
    questions: Sequence[Question]
    how: str = ""
    hint_text: str = ""
    solved: set[int] = field(default_factory=set)

    def number(self, i: Any) -> int:
        """Question ``i`` as a number 1..n, or AnswerError saying what the numbers are."""
        n = len(self.questions)
        text = i.strip().lower().removeprefix("q").strip() if isinstance(i, str) else None
        if text is not None and text.isdigit():
            i = int(text)
        if isinstance(i, bool) or not isinstance(i, int):
            raise AnswerError(f"Name a question by its number, 1 to {n} (e.g. 1 or 'Q1'); "
                              f"got {i!r}.")  # fmt: skip
        if not 1 <= i <= n:
            raise AnswerError(f"This set has questions 1 to {n}; there is no question {i}.")
        return i

    def text(self) -> str:
        lines = [f"{self.title} (seed={self.seed})"]
        if self.how:
            lines.append(self.how)
        lines += [f"  Q{i}. {q.prompt}" for i, q in enumerate(self.questions, 1)]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.text()

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(self.text())

    def judge(self, i: Any, answer: Any) -> Verdict:
        try:
            n = self.number(i)
        except AnswerError as e:
            return Verdict(False, f"{WRONG} {e}")
        if answer is None or answer is Ellipsis or (isinstance(answer, str) and not
                                                    answer.strip()):  # fmt: skip
            return Verdict(False, f"{WRONG} No answer yet: give yours, then check again.")
        try:
            verdict = self.questions[n - 1].judge(answer)
        except AnswerError as e:
            return wrong(str(e))
        if verdict.ok:
            self.solved.add(n)
        return verdict

    def check(self, i: Any, answer: Any) -> None:
        verdict = self.judge(i, answer)
        try:
            print(f"Q{self.number(i)}: {verdict}")
        except AnswerError:
            print(verdict)

    def hint_line(self, i: Any) -> str:
        """A nudge for question ``i`` (or the message naming the valid numbers)."""
        try:
            n = self.number(i)
        except AnswerError as e:
            return str(e)
        return (self.questions[n - 1].hint or self.hint_text or
                "Work it out as in the chapter; Check says which part is off.")  # fmt: skip

    def hint(self, i: Any) -> None:
        print(self.hint_line(i))

    def reveal_text(self, i: Any = None) -> str:
        """The worked answer of question ``i``; without ``i``, of the first one not yet
        answered right."""
        if i is None:
            open_ = [n for n in range(1, len(self.questions) + 1) if n not in self.solved]
            if not open_:
                return "Every question is answered: well done."
            i = open_[0]
        try:
            n = self.number(i)
        except AnswerError as e:
            return str(e)
        q = self.questions[n - 1]
        return f"Q{n}. {q.prompt}\n     answer: {q.answer}\n     {q.worked}"

    def reveal(self, i: Any = None) -> None:
        print(self.reveal_text(i))


def record_question(
    prompt: str,
    expected: IoAccess | str,
    validate: Callable[[], object],
    worked: Callable[[], str],
    hints: dict[str, str],
) -> Question:
    """A decode-this-record question: ``expected`` is the access, or the name of the field a
    broken record gets wrong (then ``validate()`` raises the message shown as the answer)."""
    if isinstance(expected, str):
        text = f"{expected} breaks the rules"
        try:
            validate()
        except ExitInfoError as e:
            text = str(e)
        return Question(prompt, f"invalid {expected}", text,
                        lambda a: judge_access(a, expected, hints))  # fmt: skip
    return Question(prompt, str(expected), worked(), lambda a: judge_access(a, expected, hints))


def decode_practice(
    key: str,
    title: str,
    seed: int,
    n: int,
    invalid: float,
    make: Callable[[random.Random], int],
    corrupt: Callable[[int, random.Random], tuple[int, str]],
    question: Callable[[int, IoAccess | str], Question],
    decode: Callable[[int], IoAccess],
    how: str = "",
    hint: str = "",
) -> Practice:
    """``n`` seeded records to decode (OSTEP style: the same seed gives the same questions);
    about ``invalid`` of them are broken by ``corrupt``."""
    if not 1 <= n <= 100:
        raise AnswerError(f"n must be 1..100, got {n}")
    rng = random.Random(f"{key}/{seed}")
    questions = []
    for _ in range(n):
        value = make(rng)
        if rng.random() < invalid:
            value, bad = corrupt(value, rng)
            questions.append(question(value, bad))
        else:
            questions.append(question(value, decode(value)))
    return Practice(title, seed, questions, how, hint)
