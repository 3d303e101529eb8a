"""``hvmio-lab trace FILE``: a KVM trace's I/O exits per port, and the fast path's share."""

from __future__ import annotations

import argparse
import sys


def _trace(args: argparse.Namespace) -> int:
    from ..traces import pio_table, read, read_report, summarize

    source = sys.stdin.buffer if args.file == "-" else args.file
    trace = read(source, vendor=args.vendor)
    stats = summarize(trace)
    print(stats.table(limit=args.top))
    print()
    print(f"read: {trace.report}")
    if trace.report.perf_report and not stats.exits and args.file != "-":
        _print_perf_report(read_report(args.file))
    if trace.report.pio_without_exit:
        print()
        print("kvm_pio with no kvm_exit before it (completed by the kernel's emulator; on PVM,")
        print("which emulates every IN/OUT, these are all there is):")
        print(pio_table(trace.report, limit=args.top))
    if stats.exits:
        prediction, assumptions = stats.prediction(args.profile)
        print()
        print(f"cost model ({args.profile}, a model): the fast path would make this mix "
              f"{prediction.gain:.1%} faster; its intercept takes "
              f"{prediction.intercept_ratio:.0%} of the emulator's")  # fmt: skip
        for line in assumptions:
            print(f"  assumed: {line}")
    return 0


def _print_perf_report(report) -> None:
    print()
    print(f"perf kvm stat report --event=ioport ({report.scope}):")
    print(f"{'port':>7} {'dir':<4} {'samples':>9} {'samples%':>9} {'time%':>7} {'avg µs':>9}")
    for row in report.rows:
        print(f"{row.port:#07x} {'IN' if row.is_in else 'OUT':<4} {row.samples:>9,} "
              f"{row.samples_pct:>8.2f}% {row.time_pct:>6.2f}% {row.avg_us:>9.2f}")  # fmt: skip
    print("(a summary, not one line per exit: no fast-path share can be read from it)")


def add(commands: argparse._SubParsersAction) -> None:
    from ..timing import DEFAULT_PROFILE, profiles

    trace = commands.add_parser(
        "trace", help="read a KVM trace (trace_pipe, trace-cmd report, perf script)",
        description="Read the I/O exits of a KVM trace (kvm_exit/kvm_pio lines from "
        "/sys/kernel/tracing, trace-cmd report or perf script) and print them per port, "
        "direction and size, with the share the 2010 fast path could take and the cost "
        "model's prediction. FILE may be - for stdin.",
    )  # fmt: skip
    trace.add_argument("file", help="the trace file, or - to read stdin")
    trace.add_argument("--vendor", choices=("svm", "vmx"), default=None,
                       help="for traces whose exit reasons are bare numbers")  # fmt: skip
    trace.add_argument("--top", type=int, default=20, help="rows of the table (20)")
    trace.add_argument("--profile", choices=profiles(), default=DEFAULT_PROFILE,
                       help=f"cost-model profile ({DEFAULT_PROFILE})")  # fmt: skip
    trace.set_defaults(handler=_trace)
