"""Bus dispatches per second: how much one port access costs the model (target ≲ 1 µs).

Three kinds of dispatch, each with the access log recording on and off:
- a device inside the hypervisor: a 4-byte read of the ACPI PM timer (port 0x1F48);
- a device in the device model: a 1-byte read of the 16550 UART's LSR (port 0x3FD);
- an unclaimed port: a 4-byte read of 0x1234, which reads all ones. Like every access, it is
  logged only while recording is on.

Each figure is the median of 5 runs; the log is emptied before each run. Run:
``.venv/bin/python bench/bench_bus.py [-n N] [--no-gc]``.
This prints figures; it is not a timed test.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

from hvmio_lab import Bus, PmTimer, Uart16550
from hvmio_lab.machine import VirtualClock
from hvmio_lab.timing import machine_info, machine_label

RUNS = 5
CASES = (
    ("PM timer  IN 0x1F48/4 (hypervisor)", 0x1F48, 4),
    ("UART LSR  IN 0x3FD/1 (device-model)", 0x3FD, 1),
    ("unclaimed IN 0x1234/4", 0x1234, 4),
)


def build_bus() -> Bus:
    bus = Bus()
    timer = PmTimer(VirtualClock())
    bus.attach(timer.ports, timer)
    uart = Uart16550()
    bus.attach(uart.ports, uart)
    return bus


def one_run(bus: Bus, port: int, size: int, n: int) -> float:
    """Seconds for ``n`` dispatches of one read."""
    bus.log.clear()
    read = bus.read
    loop = range(n)
    start = time.perf_counter()
    for _ in loop:
        read(port, size)
    elapsed = time.perf_counter() - start
    bus.log.clear()
    return elapsed


def loop_overhead(n: int) -> float:
    def nothing(port: int, size: int) -> None:
        return None

    loop = range(n)
    start = time.perf_counter()
    for _ in loop:
        nothing(0, 0)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200_000, help="dispatches per run")
    parser.add_argument(
        "--no-gc",
        action="store_true",
        help="disable the cyclic garbage collector (isolates the cost of a growing log)",
    )
    args = parser.parse_args(argv)
    if args.no_gc:
        gc.disable()

    print("machine:", machine_label(machine_info()))
    gc_state = "off" if args.no_gc else "on"
    print(f"median of {RUNS} runs of {args.n:,} dispatches each, garbage collector {gc_state}\n")
    print(f"{'dispatch':<38}{'recording':>10}{'dispatches/s':>15}{'ns each':>10}")
    bus = build_bus()
    for label, port, size in CASES:
        for recording in (True, False):
            bus.recording = recording
            one_run(bus, port, size, min(args.n, 10_000))  # warm up
            seconds = statistics.median(one_run(bus, port, size, args.n) for _ in range(RUNS))
            per_s = args.n / seconds
            flag = "on" if recording else "off"
            print(f"{label:<38}{flag:>10}{per_s:>15,.0f}{seconds / args.n * 1e9:>10.0f}")
    overhead = statistics.median(loop_overhead(args.n) for _ in range(RUNS)) / args.n
    print(
        f"\n(a Python call of a function that does nothing, in the same loop: "
        f"{overhead * 1e9:.0f} ns; target: a dispatch ≲ 1000 ns)"
    )


if __name__ == "__main__":
    main()
