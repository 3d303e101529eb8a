"""Exercise self-checks and seeded practice, one module a chapter (``chNN.py``).

How a chapter adds an exercise (the pattern every ``chNN.py`` follows):

1. Declare it once, with ``@exercise(key, question, solution, hint=..., ask=..., given=...)``
   on a judge function that returns ``right(...)`` or ``wrong(hint)`` (see ``common.py``).
   ``ask=`` describes the answer boxes of its widget (``Ask("port")``, ``Ask("letter",
   options=CHOICES)``, ``Ask("path", options=..., count=6)``); left out, the widget shows one
   text box per parameter of the judge.
2. That is all. Every ``chNN.py`` in this folder is imported here, so its exercises are in the
   registry ``EXERCISES``; the names ``check_NN_k``, ``hint_NN_k`` and ``reveal_NN_k`` are
   derived from it, and the widget (``hvmio_lab.widgets.exercise("NN_k")``) is built from the
   same declaration.
3. A practice set is a function ``practice_NN(seed=..., n=...)`` returning a ``Practice``; it
   is exported here by its name. Other names a notebook imports from ``hvmio_lab.checks`` go in
   the chapter module's ``__all__``.

``check_NN_k(answer)`` prints ✓ or ✗ with a hint; ``EXERCISES[key].judge(answer)`` returns the
``Verdict`` for tests; ``reveal_NN_k()`` prints the worked solution, ``hint_NN_k()`` a nudge.
"""

import importlib
import pkgutil
import re

from .ch00 import check_environment
from .ch03 import CHOICES_03_3
from .ch05 import CHOICES_05_3, EXITS_05_1, describe_exits_05_1
from .ch07 import DEFECTS_07, EXCERPT_07_1
from .common import EXERCISES, Ask, Exercise, Practice, Verdict

CHAPTERS = tuple(
    importlib.import_module(f".{m.name}", __name__)
    for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name)
    if re.fullmatch(r"ch\d\d", m.name)
)

__all__ = [
    "CHAPTERS",
    "CHOICES_03_3",
    "CHOICES_05_3",
    "DEFECTS_07",
    "EXCERPT_07_1",
    "EXERCISES",
    "EXITS_05_1",
    "Ask",
    "Exercise",
    "Practice",
    "Verdict",
    "check_environment",
    "describe_exits_05_1",
]


def _export(name: str, value: object) -> None:
    globals()[name] = value
    if name not in __all__:
        __all__.append(name)


def _derive_names() -> None:
    """check_/hint_/reveal_<key> for every registered exercise (named once, in the registry),
    each chapter's practice_NN, and the names a chapter lists in its ``__all__``."""
    for key, ex in EXERCISES.items():
        for verb in ("check", "hint", "reveal"):
            _export(f"{verb}_{key}", getattr(ex, verb))
    for chapter in CHAPTERS:
        names = [n for n in vars(chapter) if re.fullmatch(r"practice_\d\d", n)]
        for name in [*names, *getattr(chapter, "__all__", ())]:
            _export(name, getattr(chapter, name))


_derive_names()
