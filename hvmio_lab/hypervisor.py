"""The dispatcher: one VM exit down a chosen path, timed by stage.

Paths: ``"fast"`` (the exit record; string I/O falls back to the emulator), ``"emulate"``
(fetch + decode at CS:RIP for every exit, as Xen did before 2010) and ``"seed2010"`` (the 2010
patch as posted, bugs included; see ``seed2010``).

An access to a device whose location is ``"device-model"`` goes out as a request and
completes later (Xen's X86EMUL_RETRY, then completion). Modern semantics: the register write
and the RIP advance happen at completion, from the request, with no re-emulation.
"""

from __future__ import annotations

from time import perf_counter_ns
from typing import NamedTuple

from . import emulator, fastpath
from .errors import DeviceError, HvmioError, InvalidInstruction, PageFault
from .exits import IoAccess, SvmIoExit, VmxIoExit
from .hardware import intercept
from .machine import Machine
from .outcome import ExitContext, Fault, IoRequest, Outcome, PathResult, request_for
from .seed2010 import Unhandleable, Xen2010

PATHS = ("fast", "emulate", "seed2010")
VENDORS = ("svm", "vmx")
# What ``Hypervisor.counters`` counts: exits completed per path taken, string exits the fast
# path declined, requests to the device model, seed2010's re-emulations, injected faults.
COUNTERS = ("fast", "emulate", "declined", "device-model", "reemulations", "faults")
# What the #GP a path's trouble becomes says (a seed2010 failure words its own reason).
_WHY = ((DeviceError, "device refused the access: "), (InvalidInstruction, "emulation failed: "),
        (Unhandleable, ""))  # fmt: skip
_new = tuple.__new__  # a named tuple from all its fields, without the keyword handling


class _Pending(NamedTuple):
    """An access gone to the device model: ``_perform``'s arguments, to finish it with."""

    ctx: ExitContext | None
    exit: SvmIoExit | VmxIoExit
    access: IoAccess
    instruction: emulator.IoInstruction | None
    request: IoRequest


class Hypervisor:
    """Runs VM exits for the I/O instruction at the machine's RIP, down one path.

    The one place that counts exits, injects faults and builds the ``Outcome``: each path
    (``fastpath.run``, ``emulator.run``, ``Xen2010.handle``) only hands back a ``PathResult``.
    """

    def __init__(
        self,
        machine: Machine,
        vendor: str = "svm",
        path: str = "fast",
        recording: bool = True,
        complete_immediately: bool = True,
        timed: bool | None = None,
    ):
        if vendor not in VENDORS:
            raise ValueError(f"vendor must be 'svm' or 'vmx', got {vendor!r}")
        if path not in PATHS:
            raise ValueError(f"path must be one of {PATHS}, got {path!r}")
        self.machine = machine
        self.vendor = vendor
        self.path = path
        self.complete_immediately = complete_immediately
        # a plain dict with every key from the start: a Counter's += costs twice as much
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.injected: list[Fault] = []
        self.pending: _Pending | None = None
        self.xen2010 = Xen2010()  # the vCPU fields the 2010 patch added
        self._last: tuple = (None, None, None, None)  # (exit, result, request, Outcome)
        # of the last exit with nothing to record or inject (set by _outcome): handle hands that
        # Outcome out again for an exit just like it
        self.recording = recording
        self.timed = recording if timed is None else timed

    @property
    def recording(self) -> bool:
        return self._recording

    @recording.setter
    def recording(self, on: bool) -> None:
        """The one recording switch. On: a state diff, the device events and the injected
        faults of each exit are kept. Off (throughput runs, ``hvmio-lab run``): nothing grows
        per exit, not even the bus log of unclaimed ports; only the counters count. Stage
        times (``timed``) are separate, because the snapshot behind a diff copies all of
        guest memory and leaves the caches cold for the stages that follow."""
        self._recording = bool(on)
        self.machine.bus.recording = self._recording

    def step(self) -> Outcome:
        """One VM exit for the instruction at RIP: the hardware intercept, then the handler."""
        self._check_idle()
        start = perf_counter_ns() if self.timed else None
        return self.handle(intercept(self.machine, self.vendor), start)

    def handle(self, exit: SvmIoExit | VmxIoExit, start: int | None = None) -> Outcome:
        """Handle an exit record the hardware produced (or one built by hand)."""
        if self.pending is not None:
            self._check_idle()
        machine = self.machine
        ctx = lap = None  # no stopwatch and no snapshot unless asked for
        if self.timed or self._recording:
            ctx = ExitContext(exit, self.timed, None, len(machine.bus.log), start)
            ctx.lap("exit")
            if self._recording:  # the snapshot for the diff is recording overhead, not the exit's
                ctx.before = machine.snapshot()
                ctx.resume()
            lap = ctx.lap if self.timed else None
        path = self.path
        insn = None
        if path == "fast":
            # The access the record has worked out already, as every record the silicon
            # builds has: the call to access() alone is about 6 % of a polled exit
            # (bench_paths, the PM-timer row). A record made by hand is decoded and checked.
            try:
                io = exit._access
            except AttributeError:
                io = exit.access()
            if lap is not None:
                lap("decode")
            if io[3]:  # string I/O is declined: the emulator takes it
                self.counters["declined"] += 1
                path = "emulate"
        elif path == "seed2010":
            return self._outcome(ctx, exit, self.xen2010.handle(machine, exit, lap))
        if path != "fast":  # "emulate", or string I/O the fast path declined
            try:
                insn = emulator.decode_at_rip(machine, lap)
            except (PageFault, InvalidInstruction) as e:
                return self._outcome(ctx, exit, _new(PathResult, ("emulate", None, None, False,
                                                                  0, e, None, False)))  # fmt: skip
            if lap is not None:
                lap("decode")
            io = insn.access(machine.cpu.rdx)
        # Route the access, once: a device model first gets a request; with immediate
        # completion its answer is taken at once, the same result as ``complete`` without
        # the wait.
        device = machine.bus.device_at(io[0])
        request = None
        if device is not None and device.location == "device-model":
            self.counters["device-model"] += 1
            request = request_for(io, device, machine.cpu.rax)
            if not self.complete_immediately:
                self.pending = _Pending(ctx, exit, io, insn, request)
                path = "fast" if insn is None else "emulate"
                return self._outcome(ctx, exit, PathResult(path, io, insn), request,
                                     completed=False)  # fmt: skip
        if ctx is None:  # nothing timed or recorded: the path, straight away
            if insn is None:
                result = fastpath.run(machine, exit, io, None, device)
            else:
                result = emulator.run(machine, insn, io, device)
            last = self._last
            if result is last[1] and exit is last[0] and request is last[2]:
                # an exit like the last one (the same record, result and request: a guest
                # polling one port) did the same, and an Outcome is immutable: handed out again
                self.counters[result[0]] += 1
                return last[3]
            return self._outcome(None, exit, result, request)
        return self._perform(ctx, exit, io, insn, request)

    def _perform(self, ctx, exit, io: IoAccess, insn, request) -> Outcome:
        """Do a routed access down the path that decoded it (the fast path from the record
        when ``insn`` is None, else the emulator from the bytes), with the stopwatch running
        when timed; ``complete`` finishes a pending access here."""
        machine = self.machine
        device = machine.bus.device_at(io[0])
        lap = ctx.lap if ctx is not None and ctx.timed else None
        if insn is None:
            result = fastpath.run(machine, exit, io, lap, device)
        else:
            result = emulator.run(machine, insn, io, device)
            if lap is not None:
                lap("device")
        return self._outcome(ctx, exit, result, request)

    def complete(self) -> Outcome:
        """The device model answered: finish the pending access (no re-emulation)."""
        if self.pending is None:
            raise HvmioError("no device-model request is pending")
        pending, self.pending = self.pending, None
        if pending.ctx is not None:
            pending.ctx.resume()
        return self._perform(*pending)

    def _outcome(self, ctx: ExitContext | None, exit, result: PathResult,
                 request: IoRequest | None = None, completed: bool = True) -> Outcome:
        """Count the exit, inject what went wrong, and package what it did."""
        path, access, insn, done, elements, trouble, own_request, reemulated = result
        if trouble is None and own_request is None and ctx is None and completed:
            # the common case, nothing to inject or record: count it, and the 13 fields in
            # order (no keyword handling), as one of these is built per exit
            self.counters[path] += 1
            outcome = _new(Outcome, (path, exit, access, insn, (), None, None, None, request,
                                     True, done, reemulated, elements))  # fmt: skip
            self._last = (exit, result, request, outcome)
            return outcome
        fault = None
        if trouble is not None:
            if isinstance(trouble, PageFault):
                fault = self.inject_page_fault(trouble)
            else:
                why = next((text for kind, text in _WHY if isinstance(trouble, kind)), "")
                fault = self.inject("#GP", 0, why + str(trouble))
        counters = self.counters
        if own_request is not None:  # seed2010's own round trip, re-emulated at completion
            request = own_request
            counters["device-model"] += 1
            counters["reemulations"] += reemulated
        if completed:
            counters[path] += 1
        events, diff, stages = (), None, None
        if ctx is not None:
            if ctx.before is not None:
                events = tuple(self.machine.bus.log[ctx.log_start :])
                diff = self.machine.diff(ctx.before)
            if ctx.timed:
                stages = dict(ctx.stages)
        return _new(Outcome, (path, exit, access, insn, events, diff, fault, stages, request,
                              completed, done, reemulated, elements))  # fmt: skip

    def inject(
        self, vector: str, error_code: int, reason: str, address: int | None = None
    ) -> Fault:
        """Queue an exception for the guest, delivered at the current RIP (kept in
        ``injected`` while recording; ``counters["faults"]`` counts it either way)."""
        fault = Fault(vector, error_code, self.machine.cpu.rip, reason, address)
        if self._recording:
            self.injected.append(fault)
        self.counters["faults"] += 1
        return fault

    def inject_page_fault(self, fault: PageFault) -> Fault:
        """#PF with CR2 = the address; error code bit 1 = the access was a write."""
        return self.inject("#PF", int(fault.write) << 1, str(fault), fault.address)

    def _check_idle(self) -> None:
        if self.pending is not None:
            raise HvmioError(f"a device-model request is outstanding ({self.pending.request}); "
                             "call complete() first")  # fmt: skip
