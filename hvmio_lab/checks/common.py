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

    check_02_1, reveal_02_1 = ex_02_1.check, ex_02_1.reveal

``check`` prints ✓ or ✗ with a hint aimed at the likely misconception and returns nothing (so
a notebook cell shows just the line); ``judge`` returns the ``Verdict`` for tests. A judge
that cannot read the answer raises ``AnswerError``, which ``check`` prints as a hint about the
expected form. ``Practice`` holds seeded questions, OSTEP style: the same seed gives the same
questions, ``check(i, answer)`` marks one, ``reveal()`` prints the worked answers.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ExitInfoError
from ..exits import IoAccess

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


@dataclass
class Exercise:
    key: str
    question: str
    solution: str
    judge_fn: Callable[..., Verdict]
    hint_text: str = ""

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
        print(self.hint_text or f"Re-read the question: {self.question}")

    def reveal(self) -> None:
        """Print the worked solution."""
        print(f"Exercise {self.key}: {self.question}\n\n{self.solution.strip()}")


EXERCISES: dict[str, Exercise] = {}


def exercise(key: str, question: str, solution: str, hint: str = ""):
    """Register the decorated judge as exercise ``key`` and return the ``Exercise``."""

    def register(judge_fn: Callable[..., Verdict]) -> Exercise:
        if key in EXERCISES:
            raise ValueError(f"exercise {key} is defined twice")
        EXERCISES[key] = ex = Exercise(key, question, solution, judge_fn, hint)
        return ex

    return register


# -- reading answers -----------------------------------------------------------------------


def as_int(answer: Any, what: str) -> int:
    """An integer answer; a string such as '0x1f480241' is read too."""
    if isinstance(answer, int) and not isinstance(answer, bool):
        return answer
    if isinstance(answer, str):
        try:
            return int(answer.strip().replace("_", ""), 0)
        except ValueError:
            pass
    what = what[0].lower() + what[1:] if what.startswith("The ") else what
    raise AnswerError(f"Answer {what} with a number, e.g. 12 or 0x2a; got {answer!r}.")


ROLES = {
    "hypervisor": "hypervisor", "vmm": "hypervisor", "host": "hypervisor", "kvm": "hypervisor",
    "xen": "hypervisor", "cpu": "cpu", "hardware": "cpu", "processor": "cpu", "guest": "guest",
    "device": "device", "device model": "device", "uart": "device", "qemu": "device",
}  # fmt: skip


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


def judge_access(answer: Any, expected: IoAccess | str, hints: dict[str, str]) -> Verdict:
    """Mark a decode answer (see ``parse_access``) against ``expected``: an access, or the
    name of the field that makes the record invalid. ``hints`` gives the vendor's wording for
    each part a learner may get wrong: direction, size, port, string, rep, invalid, valid."""
    got = parse_access(answer)
    if isinstance(expected, str):
        if not isinstance(got, str):
            return wrong(hints["invalid"])
        named = got.replace("bits", "").replace("bit", "").strip()
        if named and named.split()[0] != expected.lower().split()[0]:
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


@dataclass
class Practice:
    """Seeded questions (OSTEP homework style): print them, answer, check, reveal."""

    title: str
    seed: int
    questions: Sequence[Question]
    how: str = ""

    def _question(self, i: int) -> Question:
        if not 1 <= i <= len(self.questions):
            raise IndexError(f"questions are numbered 1..{len(self.questions)}, got {i}")
        return self.questions[i - 1]

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

    def judge(self, i: int, answer: Any) -> Verdict:
        question = self._question(i)
        if answer is None or answer is Ellipsis:
            return Verdict(False, f"{WRONG} No answer yet: replace None with yours, then run the "
                                  "cell again.")
        try:
            return question.judge(answer)
        except AnswerError as e:
            return wrong(str(e))

    def check(self, i: int, answer: Any) -> None:
        print(f"Q{i}: {self.judge(i, answer)}")

    def reveal(self, i: int | None = None) -> None:
        numbers = range(1, len(self.questions) + 1) if i is None else [i]
        for n in numbers:
            q = self._question(n)
            print(f"Q{n}. {q.prompt}\n     answer: {q.answer}\n     {q.worked}")


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
    return Practice(title, seed, questions, how)
