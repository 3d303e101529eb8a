"""What one VM exit did: the outcome record, injected faults, device-model requests, and the
stage stopwatch that fills in per-stage times."""

from __future__ import annotations

from dataclasses import dataclass
from time import perf_counter_ns
from typing import TYPE_CHECKING, NamedTuple

from .exits import IoAccess, SvmIoExit, VmxIoExit
from .machine import StateDiff

if TYPE_CHECKING:
    from .emulator import IoInstruction

STAGES = ("exit", "fetch", "decode", "device", "writeback")


@dataclass(frozen=True)
class Fault:
    """An exception the hypervisor injects into the guest instead of completing the access."""

    vector: str  # "#GP", "#PF" or "#UD"
    error_code: int
    rip: int  # where the guest will take it: the faulting instruction, unless a bug moved RIP
    reason: str
    address: int | None = None  # CR2 for #PF

    def __str__(self) -> str:
        where = f" at {self.address:#x}" if self.address is not None else ""
        return f"{self.vector}({self.error_code}){where}, RIP {self.rip:#x}: {self.reason}"


@dataclass(frozen=True)
class IoRequest:
    """What goes to the external device model, as Xen's ioreq or KVM's exit to userspace."""

    access: IoAccess
    data: int | None  # OUT data for a non-string access
    device: str

    def __str__(self) -> str:
        data = "" if self.data is None else f" data={self.data:#x}"
        return f"request to {self.device}: {self.access}{data}"


class Outcome(NamedTuple):
    """Everything one exit did. Stage times are ns (empty with recording off).

    The emulator interleaves device accesses with register and memory writeback (element by
    element for string I/O), so on the emulator path the ``device`` stage includes writeback.
    """

    path: str  # the path actually taken: "fast" or "emulate"
    exit: SvmIoExit | VmxIoExit
    access: IoAccess | None
    instruction: IoInstruction | None = None
    events: tuple = ()
    diff: StateDiff | None = None
    fault: Fault | None = None
    stages: dict[str, int] | None = None
    request: IoRequest | None = None  # set when the access went to the device model
    completed: bool = True  # False while a device-model request is outstanding
    done: bool = False  # the instruction retired (RIP moved past it)
    reemulated: bool = False  # seed2010: the completion re-ran the full emulator
    elements: int = 0

    @property
    def total_ns(self) -> int:
        return sum((self.stages or {}).values())


class ExitContext:
    """The bookkeeping of one exit while it is handled: record, stage times, and what to diff."""

    __slots__ = ("before", "exit", "last", "log_start", "recording", "stages")

    def __init__(self, exit, recording: bool, before, log_start: int, start: int | None = None):
        self.exit = exit
        self.recording = recording
        self.before = before  # the machine snapshot taken at the exit, when recording
        self.log_start = log_start  # where this exit's device events begin in the bus log
        self.stages: dict[str, int] = {}
        self.last = (start if start is not None else perf_counter_ns()) if recording else 0

    def lap(self, stage: str) -> None:
        """Charge the time since the last lap to ``stage``; free when not recording."""
        if self.recording:
            now = perf_counter_ns()
            self.stages[stage] = self.stages.get(stage, 0) + now - self.last
            self.last = now

    def resume(self) -> None:
        """Restart the clock after waiting for the device model (that wait is not ours)."""
        if self.recording:
            self.last = perf_counter_ns()
