"""The static view every widget of the workbook carries, for pages where no kernel runs.

A widget output holds two things: a reference to a live model (``application/vnd.jupyter.
widget-view+json``) and, beside it, ordinary ``text/html`` and ``text/plain``. Where the model
cannot be found (a reopened notebook, nbconvert's HTML, GitHub), the front end should fall
back to the HTML; ``save_hook.pre_save_hook`` makes sure it does, by dropping the reference
on save when the model's state is not stored with it. So the HTML must be worth reading on its
own: ``StaticView`` builds it from the widget's ``static_html()`` and ``repr``.
"""

from __future__ import annotations

import html

LIVE_NOTE = ("<p style='color:#555;font-style:italic;margin:2px 0'>A static copy: run the "
             "cell (JupyterLab or Voilà) for the live widget.</p>")  # fmt: skip


def escape(text: str) -> str:
    return html.escape(text)


class StaticView:
    """Mixin for an ipywidgets container: ``static_html()`` becomes the output's HTML,
    followed by a line saying it is a copy (unless the view says so itself)."""

    says_it_is_static = False

    def static_html(self) -> str:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def _repr_mimebundle_(self, **kwargs):
        data = super()._repr_mimebundle_(**kwargs) or {}  # type: ignore[misc]
        data["text/plain"] = repr(self)
        note = "" if self.says_it_is_static else LIVE_NOTE
        data["text/html"] = f"<div class='hvmio-static'>{self.static_html()}{note}</div>"
        return data
