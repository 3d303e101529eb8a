"""The emulator path's speed (targets: a non-string IN/OUT ≤ 5 µs, `rep insw` ≥ 5 MB/s).

Rows, all with the bus log off (``bus.recording = False``), as a throughput run would be:
- one exit through ``emulate`` = fetch at CS:RIP + decode + execute, for three non-string
  instructions, plus the three stages timed apart; next to it, the fast path for the same
  exit (``fastpath.access`` + ``fastpath.run``; a record keeps its decoded access, so this
  is the replay cost);
- `rep insw` of one 512-byte sector from the ATA disk (READ SECTORS programmed on the bus,
  the status polled until DRQ, then the emulator re-entered until RIP moves: one exit per
  page-bounded batch), in MB/s of guest data; and of 8 sectors into a buffer that crosses
  a page boundary.
Each figure is the median of several runs. Run:
``.venv/bin/python bench/bench_emulator.py [-n N] [--runs R]``.
This prints figures; it is not a timed test.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from hvmio_lab import Machine
from hvmio_lab.decoder import decode_instruction
from hvmio_lab.emulator import emulate, execute, fetch
from hvmio_lab.timing import machine_info, machine_label

CODE_AT = 0x1000
BUFFER = 0x8000
TARGET_US, TARGET_MBS = 5.0, 5.0
CASES = (  # label, bytes, mode, RDX
    ("in eax, dx    PM timer 0x1F48", b"\xed", 64, 0x1F48),
    ("out 0x80, al  POST port", b"\xe6\x80", 32, 0),
    ("in al, dx     UART LSR 0x3FD", b"\xec", 16, 0x3FD),
)


def machine_for(code: bytes, mode: int, rdx: int) -> Machine:
    machine = Machine.pc(mode)
    machine.bus.recording = False
    machine.memory.write(CODE_AT, code)
    machine.cpu.rip, machine.cpu.rdx = CODE_AT, rdx
    return machine


BEST: dict[str, float] = {}  # label → best run, printed after the medians


def per_call(fn: Callable[[], object], n: int, runs: int, label: str = "") -> float:
    """Median seconds per call of ``fn`` over ``runs`` runs of ``n`` calls."""
    fn()
    times = []
    for _ in range(runs):
        loop = range(n)
        start = time.perf_counter()
        for _ in loop:
            fn()
        times.append((time.perf_counter() - start) / n)
    if label:
        BEST[label] = min(times)
    return statistics.median(times)


def non_string_rows(n: int, runs: int) -> None:
    heads = f"{'emulate':>9}{'fetch':>8}{'decode':>8}{'execute':>9}{'fast':>8}"
    print(f"{'one exit, recording off':<34}{heads}")
    for label, code, mode, rdx in CASES:
        machine = machine_for(code, mode, rdx)
        cpu = machine.cpu

        def whole(machine=machine, cpu=cpu) -> None:
            cpu.rip = CODE_AT
            emulate(machine)

        fetched = fetch(machine)
        insn = decode_instruction(fetched, mode)

        def run_execute(machine=machine, cpu=cpu, insn=insn) -> None:
            cpu.rip = CODE_AT
            execute(machine, insn)

        figures = [
            per_call(whole, n, runs, label),
            per_call(lambda machine=machine: fetch(machine), n, runs),
            per_call(lambda code=fetched, mode=mode: decode_instruction(code, mode), n, runs),
            per_call(run_execute, n, runs),
            fast_path(machine, n, runs),
        ]
        cells = "".join(
            f"{f * 1e6:>{w}.2f}" if f is not None else f"{'—':>{w}}"
            for f, w in zip(figures, (9, 8, 8, 9, 8), strict=True)
        )
        print(f"{label:<34}{cells}  µs")
    best = ", ".join(f"{label.split()[0]} {t * 1e6:.2f}" for label, t in BEST.items())
    print(f"(target: emulate ≤ {TARGET_US:.0f} µs per non-string exit; best runs: {best} µs)\n")


def fast_path(machine: Machine, n: int, runs: int) -> float | None:
    """The same exit handled from its SVM record alone, or None if the fast path is absent."""
    try:
        from hvmio_lab import fastpath
        from hvmio_lab.hardware import intercept
    except ImportError:
        return None
    cpu = machine.cpu
    cpu.rip = CODE_AT
    exit_ = intercept(machine, "svm")

    def handle() -> None:
        cpu.rip = CODE_AT
        fastpath.run(machine, exit_, fastpath.access(exit_))

    return per_call(handle, n, runs)


def read_sectors(machine: Machine, sectors: int, buffer: int) -> tuple[float, int]:
    """Program READ SECTORS, poll to DRQ, then time `rep insw` to the end; (seconds, exits)."""
    bus, cpu = machine.bus, machine.cpu
    for port, value in ((0x1F6, 0xE0), (0x1F2, sectors), (0x1F3, 0), (0x1F4, 0), (0x1F5, 0)):
        bus.write(port, 1, value)
    bus.write(0x1F7, 1, 0x20)
    exits = 0
    elapsed = 0.0
    for _ in range(sectors):  # the guest polls between sectors; only the rep insw is timed
        while bus.read(0x1F7, 1) & 0x80:
            pass
        cpu.rip, cpu.rcx, cpu.rdx = CODE_AT, 256, 0x1F0
        start = time.perf_counter()
        while True:
            exits += 1
            if emulate(machine).done:
                break
        elapsed += time.perf_counter() - start
    return elapsed, exits


def string_rows(runs: int) -> None:
    print(f"{'rep insw, recording off':<44}{'MB/s':>8}{'µs':>10}{'exits':>7}")
    for sectors, buffer in ((1, BUFFER), (8, BUFFER + 0x800)):
        machine = machine_for(b"\xf3\x66\x6d", 64, 0x1F0)  # rep insw (64-bit: 66 → 16-bit)
        results = []
        for _ in range(max(runs, 3) * 10):
            machine.cpu.rdi = buffer
            results.append(read_sectors(machine, sectors, buffer))
        seconds = statistics.median(s for s, _ in results)
        fastest = min(s for s, _ in results)
        exits = results[0][1]
        nbytes = 512 * sectors
        label = f"{sectors} sector{'s' if sectors > 1 else ''} ({nbytes} B) to {buffer:#x}"
        print(
            f"{label:<44}{nbytes / seconds / 1e6:>8.2f}{seconds * 1e6:>10.1f}{exits:>7}"
            f"   (best run {nbytes / fastest / 1e6:.2f} MB/s)"
        )
    print(f"(target: ≥ {TARGET_MBS:.0f} MB/s of guest data)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20_000, help="exits per run (non-string rows)")
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median taken)")
    args = parser.parse_args(argv)
    print("machine:", machine_label(machine_info()))
    print(f"median of {args.runs} runs; bus log off\n")
    non_string_rows(args.n, args.runs)
    string_rows(args.runs)


if __name__ == "__main__":
    main()
