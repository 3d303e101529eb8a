"""What every subcommand shares: number parsing, the one-line usage error, record printing."""

from __future__ import annotations

import argparse
import codecs
import io
import sys
from typing import NoReturn

from ..errors import InvalidValue
from ..exits import SvmIoExit, VmxIoExit
from ..fields import format_rows
from ..numbers import parse_number

PROG = "hvmio-lab"
USAGE_ERROR = 2
# What the CLI prints outside ASCII, spelled in ASCII for a terminal that cannot show it.
_ASCII = {"→": "->", "←": "<-", "−": "-", "–": "-", "—": "-", "×": "x", "≤": "<=", "≥": ">=",
          "≠": "!=", "…": "...", "✓": "ok", "✗": "x", "⚠": "!", "§": "S", "µ": "u", "·": "."}


def _ascii_fallback(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    text = error.object[error.start : error.end]
    ascii_ = "".join(_ASCII.get(c) or c.encode("ascii", "backslashreplace").decode() for c in text)
    return ascii_, error.end


codecs.register_error("hvmio_lab.ascii", _ascii_fallback)


def survive_any_terminal() -> None:
    """Print what a terminal's encoding cannot show in ASCII (``→`` as ``->``), never fail.

    ``PYTHONIOENCODING=ascii``, a C locale or a Windows code page would otherwise end a
    command in a UnicodeEncodeError traceback halfway through its table."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="hvmio_lab.ascii")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (the usage is one ``-h`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n")


def number(text: str) -> int:
    """An integer by the core's one rule (``hvmio_lab.numbers``): 0x1f48, 0b101, 0o17, 8008."""
    try:
        return parse_number(text)
    except InvalidValue as e:
        raise argparse.ArgumentTypeError(str(e)) from None



def print_exit(exit_: SvmIoExit | VmxIoExit, title: str) -> None:
    access = exit_.access()  # validates first: nothing is printed for a refused record
    print(title)
    print(format_rows(exit_.describe()))
    print()
    print(f"access:   {access}")
    details = [f"{name} {value}" for name, value in (
        ("address size", access.address_size),
        ("segment", access.segment),
        ("immediate", access.immediate),
    ) if value is not None]
    if details:
        print(f"          {', '.join(details)}")
    print(f"RIP:      {exit_.rip:#x} → resume at {exit_.next_rip:#x}")


def positive(text: str) -> int:
    """A count of at least 1."""
    value = number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
