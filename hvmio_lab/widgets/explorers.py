"""Live explorers for chapters 05 and 07: one exit down two paths, side by side.

Both are views over ``compare.both_paths``: the scenarios are declared in the chapters'
checks (``checks.ch05.INSTRUCTIONS_05``, ``checks.ch07.DEFECT_RUNS_07``) and run by the core,
so a test of those reaches everything the explorers show. A pick re-runs the exit on fresh
twin machines; a run that fails shows a message in the explorer, never a traceback.

    FastPathExplorer().pick(instruction="rep outsb (UART THR 0x3F8)", vendor="vmx")
    DefectExplorer().pick(defect="stale stash")

CSS classes: ``hvmio-explorer`` the widget; ``hvmio-compare`` the side-by-side table;
``hvmio-verdict`` the equality check; ``hvmio-stages`` the per-stage times; ``hvmio-error``.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W

from ..checks.ch05 import INSTRUCTIONS_05, PATH_PAIRS_05, run_05
from ..checks.ch07 import DEFECT_RUNS_07, DEFECTS_07, run_defect_07
from ..compare import Comparison
from .exercise import NOTE_STYLE, OK_STYLE, WRONG_STYLE
from .static import StaticView, escape

VENDORS = (("SVM (AMD)", "svm"), ("VMX (Intel)", "vmx"))
BOX = "padding:4px 8px;margin:4px 0;border-radius:3px"


def comparison_html(c: Comparison) -> str:
    """The comparison's rows as a table, differing cells marked."""
    head = "".join(f"<th style='text-align:left;padding:0 8px'>{escape(h)}</th>"
                   for h in ("", *c.paths))  # fmt: skip
    body = []
    for what, left, right in c.rows():
        mark = "" if left == right else " style='background:#fff3cd'"
        body.append(f"<tr{mark}><td style='padding:0 8px'><b>{escape(what)}</b></td>"
                    f"<td style='padding:0 8px'><code>{escape(left)}</code></td>"
                    f"<td style='padding:0 8px'><code>{escape(right)}</code></td></tr>")
    return f"<table class='hvmio-table'><tr>{head}</tr>{''.join(body)}</table>"


def verdict_html(c: Comparison, same_note: str = "") -> str:
    agree = "yes" if c.accesses_agree else "no"
    if c.same_machine:
        return (f"<div style='{OK_STYLE};{BOX}'>✓ The machines are the same afterwards "
                f"(accesses agree: {agree}).{escape(same_note)}</div>")
    items = "".join(f"<li><code>{escape(d)}</code></li>" for d in c.differences)
    return (f"<div style='{WRONG_STYLE};{BOX}'>✗ The machines differ afterwards (accesses "
            f"agree: {agree}):<ul style='margin:2px 0'>{items}</ul></div>")


class _Explorer(StaticView, W.VBox):
    """Pickers on top, the comparison below; subclasses say what to run."""

    same_note = ""  # said when the machines end the same

    def __init__(self, pickers: list[W.Widget], intro: str):
        self.intro = W.HTML(intro)
        self.message = W.HTML("")
        self.message.add_class("hvmio-error")
        self.table = W.HTML("")
        self.table.add_class("hvmio-compare")
        self.verdict = W.HTML("")
        self.verdict.add_class("hvmio-verdict")
        self.stages = W.HTML("")
        self.stages.add_class("hvmio-stages")
        self.comparison: Comparison | None = None
        self._pickers = pickers
        for p in pickers:
            p.observe(self._redraw, "value")
        super().__init__([self.intro, W.HBox(pickers, layout=W.Layout(flex_flow="row wrap")),
                          self.message, self.verdict, self.table, self.stages])  # fmt: skip
        self.add_class("hvmio-explorer")
        self._redraw()

    def _run(self) -> Comparison:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def _redraw(self, _change: Any = None) -> None:
        try:
            c = self._run()
        except Exception:  # a picker set to nothing, or a scenario that cannot run
            self.comparison = None
            self.message.value = (f"<div style='{NOTE_STYLE};{BOX}'>Pick one of the listed "
                                  "options in every box to run the exit.</div>")  # fmt: skip
            self.table.value = self.verdict.value = self.stages.value = ""
            return
        self.comparison = c
        self.message.value = ""
        self.table.value = comparison_html(c)
        self.verdict.value = verdict_html(c, self.same_note)
        self.stages.value = ("<details><summary>per-stage time on this machine, ns (varies "
                             "from run to run)</summary><pre>"
                             + escape("\n".join(c.stage_lines())) + "</pre></details>")

    def __repr__(self) -> str:
        return str(self.comparison) if self.comparison else type(self).__name__

    def static_html(self) -> str:
        c = self.comparison
        picked = " · ".join(f"{p.description}: <b>{escape(str(p.label))}</b>"
                            for p in self._pickers)  # fmt: skip
        body = (comparison_html(c) + verdict_html(c, self.same_note)) if c else ""
        return f"{self.intro.value}<p>{picked}</p>{body}"


class FastPathExplorer(_Explorer):
    """Chapter 05: pick an instruction, a vendor and two paths; see both side by side."""

    def __init__(self, instruction: str = next(iter(INSTRUCTIONS_05)), vendor: str = "svm",
                 paths: tuple[str, str] = ("fast", "emulate")):  # fmt: skip
        self.instruction = W.Dropdown(options=list(INSTRUCTIONS_05), value=instruction,
                                      description="instruction",
                                      layout=W.Layout(width="24em"))  # fmt: skip
        self.vendor = W.Dropdown(options=VENDORS, value=vendor, description="vendor",
                                 layout=W.Layout(width="14em"))  # fmt: skip
        self.paths = W.Dropdown(options=[(f"{a} vs {b}", (a, b)) for a, b in PATH_PAIRS_05],
                                value=tuple(paths), description="paths",
                                layout=W.Layout(width="18em"))  # fmt: skip
        super().__init__([self.instruction, self.vendor, self.paths],
                         "<b>One exit, two paths.</b> The same instruction on twin machines: "
                         "the exit record, the access each path works out, the bytes it read, "
                         "and every register, memory and device change. Fast against emulate "
                         "must always end the same.")  # fmt: skip

    def pick(self, **values: Any) -> None:
        """Set pickers by name (instruction, vendor, paths), as a learner would."""
        for name, value in values.items():
            getattr(self, name).value = value

    def _run(self) -> Comparison:
        return run_05(self.instruction.value, self.vendor.value, self.paths.value)


class DefectExplorer(_Explorer):
    """Chapter 07: pick a defect of the 2010 patch; see it beside the modern handling."""

    same_note = (" This defect shows in how the exit was handled (the highlighted rows), not "
                 "in what the guest can see.")

    def __init__(self, defect: str = next(iter(DEFECT_RUNS_07)), vendor: str = "svm",
                 modern: str = "fast"):  # fmt: skip
        self.defect = W.Dropdown(options=[(f"{k}: {DEFECTS_07[k]}", k) for k in DEFECT_RUNS_07],
                                 value=defect, description="defect",
                                 layout=W.Layout(width="36em"))  # fmt: skip
        self.vendor = W.Dropdown(options=VENDORS, value=vendor, description="vendor",
                                 layout=W.Layout(width="14em"))  # fmt: skip
        self.modern = W.Dropdown(options=[("modern fast path", "fast"),
                                          ("modern emulator", "emulate")],
                                 value=modern, description="beside",
                                 layout=W.Layout(width="16em"))  # fmt: skip
        super().__init__([self.defect, self.vendor, self.modern],
                         "<b>The 2010 patch beside today's handling.</b> Each defect's run, on "
                         "twin machines: where the columns differ is what a guest would have "
                         "seen.")  # fmt: skip

    def pick(self, **values: Any) -> None:
        """Set pickers by name (defect, vendor, modern), as a learner would."""
        for name, value in values.items():
            getattr(self, name).value = value

    def _run(self) -> Comparison:
        return run_defect_07(self.defect.value, self.vendor.value, self.modern.value)
