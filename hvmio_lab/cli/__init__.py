"""The ``hvmio-lab`` command.

    hvmio-lab decode svm 0x1f480241 --rip 0x1000 --next-rip 0x1001
    hvmio-lab decode vmx 0x1f480008 --length 1 [--rip 0x1000] [--info 0x...]
    hvmio-lab run uart_hello --vendor vmx --path fast
    hvmio-lab boot seabios --vendor vmx --path fast
    hvmio-lab lab [DIR]
    hvmio-lab trace my-vm.trace   (or - for stdin)
    hvmio-lab kvm-probe

Each subcommand lives in a module of its own with one ``add(subcommands)`` function that
builds its parser and sets ``handler``; adding a command means writing one such module and
listing it in ``COMMANDS``. A handler returns the exit status; any ``HvmioError`` it raises
becomes one line on stderr and status 2, as does a malformed command line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import HvmioError
from . import boot, decode, kvm_probe, lab, run, trace
from .common import PROG, USAGE_ERROR, _Parser, survive_any_terminal

COMMANDS = (decode.add, run.add, boot.add, lab.add, trace.add, kvm_probe.add)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="hvmio_lab: how x86 hypervisors handle port-I/O VM exits.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    for add in COMMANDS:
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    survive_any_terminal()
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except HvmioError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
