"""Where the package's own data lives (guest programs, the disk image, cost models, the bench
snapshot chapter 06 reads), found through ``importlib.resources`` so that a wheel and a clone
read the same files."""

from __future__ import annotations

from importlib.resources.abc import Traversable
from pathlib import Path

_DATA = Path(__file__).resolve().parent.parent / "data"


def data(*parts: str) -> Traversable:
    """The data file or folder at ``parts`` (e.g. ``data("guests", "programs.json")``)."""
    node: Traversable = _DATA
    for part in parts:
        node = node / part
    return node
