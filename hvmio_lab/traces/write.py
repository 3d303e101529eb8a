"""Any guest run written out as a KVM trace, in the modern ``kvm_exit`` format.

The lines are what a 5.10+ kernel's tracefs would print for the same exits (trace_pipe
prefix, ``kvm_exit`` with info1/info2, ``kvm_userspace_exit`` for a device-model access,
``kvm_pio`` at completion), so ``read`` and every tool that reads real traces read them. They
come from the MODEL, and the file says so in its header: the times are the model's virtual
clock (one ``EXIT_QUANTUM_NS`` per exit), not anyone's hardware, and there are no
``kvm_entry`` lines because the model has no exit-to-entry time to report.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import HvmioError
from ..exits import SvmIoExit
from ..guest import EXIT_QUANTUM_NS, Guest
from ..outcome import Outcome
from .lines import MODEL_NOTE

TASK = "hvmio-model"
PID = 1


def _prefix(time_s: float) -> str:
    return f"{TASK:>16}-{PID:<7} [000] ..... {time_s:12.6f}: "


def exit_line(outcome: Outcome, time_s: float, vcpu: int = 0) -> str:
    """The ``kvm_exit`` line of one exit: info1/info2 as KVM fills them for that vendor."""
    record = outcome.exit
    if isinstance(record, SvmIoExit):  # svm_get_exit_info: EXITINFO1, EXITINFO2
        reason, info1, info2 = "io", record.exitinfo1, record.exitinfo2
    else:  # vmx_get_exit_info: exit qualification; info2 the IDT-vectoring info (none here)
        reason, info1, info2 = "IO_INSTRUCTION", record.qualification, 0
    return (f"{_prefix(time_s)}kvm_exit: vcpu {vcpu} reason {reason} rip {record.rip:#x} "
            f"info1 0x{info1:016x} info2 0x{info2:016x} intr_info 0x{0:08x} "
            f"error_code 0x{0:08x}")  # fmt: skip


def pio_line(outcome: Outcome, time_s: float) -> str | None:
    """The ``kvm_pio`` completion: the first element's value, "(...)" when there are more."""
    events, access = outcome.events, outcome.access
    if not events or access is None or not outcome.completed:
        return None
    first = events[0]
    more = " (...)" if len(events) > 1 else ""
    return (f"{_prefix(time_s)}kvm_pio: pio_{'read' if access.is_in else 'write'} at "
            f"{access.port:#x} size {access.size} count {len(events)} val {first.value:#x}"
            f"{more}")  # fmt: skip


def trace_lines(outcomes: Iterable[Outcome], about: str = "", start_s: float = 0.0,
                quantum_ns: int = EXIT_QUANTUM_NS) -> Iterator[str]:  # fmt: skip
    """Header (saying this is the model) then the lines of every exit, in order."""
    yield "# tracer: nop"
    yield MODEL_NOTE
    if about:
        yield f"# {about}"
    yield f"# times: the model's virtual clock, {quantum_ns} ns per exit; no kvm_entry lines"
    yield "#"
    for i, outcome in enumerate(outcomes):
        t = start_s + i * quantum_ns / 1e9
        yield exit_line(outcome, t)
        if outcome.request is not None:
            yield f"{_prefix(t)}kvm_userspace_exit: reason KVM_EXIT_IO (2)"
        pio = pio_line(outcome, t)
        if pio is not None:
            yield pio


def write(outcomes: Iterable[Outcome], target, about: str = "") -> int:
    """Write the trace to a path or an open text file; returns the number of exits."""
    exits = 0

    def counted() -> Iterator[Outcome]:
        nonlocal exits
        for o in outcomes:
            exits += 1
            yield o

    if isinstance(target, str | os.PathLike):
        with Path(target).open("w", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in trace_lines(counted(), about))
    else:
        target.writelines(line + "\n" for line in trace_lines(counted(), about))
    return exits


def boot_trace(vendor: str = "svm", path: str = "fast") -> str:
    """Boot SeaBIOS (found where the distribution installs it) to our boot sector and return
    every exit of the boot as trace text; ``SeabiosMissing`` where there is none."""
    from ..firmware import FirmwareGuest  # loads SeaBIOS only when asked

    guest = FirmwareGuest(vendor=vendor, path=path, recording=True)
    result = guest.boot()
    about = (f"SeaBIOS {result.version} booted to hvmio_lab's boot sector, vendor {vendor}, "
             f"path {path}: {result.exits} exits")  # fmt: skip
    return "\n".join(trace_lines(guest.outcomes, about)) + "\n"


def guest_trace(program: str, vendor: str = "svm", path: str = "fast") -> str:
    """Run a shipped guest program to HLT and return its exits as trace text."""
    guest = Guest(program, vendor=vendor, path=path, recording=True)
    result = guest.run()
    if not result.halted:
        raise HvmioError(f"{program} did not reach HLT; no trace written")
    about = f"guest program {program!r}, vendor {vendor}, path {path}: {result.exits} exits"
    return "\n".join(trace_lines(guest.outcomes, about)) + "\n"
