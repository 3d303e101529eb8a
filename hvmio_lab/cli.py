"""The ``hvmio-lab`` command.

    hvmio-lab decode svm 0x1f480241 --rip 0x1000 --next-rip 0x1001
    hvmio-lab decode vmx 0x1f480008 --length 1 [--rip 0x1000] [--info 0x...]

Each subcommand is one ``add_<name>(subcommands)`` function that builds its parser and sets
``handler``; adding a command (``run``, ``bench``, ``lab``) means writing one such function and
listing it in ``COMMANDS``. A handler returns the exit status; any ``HvmioError`` it raises
becomes one line on stderr and status 2, as does a malformed command line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from .errors import HvmioError
from .exits import SvmIoExit, VmxIoExit
from .fields import Row

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


# -- output ------------------------------------------------------------------------------


def format_rows(rows: Sequence[Row]) -> str:
    """A describe() table as aligned text; a field that breaks the rules is marked ✗."""
    table = [("bits", "field", "raw", "meaning")]
    table += [(r.bits, r.field, r.raw, r.meaning + ("" if r.ok else "  ✗")) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3]
        for row in table
    )


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


# -- decode --------------------------------------------------------------------------------


def _decode_svm(args: argparse.Namespace) -> int:
    exit_ = SvmIoExit(args.exitinfo1, args.next_rip, args.rip)
    print_exit(exit_, "AMD SVM VMEXIT_IOIO: EXITINFO1 (APM Vol. 2 §15.10.2), EXITINFO2 = next RIP")
    return 0


def _decode_vmx(args: argparse.Namespace) -> int:
    exit_ = VmxIoExit(args.qualification, args.length, args.rip, args.info)
    print_exit(
        exit_,
        "Intel VMX I/O instruction exit: exit qualification (SDM Vol. 3C), "
        "VM-exit instruction length",
    )
    return 0


def add_decode(commands: argparse._SubParsersAction) -> None:
    decode = commands.add_parser(
        "decode", help="decode an I/O exit record field by field",
        description="Decode an SVM or VMX I/O exit record, field by field.",
    )
    vendors = decode.add_subparsers(dest="vendor", metavar="{svm,vmx}", required=True)

    svm = vendors.add_parser("svm", help="AMD SVM: EXITINFO1 and EXITINFO2 (next RIP)")
    svm.add_argument("exitinfo1", type=number, help="EXITINFO1, e.g. 0x1f480241")
    svm.add_argument("--rip", type=number, default=0, help="RIP of the I/O instruction (0)")
    svm.add_argument(
        "--next-rip", "--exitinfo2", dest="next_rip", type=number, required=True,
        help="EXITINFO2: RIP of the next instruction (length = EXITINFO2 − RIP)",
    )
    svm.set_defaults(handler=_decode_svm)

    vmx = vendors.add_parser("vmx", help="Intel VMX: exit qualification and instruction length")
    vmx.add_argument("qualification", type=number, help="exit qualification, e.g. 0x1f480008")
    vmx.add_argument("--length", type=number, required=True, help="VM-exit instruction length")
    vmx.add_argument("--rip", type=number, default=0, help="RIP of the I/O instruction (0)")
    vmx.add_argument(
        "--info", type=number, default=None,
        help="VM-exit instruction-information (INS/OUTS: address size, segment)",
    )
    vmx.set_defaults(handler=_decode_vmx)


# -- run -----------------------------------------------------------------------------------


def positive(text: str) -> int:
    """A count of at least 1."""
    value = number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _run(args: argparse.Namespace) -> int:
    from .guest import Guest  # unicorn loads only for the commands that run a guest

    guest = Guest(args.program, args.vendor, args.path, recording=False)
    result = guest.run(max_exits=args.max_exits)
    print(result)
    seconds = result.wall_ns / 1e9
    print(f"{result.exits_per_second:,.0f} exits/s ({result.exits} exits in {seconds:.3f} s, "
          "guest CPU included, recording off)")  # fmt: skip
    return 1 if result.halted and not result.success else 0


def add_run(commands: argparse._SubParsersAction) -> None:
    from .guest import programs
    from .hypervisor import PATHS, VENDORS

    run = commands.add_parser(
        "run", help="run a guest program on unicorn, exiting to the hypervisor at every I/O",
        description="Run a guest program until HLT (or --max-exits) and print a summary: "
        "exits by path, POST codes, UART text, exits/s. Status 0 = success, 1 = the program "
        "reported failure.",
    )  # fmt: skip
    run.add_argument("program", help=f"one of: {', '.join(programs())}")
    run.add_argument("--vendor", choices=VENDORS, default="svm", help="exit records (svm)")
    run.add_argument("--path", choices=PATHS, default="fast", help="handler path (fast)")
    run.add_argument("--max-exits", type=positive, default=None, help="stop after N exits")
    run.set_defaults(handler=_run)


# -- the command -----------------------------------------------------------------------------

COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [add_decode, add_run]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="hvmio_lab: how x86 hypervisors handle port-I/O VM exits.",
    )
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    for add in COMMANDS:
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except HvmioError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
