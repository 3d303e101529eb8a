"""What one VM exit did: the outcome record, injected faults, device-model requests, the small
result each path hands back (``PathResult``), and the stage stopwatch."""

from __future__ import annotations

from dataclasses import dataclass
from time import perf_counter_ns
from typing import TYPE_CHECKING, NamedTuple

from .devices import ONES, device_name
from .errors import HvmioError
from .exits import IoAccess, SvmIoExit, VmxIoExit
from .kept import keep
from .machine import StateDiff

if TYPE_CHECKING:
    from .decoder import IoInstruction

STAGES = ("exit", "fetch", "decode", "device", "writeback")
_new = tuple.__new__  # a named tuple from all its fields, without the keyword handling


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


class IoRequest(NamedTuple):
    """What goes to the external device model, as Xen's ioreq or KVM's exit to userspace.

    An immutable named tuple: every device-model exit builds one."""

    access: IoAccess
    data: int | None  # OUT data for a non-string access
    device: str

    def __str__(self) -> str:
        data = "" if self.data is None else f" data={self.data:#x}"
        return f"request to {self.device}: {self.access}{data}"


class PathResult(NamedTuple):
    """What a path (fast, emulate, seed2010) did with one exit, before the Hypervisor counts
    it, injects its fault and builds the ``Outcome``. ``trouble`` is the error the guest
    must see as an exception: a PageFault becomes #PF, anything else #GP(0)."""

    path: str  # the path taken: "fast" or "emulate"
    access: IoAccess | None
    instruction: IoInstruction | None = None
    done: bool = False
    elements: int = 0
    trouble: HvmioError | None = None
    request: IoRequest | None = None  # seed2010 only: its device-model round trip
    reemulated: bool = False


def request_for(access: IoAccess, device: object, rax: int) -> IoRequest:
    """The request an access sends to the device model: OUT data for a non-string write.

    Without data (IN, INS, OUTS) it is the same immutable record every time, so it is kept,
    by the identities of the access and the device (which the entry keeps alive); an OUT's
    takes the device's name from there."""
    hit = _REQUESTS.get(id(access))
    if hit is None or hit[0] is not device or hit[1][0] is not access:
        hit = keep(_REQUESTS, id(access), (device, _new(IoRequest, (access, None,
                                                                    device_name(device)))))
    if access[2] or access[3]:  # is_in, string: only a non-string OUT carries data
        return hit[1]
    return _new(IoRequest, (access, rax & ONES[access[1]], hit[1][2]))


_REQUESTS: dict[int, tuple[object, IoRequest]] = {}  # id(access) → (device, its request)


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

    __slots__ = ("before", "exit", "last", "log_start", "stages", "timed")

    def __init__(self, exit, timed: bool, before, log_start: int, start: int | None = None):
        self.exit = exit
        self.timed = timed
        self.before = before  # the machine snapshot taken at the exit, when recording
        self.log_start = log_start  # where this exit's device events begin in the bus log
        self.stages: dict[str, int] = {}
        self.last = (start if start is not None else perf_counter_ns()) if timed else 0

    def lap(self, stage: str) -> None:
        """Charge the time since the last lap to ``stage``; free when not timed."""
        if self.timed:
            now = perf_counter_ns()
            self.stages[stage] = self.stages.get(stage, 0) + now - self.last
            self.last = now

    def resume(self) -> None:
        """Restart the clock: the time just spent (a snapshot, the device model's own work)
        belongs to no stage of ours."""
        if self.timed:
            self.last = perf_counter_ns()


# -- the story of one exit, in words (the stepper and chapter 01 print it) ---------------------

_DATA_REGISTER = {1: "AL", 2: "AX", 4: "EAX"}
_DEVICES = {"uart": "16550 UART", "post": "POST port", "ata": "ATA disk", "pm-timer": "PM timer"}


def _byte_text(value: int) -> str:
    if value == 0x0A:
        return " ('\\n')"
    return f" ({chr(value)!r})" if 0x20 <= value < 0x7F else ""


def _device_text(outcome: Outcome) -> str:
    """What the device side did, from the bus events of this exit."""
    events, access = outcome.events, outcome.access
    if not events:
        return "no device was touched" if outcome.completed else "the device has not answered yet"
    first = events[0]
    name = _DEVICES.get(first.device, first.device)
    if first.device == "unclaimed":
        who = "no device claims the port"
    elif first.location == "device-model":
        who = f"the {name}, an external device model (request, then completion),"
    else:
        who = f"the {name} (inside the hypervisor)"
    if len(events) > 1 or (access is not None and access.string):
        where = "into memory" if first.is_in else "from memory"
        return f"{who} moved {len(events)} × {first.size} byte(s) {where}"
    register = _DATA_REGISTER.get(first.size, f"{first.size}-byte data")
    if first.is_in:
        if first.device == "unclaimed":
            return f"{who}, so the read returns all ones: {first.value:#x} → {register}"
        return f"{who} answered {first.value:#x} → {register}"
    shown = _byte_text(first.value) if first.device == "uart" and first.size == 1 else ""
    value = f"{register} = {first.value:#x}{shown}"
    if first.device == "unclaimed":
        return f"{who}, so the write of {value} is dropped"
    return f"{value} went to {who.rstrip(',')}"


def narrate(outcome: Outcome, instruction: str | None = None) -> str:
    """Four lines telling one exit: what the CPU stopped on, what the hardware reported, what
    the hypervisor did, and why the guest resumes where it does. ``instruction`` is the
    disassembly of the instruction at RIP (the stepper has it from its listing)."""
    exit, access = outcome.exit, outcome.access
    rip = exit.rip
    what = instruction or (str(access) if access is not None else "an I/O instruction")
    stopped = (f"the CPU stopped before `{what}` at RIP {rip:#x}: an intercepted I/O "
               "instruction exits instead of executing")  # fmt: skip
    try:
        decoded = str(exit.access())
    except HvmioError as e:
        decoded = f"invalid: {e}"
    if exit.vendor == "svm":
        length = (exit.exitinfo2 - rip) & ((1 << 64) - 1)
        reported = (f"SVM EXITINFO1 {exit.exitinfo1:#x} = {decoded}; EXITINFO2 "
                    f"{exit.exitinfo2:#x} = the next RIP (length {length})")  # fmt: skip
        rule = f"RIP + {length} = EXITINFO2"
    else:
        length = exit.instruction_length
        reported = (f"VMX exit qualification {exit.qualification:#x} = {decoded}; "
                    f"VM-exit instruction length {length}")  # fmt: skip
        if exit.instruction_info is not None:
            reported += f"; instruction information {exit.instruction_info:#x}"
        rule = f"RIP + the instruction length {length}"
    if outcome.path == "fast":
        how = "fast path: port, size, direction from the exit record (no instruction bytes read)"
    else:
        how = "emulator: fetched the bytes at CS:RIP and decoded them itself"
        if access is not None and access.string:
            how += " (string I/O never takes the fast path)"
    handled = f"{how}; {_device_text(outcome)}"
    if outcome.reemulated:
        handled += "; at completion the 2010 patch ran the full emulator again"
    if outcome.fault is not None:
        handled += f"; it injected {outcome.fault.vector}({outcome.fault.error_code})"
    diff = outcome.diff.register("rip") if outcome.diff is not None else None
    fault = outcome.fault
    if fault is not None:
        if fault.rip == rip:
            resumed = (f"at {rip:#x}, the faulting instruction itself, to take "
                       f"{fault.vector}: RIP is not advanced when the access fails")  # fmt: skip
        else:
            resumed = (f"at {fault.rip:#x} to take {fault.vector}: RIP was advanced before "
                       f"the fault, a bug: the fault belongs to {rip:#x}")  # fmt: skip
    elif not outcome.completed:
        resumed = f"not yet: RIP stays at {rip:#x} until the device model completes the access"
    elif not outcome.done:
        count = ""
        if outcome.diff is not None and outcome.diff.register("rcx") is not None:
            count = f" (now {outcome.diff.register('rcx')[1]:#x})"
        resumed = (f"RIP stays at {rip:#x}: this exit moved a batch of {outcome.elements} "
                   f"element(s) and the REP count{count} is not used up, so the guest "
                   "re-executes the same instruction and exits again")  # fmt: skip
    else:
        target = diff[1] if diff is not None else exit.next_rip
        resumed = (f"at {target:#x} = {rule}: the hypervisor advanced RIP past the "
                   "instruction (it does not move by itself)")  # fmt: skip
    return "\n".join(f"{label:<9} {text}" for label, text in (
        ("stopped:", stopped), ("reported:", reported), ("handled:", handled),
        ("resumed:", resumed),
    ))  # fmt: skip
