"""What every subcommand shares: number parsing, the one-line usage error, record printing."""

from __future__ import annotations

import argparse
from typing import NoReturn

from ..exits import SvmIoExit, VmxIoExit
from ..fields import format_rows

PROG = "hvmio-lab"
USAGE_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (the usage is one ``-h`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n")


def number(text: str) -> int:
    """An integer as a learner writes one: 0x1f48, 0b101, 0o17, 8008 or 1f48_0241 with 0x."""
    try:
        return int(text.replace("_", ""), 0)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a number: {text!r} (write hex with 0x, e.g. 0x1f480241)"
        ) from None



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
