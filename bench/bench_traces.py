"""Trace lines parsed per second, and peak memory while streaming a large trace file (issue 15:
≥ 200 k lines/s; memory flat).

The trace is synthetic but in the real spellings: a tracefs prefix, modern ``kvm_exit`` lines
(SVM and VMX I/O exits to random ports, one in five a string access), their ``kvm_pio`` and
``kvm_entry``, other exits (HLT, MSR) and other events. Rows:
- ``str.split`` loop: a plain ``line.split()`` over the same lines, the reference for what
  touching each line at all costs in Python;
- ``traces.read``: the full read (prefix, spelling, decode through ``exits``, pairing), with
  the records consumed by ``summarize`` as a learner's table would be.
Each figure is the median of several runs, in lines per second of this process's CPU
time. Then a file of ``--megabytes`` is written to a
temporary directory and read under tracemalloc: the peak shows whether memory stays flat.
Run: ``.venv/bin/python bench/bench_traces.py [-n LINES] [--runs R] [--megabytes MB]``.
This prints figures; it is not a timed test.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from hvmio_lab import EXIT_QUALIFICATION, EXITINFO1, traces
from hvmio_lab.timing import machine_info, machine_label

TARGET = 200_000
PREFIX = "{:>16}-{:<7} [{:03d}] d..2. {:12.6f}: "


def _site(rng: random.Random) -> tuple[str, int, int, int, bool, int, bool]:
    """One I/O instruction of a guest: (reason, rip, info1, info2, is_in, size, string)."""
    string = rng.random() < 0.2
    size = rng.choice((1, 2, 4))
    is_in = rng.random() < 0.5
    port = rng.randrange(0x10000)
    rip = 0xFFFFFFFF81000000 + rng.randrange(0x100000)
    if rng.random() < 0.5:
        info1 = EXITINFO1.encode(TYPE=is_in, STR=string, REP=string, SZ=size, A=2, SEG=3,
                                 PORT=port)  # fmt: skip
        return "io", rip, info1, rip + 2, is_in, size, string
    info1 = EXIT_QUALIFICATION.encode(size=size - 1, direction=is_in, string=string,
                                      REP=string, port=port)  # fmt: skip
    return "IO_INSTRUCTION", rip, info1, 0, is_in, size, string


def synthetic_lines(n: int, seed: int = 1, sites: int | None = 64) -> list[str]:
    """``n`` lines; the I/O exits come from ``sites`` distinct instructions, picked with
    Zipf-like weights as in a real trace where a few polling loops make most exits (None:
    every exit a distinct record, the worst case for the decode caches)."""
    rng = random.Random(seed)
    table = [_site(rng) for _ in range(sites)] if sites else []
    weights = [1 / (k + 1) for k in range(len(table))]
    out: list[str] = []
    t = 1000.0
    while len(out) < n:
        t += rng.random() * 1e-5
        vcpu = rng.randrange(4)
        head = PREFIX.format(f"CPU {vcpu}/KVM", 4000 + vcpu, vcpu, t)
        kind = rng.random()
        if kind < 0.1:
            out.append(head + f"kvm_exit: vcpu {vcpu} reason HLT rip 0xffffffff81000abc "
                       "info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 "
                       "error_code 0x00000000")  # fmt: skip
            continue
        if kind < 0.15:
            out.append(head + "kvm_inj_virq: irq 236")
            continue
        site = rng.choices(table, weights)[0] if table else _site(rng)
        reason, rip, info1, info2, is_in, size, string = site
        port = info1 >> 16
        out.append(head + f"kvm_exit: vcpu {vcpu} reason {reason} rip {rip:#x} info1 "
                   f"0x{info1:016x} info2 0x{info2:016x} intr_info 0x00000000 "
                   "error_code 0x00000000")  # fmt: skip
        count = rng.randrange(2, 64) if string else 1
        more = " (...)" if count > 1 else ""
        out.append(head + f"kvm_pio: pio_{'read' if is_in else 'write'} at {port:#x} size "
                   f"{size} count {count} val 0x{rng.randrange(256):x}{more}")  # fmt: skip
        out.append(head + f"kvm_entry: vcpu {vcpu}, rip {info2 or rip + 2:#x}")
    return out[:n]


def split_loop(lines: list[str]) -> int:
    n = 0
    for line in lines:
        n += len(line.split())
    return n


def parse(lines: list[str]) -> int:
    return traces.summarize(traces.read(lines)).exits


def median_rate(fn, lines: list[str], runs: int) -> float:
    """Lines per second of this process's CPU time (the machine is shared: wall time would
    count the other processes' turns too), median of ``runs``."""
    times = []
    for _ in range(runs):
        start = time.process_time()
        fn(lines)
        times.append(time.process_time() - start)
    return len(lines) / statistics.median(times)


def peak_memory(megabytes: int, seed: int) -> tuple[int, int, float]:
    """(file bytes, tracemalloc peak bytes, seconds) reading a ``megabytes`` file."""
    block = "\n".join(synthetic_lines(20_000, seed)) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.trace"
        with path.open("w") as f:
            while f.tell() < megabytes * 1_000_000:
                f.write(block)
        size = path.stat().st_size
        tracemalloc.start()
        start = time.perf_counter()
        exits = traces.summarize(traces.read(path)).exits
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert exits > 0
    return size, peak, seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=200_000, help="lines per run")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--megabytes", type=int, default=50, help="size of the streamed file")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    print(f"machine: {machine_label(machine_info())}; load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} (1, 5, 15 min)")  # fmt: skip
    lines = synthetic_lines(args.n, args.seed)
    distinct = synthetic_lines(args.n, args.seed, sites=None)
    reference = median_rate(split_loop, lines, args.runs)
    ours = median_rate(parse, lines, args.runs)
    worst = median_rate(parse, distinct, args.runs)
    print(f"{len(lines):,} lines, median of {args.runs} runs, per second of CPU time")
    print(f"  str.split loop (reference)        {reference:>12,.0f} lines/s")
    print(f"  traces.read + summarize, 64 sites {ours:>12,.0f} lines/s   "
          f"({reference / ours:.1f}× the split loop's time; target ≥ {TARGET:,})")  # fmt: skip
    print(f"  ... every exit a distinct record  {worst:>12,.0f} lines/s   (decode caches miss)")
    size, peak, seconds = peak_memory(args.megabytes, args.seed)
    print(f"streamed {size / 1e6:.1f} MB in {seconds:.1f} s under tracemalloc: "
          f"peak {peak / 1e6:.2f} MB traced")  # fmt: skip
    verdict = "meets" if ours >= TARGET else "is below"
    print(f"the 64-site figure {verdict} the {TARGET:,} lines/s target on this run; load "
          f"average at the end {os.getloadavg()[0]:.1f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
