"""``hvmio-lab run PROGRAM``: a guest program on unicorn, with a summary."""

from __future__ import annotations

import argparse

from .common import positive


def _run(args: argparse.Namespace) -> int:
    from ..guest import Guest  # unicorn loads only for the commands that run a guest

    guest = Guest(args.program, args.vendor, args.path, recording=False)
    result = guest.run(max_exits=args.max_exits)
    print(result)
    seconds = result.wall_ns / 1e9
    print(f"{result.exits_per_second:,.0f} exits/s ({result.exits} exits in {seconds:.3f} s, "
          "guest CPU included, recording off)")  # fmt: skip
    return 1 if result.halted and not result.success else 0


def add(commands: argparse._SubParsersAction) -> None:
    from ..guest import programs
    from ..hypervisor import PATHS, VENDORS

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
