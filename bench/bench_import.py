"""How long ``import hvmio_lab`` takes in a fresh interpreter (printed, never asserted).

Each statement runs in N new interpreters (interleaved). Two medians: the statement timed
inside the interpreter (what the import costs a CLI call, a notebook's first cell or a hub's
kernel start, the headline figure), and the whole interpreter's wall time less that of an
empty one measured in the same run (the same cost seen from outside, plus noise).
``from hvmio_lab import *`` (every name resolved: unicorn, capstone, bitstring loaded) shows
what the lazy names save.
With ``--importtime`` it also prints the slowest modules of ``python -X importtime``.

    .venv/bin/python bench/bench_import.py [--runs 21] [--importtime]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

STATEMENTS = {
    "python (nothing)": "pass",
    "import hvmio_lab": "import hvmio_lab",
    "from hvmio_lab import EXITINFO1, SvmIoExit": "from hvmio_lab import EXITINFO1, SvmIoExit",
    "from hvmio_lab import Guest": "from hvmio_lab import Guest",
    "from hvmio_lab import *": "from hvmio_lab import *",
}


TIMED = "import time; _t = time.perf_counter_ns(); {}; print(time.perf_counter_ns() - _t)"


def run_ms(statement: str) -> tuple[float, float]:
    """(the statement's own time, the interpreter's wall time), in ms, one fresh interpreter."""
    start = time.perf_counter_ns()
    done = subprocess.run([sys.executable, "-c", TIMED.format(statement)], check=True,
                          capture_output=True, text=True)  # fmt: skip
    return int(done.stdout) / 1e6, (time.perf_counter_ns() - start) / 1e6


def slowest_modules(statement: str, count: int = 12) -> list[tuple[int, str]]:
    """(cumulative µs, module) of the slowest imports ``-X importtime`` reports."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", statement],
                          capture_output=True, text=True, check=True)  # fmt: skip
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        rows.append((int(cumulative), name))
    return sorted(rows, reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="fresh interpreters per statement")
    parser.add_argument("--importtime", action="store_true", help="print -X importtime's top")
    args = parser.parse_args()

    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"medians of {args.runs} fresh interpreters per statement (interleaved), "
          f"{sys.executable}")  # fmt: skip
    for statement in STATEMENTS.values():  # warm the file cache and the .pyc files first
        run_ms(statement)
    inside: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    wall: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    for _ in range(args.runs):
        for name, statement in STATEMENTS.items():
            own, whole = run_ms(statement)
            inside[name].append(own)
            wall[name].append(whole)
    base = statistics.median(wall["python (nothing)"])
    width = max(map(len, STATEMENTS))
    print(f"  {'':<{width}}  {'timed inside':>12}  {'wall − empty':>12}")
    for name in STATEMENTS:
        own, whole = statistics.median(inside[name]), statistics.median(wall[name])
        print(f"  {name:<{width}}  {own:9.1f} ms  {whole - base:9.1f} ms")
    print(f"  (an empty interpreter: {base:.1f} ms wall)")
    print("target: import hvmio_lab ≤ 50 ms (issue 14)")
    if args.importtime:
        for statement in ("import hvmio_lab", "from hvmio_lab import *"):
            print(f"\nslowest modules, python -X importtime -c {statement!r} (cumulative):")
            for micros, module in slowest_modules(statement):
                print(f"  {micros / 1000:8.1f} ms  {module}")


if __name__ == "__main__":
    main()
