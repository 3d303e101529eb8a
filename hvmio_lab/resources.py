"""Where the package's own files live, found the same way in a wheel and in a clone.

The data (guest programs, the disk image, cost models, the bench snapshot chapter 06 reads) is
the package ``hvmio_lab.data``, read through ``importlib.resources``: setup.py maps the repo's
top-level ``data/`` to it, so an editable install and a wheel open the same names. The
workbook (``notebooks/``, ``docs/``, ``data/``) sits in one folder with that shape in both: the
repo root in a clone, the installed package's folder in a wheel.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path


def data(*parts: str) -> Traversable:
    """The data file or folder at ``parts`` (e.g. ``data("guests", "programs.json")``)."""
    return files("hvmio_lab.data").joinpath(*parts)


def workbook() -> Path:
    """The folder holding ``notebooks/``, ``docs/`` and ``data/`` (what ``hvmio-lab lab`` copies).

    A real folder, not a Traversable: Jupyter serves it and the copy reads it as files, and pip
    always unpacks a wheel onto the file system.
    """
    return Path(str(files("hvmio_lab.data"))).parent
