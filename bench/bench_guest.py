"""Guest exits per second on the unicorn vCPU, beside what unicorn itself costs.

Rows, all from one interleaved run (median of ``--rounds`` runs each, recording off unless
said):
- bare IN hook: unicorn alone running ``in eax, dx`` in a loop with a Python IN hook that
  only returns a value (no stop): what any hook-based design pays per I/O instruction;
- stop/resume: the same loop where the hook calls ``emu_stop`` and Python resumes at EIP
  (``count=`` on, as the guest loop runs): the floor of one exit out of unicorn and back;
- count=: what unicorn's instruction counter adds per guest instruction (a 2-million
  instruction loop with and without it), the price of stopping right after an IN, which
  ``Guest.step`` pays and ``Guest.run`` does not (it runs free);
- reg_read, binding / C API: one register read through the Python binding's ``reg_read``
  and through unicorn's C function as ``guest.uc_api`` calls it (outside any hook);
- port_hammer, pmtimer_poll, ata_read on the fast path (SVM): ``Guest.run`` exits/s of a
  fresh guest, the second run in a fresh interpreter (as the reference below), construction
  not timed (unicorn still translates the guest's code afresh: ata_read's 26 exits are
  mostly that);
- each program on bare unicorn: the same code with Python hooks that call our devices on
  the bus directly (no exit, no record, no hypervisor), run to HLT, as the program's exit
  count over that time: the exits/s of a loop whose exits cost nothing, beside which each
  program's exits/s is printed as a ratio. For ata_read that "limit" is the slower: unicorn
  calls its hook for each of the 1,280 words of the five ``rep insw``, where the emulator
  moves a sector in one exit;
- a recorded exit (state diff + bus events, the stepper's mode) at 2 MiB and at 128 MiB of
  guest RAM: µs per exit of port_hammer with recording on;
- an unrecorded exit of ``run`` (exits handled in unicorn's hook when the handler does what
  the instruction does) and of ``step`` (a stop and resume for every exit), with the split
  of a stepped exit into unicorn (the hook, which builds the exit record, included), the
  handler and the loop.

With ``--reference DIR`` (a copy of an older ``hvmio_lab`` and ``data``, e.g. made with
``git archive 2cdde85 hvmio_lab data | tar -x -C DIR``) the three programs and the recorded
exit are also measured with that code, in a fresh interpreter, interleaved with the rows
above: the ratio beside the old guest loop, under the same load. ``--issue-code DIR`` does
the same with DIR holding 2cdde85, the code issue 11 measured its "today" figures on: each
ratio times that figure is what this code would make under the issue's load, and that is
checked against the floor as well. The absolute floors assume the issue's load, which this
shared machine has only in its fast state (its fast and slow states differ by about 1.8×).

Run: ``.venv/bin/python bench/bench_guest.py [--rounds N] [--reference DIR | --issue-code
DIR]``. This prints figures; it is not a timed test. Absolute times on a shared machine vary
by 2× with load: compare rows of one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from functools import cache
from pathlib import Path

from unicorn import UC_ARCH_X86, UC_HOOK_INSN, UC_MODE_32, UC_MODE_64, Uc
from unicorn import x86_const as ux

from hvmio_lab.guest import Guest
from hvmio_lab.timing import machine_info, machine_label

SPIN = bytes.fromhex("b9 40 42 0f 00 49 75 fd f4")  # mov ecx, 1_000_000; dec ecx; jnz; hlt
LOOP = bytes.fromhex("b9 10 27 00 00 66 ba 48 1f ed 49 75 fc f4")  # ecx=10000; in eax,dx; loop
LOOP_COUNT = 10_000
PROGRAMS = ("port_hammer", "pmtimer_poll", "ata_read")
HERE = Path(__file__).resolve().parent.parent  # this checkout
FLOORS = {"port_hammer": 80_000, "pmtimer_poll": 50_000, "ata_read": 30_000}  # issue figures
ISSUE_TODAY = {"port_hammer": 36_000, "pmtimer_poll": 11_000, "ata_read": 10_000}  # at 2cdde85


def bare_unicorn(stop: bool) -> float:
    """µs per IN of unicorn alone, with a hook that only answers (or also stops)."""
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    uc.mem_map(0, 1 << 20)
    uc.mem_write(0x1000, LOOP)

    def on_in(uc, port, size, _):
        if stop:
            uc.emu_stop()
        return 0xFFFF_FFFF

    uc.hook_add(UC_HOOK_INSN, on_in, None, 1, 0, ux.UC_X86_INS_IN)
    uc.ctl_exits_enabled(True)
    uc.ctl_set_exits([])
    pc, ins = 0x1000, 0
    start = time.perf_counter()
    while True:
        uc.emu_start(pc, 0, count=1 << 30)
        pc = uc.reg_read(ux.UC_X86_REG_EIP)
        ins += 1
        if not stop or LOOP[pc - 0x1000 - 1] == 0xF4:
            break
    elapsed = time.perf_counter() - start
    return elapsed / LOOP_COUNT * 1e6


def count_cost() -> float:
    """ns per instruction that ``count=`` adds (unicorn's instruction counter, in C)."""
    times = []
    for count in (0, 1 << 40):
        uc = Uc(UC_ARCH_X86, UC_MODE_32)
        uc.mem_map(0, 1 << 20)
        uc.mem_write(0x1000, SPIN)
        start = time.perf_counter()
        uc.emu_start(0x1000, 0, count=count)
        times.append(time.perf_counter() - start)
    return (times[1] - times[0]) / 2_000_000 * 1e9  # two instructions a round


def bare_program(name: str) -> tuple[float, bool]:
    """(seconds, success) of a run to HLT on unicorn alone, its hooks calling our devices on
    the bus directly: the same devices and virtual clock, no exit, no record, no hypervisor."""
    from hvmio_lab.devices import attach_pc
    from hvmio_lab.guest import load_program
    from hvmio_lab.guest.loop import EXIT_QUANTUM_NS
    from hvmio_lab.machine import Machine

    program = load_program(name)
    machine = Machine(program.mode)
    attach_pc(machine)
    bus, clock = machine.bus, machine.clock
    bus.recording = False
    uc = Uc(UC_ARCH_X86, UC_MODE_64 if program.mode == 64 else UC_MODE_32)
    uc.mem_map(0, 2 << 20)
    uc.mem_write(program.load, program.code)
    uc.reg_write(ux.UC_X86_REG_RSP if program.mode == 64 else ux.UC_X86_REG_ESP, program.stack)

    def on_in(uc, port, size, _):
        clock.ns += EXIT_QUANTUM_NS
        return bus.read(port, size)

    def on_out(uc, port, size, value, _):
        clock.ns += EXIT_QUANTUM_NS
        bus.write(port, size, value)

    uc.hook_add(UC_HOOK_INSN, on_in, None, 1, 0, ux.UC_X86_INS_IN)
    uc.hook_add(UC_HOOK_INSN, on_out, None, 1, 0, ux.UC_X86_INS_OUT)
    start = time.perf_counter()
    uc.emu_start(program.load, 0)  # every program ends in HLT; no count=, as Guest.run
    seconds = time.perf_counter() - start
    post = machine.bus.devices["post"].codes
    return seconds, bool(post) and post[-1] == program.success_post


def _bare_rate(name: str) -> float:
    """The program's VM exits (those of a guest run) over bare unicorn's time for the run:
    the exits/s of a loop whose exits cost nothing."""
    seconds, success = bare_program(name)
    if not success:
        raise AssertionError(f"{name} did not succeed on bare unicorn")
    return _exits(name) / seconds


@cache
def _exits(name: str) -> int:
    return Guest(name, "svm", "fast", recording=False).run().exits


def reg_reads() -> tuple[float, float]:
    """µs per register read: the binding's ``reg_read``, and the C API as ``uc_api`` calls it."""
    from hvmio_lab.guest.uc_api import registers

    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    read = registers(uc)[0]
    out = []
    for function in (uc.reg_read, read):
        start = time.perf_counter()
        for _ in range(20_000):
            function(ux.UC_X86_REG_EAX)
        out.append((time.perf_counter() - start) / 20_000 * 1e6)
    return out[0], out[1]


def guest_rate(name: str, recording: bool = False, memory_size: int = 2 << 20) -> float:
    """Exits per second of one run to HLT on the fast path."""
    guest = Guest(name, "svm", "fast", recording=recording, memory_size=memory_size)
    result = guest.run()
    assert result.success, result
    return result.exits_per_second


REFERENCE = """
import sys
from hvmio_lab.guest import Guest
name, recording = sys.argv[1], sys.argv[2] == "1"
for _ in range(2):  # the first run warms the interpreter up (imports, caches); time the second
    result = Guest(name, "svm", "fast", recording=recording).run()
    assert result.success, result
print(result.exits_per_second)
"""


def reference_rate(directory: Path, name: str, recording: bool = False) -> float:
    """Exits per second of a run to HLT (the second in a fresh interpreter), with the
    ``hvmio_lab`` found in ``directory``."""
    env = {**os.environ, "PYTHONPATH": str(directory)}
    command = [sys.executable, "-c", REFERENCE, name, str(int(recording))]
    out = subprocess.run(
        command, cwd=directory, env=env, capture_output=True, text=True, check=True
    )
    return float(out.stdout.split()[-1])


def stepped_exit(name: str = "port_hammer") -> float:
    """µs per exit when every exit stops the CPU (``Guest.step``, as the stepper runs)."""
    guest = Guest(name, "svm", "fast", recording=False)
    start = time.perf_counter()
    while guest.step() is not None:
        pass
    return (time.perf_counter() - start) / guest.exits * 1e6


def split(name: str = "port_hammer") -> dict[str, float]:
    """µs per stepped exit spent in unicorn (emu_start, with the hook that reads the registers
    and finds the exit record), in the hypervisor's handler, and in the loop around them."""
    guest = Guest(name, "svm", "fast", recording=False)
    spent = {"unicorn": 0, "handler": 0}

    def timed(key, func):
        def wrapper(*args, **kwargs):
            start = time.perf_counter_ns()
            try:
                return func(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter_ns() - start

        return wrapper

    guest.uc.emu_start = timed("unicorn", guest.uc.emu_start)
    guest.hypervisor.handle = timed("handler", guest.hypervisor.handle)
    start = time.perf_counter_ns()
    while guest.step() is not None:  # one stop per exit, so the parts do not nest
        pass
    total = time.perf_counter_ns() - start
    out = {k: v / guest.exits / 1e3 for k, v in spent.items()}
    out["loop"] = total / guest.exits / 1e3 - sum(out.values())
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="runs per row (5)")
    parser.add_argument("--reference", type=Path, help="an older hvmio_lab to compare with")
    parser.add_argument("--issue-code", type=Path,
                        help="2cdde85's hvmio_lab: a --reference whose ratios are also scaled "
                             "to the load of issue 11's figures")  # fmt: skip
    args = parser.parse_args(argv)
    print(f"machine: {machine_label(machine_info())}; load average before: "
          f"{os.getloadavg()[0]:.2f}")  # fmt: skip
    rows: dict[str, list[float]] = {}
    cases = {
        "bare IN hook (µs per IN)": lambda: bare_unicorn(False),
        "stop/resume (µs per exit)": lambda: bare_unicorn(True),
        "count= (ns per instruction)": count_cost,
        "reg_read, binding (µs)": lambda: reg_reads()[0],
        "reg_read, C API (µs)": lambda: reg_reads()[1],
        **{f"{name} fast (exits/s)": (lambda n=name: reference_rate(HERE, n)) for name in PROGRAMS},
        **{f"{name} on bare unicorn (exits/s)": (lambda n=name: _bare_rate(n))
           for name in PROGRAMS},
        "recorded exit, 2 MiB (µs)": lambda: 1e6 / guest_rate("port_hammer", True),
        "recorded exit, 128 MiB (µs)": lambda: 1e6 / guest_rate("port_hammer", True, 128 << 20),
        "unrecorded exit, port_hammer (µs)": lambda: 1e6 / guest_rate("port_hammer"),
        "stepped exit, port_hammer (µs)": stepped_exit,
    }
    if args.issue_code is not None:
        args.reference = args.issue_code
    if args.reference is not None:
        ref = args.reference.resolve()
        for name in PROGRAMS:
            cases[f"{name} fast, reference (exits/s)"] = lambda n=name: reference_rate(ref, n)
        cases["recorded exit, 2 MiB, reference (µs)"] = lambda: (
            1e6 / reference_rate(ref, "port_hammer", True)
        )
    for name, _ in cases.items():
        rows[name] = []
    guest_rate("port_hammer")  # warm up imports and caches
    order = list(cases)
    for round_ in range(args.rounds):
        for name in order if round_ % 2 == 0 else order[::-1]:
            rows[name].append(cases[name]())
    print(f"\nmedian of {args.rounds} interleaved runs")
    for name, values in rows.items():
        median = statistics.median(values)
        program = name.split()[0]
        floor = ""
        if program in FLOORS and "fast (" in name:
            floor = f"   (floor {FLOORS[program]:,}, goal 150,000)"
        print(f"  {name:<36}{median:>12,.1f}{floor}")
    print()
    for name in PROGRAMS:
        ours = statistics.median(rows[f"{name} fast (exits/s)"])
        bare = statistics.median(rows[f"{name} on bare unicorn (exits/s)"])
        print(f"{name}: {ours:,.0f} exits/s = {ours / bare:.2f}× bare unicorn's {bare:,.0f} "
              f"(floor {FLOORS[name]:,}: {'met' if ours >= FLOORS[name] else 'NOT met'})")
    hook = statistics.median(rows["bare IN hook (µs per IN)"])
    resume = statistics.median(rows["stop/resume (µs per exit)"])
    exit_us = statistics.median(rows["stepped exit, port_hammer (µs)"])
    print(f"port_hammer stepped exit = {exit_us / resume:.1f}× a bare stop/resume "
          f"(the rest: the handler, the register reads and writes, the exit record); a bare "
          f"hook is {hook:.2f} µs")  # fmt: skip
    rec2 = statistics.median(rows["recorded exit, 2 MiB (µs)"])
    rec128 = statistics.median(rows["recorded exit, 128 MiB (µs)"])
    print(
        f"recorded exit: {rec2:.0f} µs at 2 MiB, {rec128:.0f} µs at 128 MiB "
        f"(ratio {rec128 / rec2:.2f}; target ≤ 100 µs whatever the RAM size)"
    )
    if args.reference is not None:
        for name in PROGRAMS:
            new = statistics.median(rows[f"{name} fast (exits/s)"])
            old = statistics.median(rows[f"{name} fast, reference (exits/s)"])
            line = f"{name}: {new / old:.2f}× the reference loop's exits/s"
            if args.issue_code is not None:
                scaled = new / old * ISSUE_TODAY[name]
                line += (f"; at the load of the issue's {ISSUE_TODAY[name]:,} that is "
                         f"{scaled:,.0f} (floor {FLOORS[name]:,}: "
                         f"{'met' if scaled >= FLOORS[name] else 'NOT met'})")  # fmt: skip
            print(line)
        old_rec = statistics.median(rows["recorded exit, 2 MiB, reference (µs)"])
        print(f"recorded exit: {old_rec / rec2:.2f}× cheaper than the reference loop's")
    parts = split()
    print(
        "one stepped port_hammer exit, µs (an instrumented run): "
        + ", ".join(f"{k} {v:.1f}" for k, v in parts.items())
    )
    print("today (issue figures, for comparison): "
          + ", ".join(f"{name} {ISSUE_TODAY[name] // 1000} k" for name in PROGRAMS)
          + " exits/s; a recorded exit 265 µs at 2 MiB")  # fmt: skip
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
