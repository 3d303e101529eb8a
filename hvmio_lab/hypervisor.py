"""The dispatcher: one VM exit down a chosen path, timed by stage.

Paths: ``"fast"`` (the exit record; string I/O falls back to the emulator), ``"emulate"``
(fetch + decode at CS:RIP for every exit, as Xen did before 2010) and ``"seed2010"`` (the 2010
patch as posted, bugs included; see ``seed2010``).

An access to a device whose location is ``"device-model"`` goes out as a request and
completes later (Xen's X86EMUL_RETRY, then completion). Modern semantics: the register write
and the RIP advance happen at completion, from the request, with no re-emulation.
"""

from __future__ import annotations

from collections import Counter
from time import perf_counter_ns
from typing import NamedTuple

from . import emulator, fastpath
from .devices import device_name, ones
from .errors import DeviceError, HvmioError, InvalidInstruction, PageFault
from .exits import IoAccess, SvmIoExit, VmxIoExit
from .hardware import intercept
from .machine import Machine
from .outcome import ExitContext, Fault, IoRequest, Outcome
from .seed2010 import Xen2010

PATHS = ("fast", "emulate", "seed2010")
VENDORS = ("svm", "vmx")


class _Pending(NamedTuple):
    ctx: ExitContext
    path: str
    access: IoAccess
    instruction: emulator.IoInstruction | None
    request: IoRequest


class Hypervisor:
    """Runs VM exits for the I/O instruction at the machine's RIP, down one path."""

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
        self.counters: Counter[str] = Counter()
        self.injected: list[Fault] = []
        self.pending: _Pending | None = None
        self.xen2010 = Xen2010()  # the vCPU fields the 2010 patch added
        self.recording = recording
        self.timed = recording if timed is None else timed

    @property
    def recording(self) -> bool:
        return self._recording

    @recording.setter
    def recording(self, on: bool) -> None:
        """Recording means a state diff and the device events of each exit; throughput runs
        turn it off. Stage times (``timed``) are separate, because the snapshot behind a diff
        copies all of guest memory and leaves the caches cold for the stages that follow."""
        self._recording = on
        self.machine.bus.recording = on

    def step(self) -> Outcome:
        """One VM exit for the instruction at RIP: the hardware intercept, then the handler."""
        self._check_idle()
        start = perf_counter_ns() if self.timed else None
        return self.handle(intercept(self.machine, self.vendor), start)

    def handle(self, exit: SvmIoExit | VmxIoExit, start: int | None = None) -> Outcome:
        """Handle an exit record the hardware produced (or one built by hand)."""
        if self.pending is not None:
            self._check_idle()
        if not self._recording and not self.timed and self.path == "fast":
            io = fastpath.access(exit)
            if io is not None:
                device = self.machine.bus.device_at(io.port)
                if device is None or device.location != "device-model":
                    return self._fast_unrecorded(exit, io)
        machine = self.machine
        ctx = ExitContext(exit, self.timed, None, len(machine.bus.log), start)
        ctx.lap("exit")
        if self._recording:  # the snapshot for the diff is recording overhead, not the exit's
            ctx.before = machine.snapshot()
            ctx.resume()
        if self.path == "seed2010":
            return self.xen2010.handle(self, ctx)
        if self.path == "fast":
            io = fastpath.access(exit)
            ctx.lap("decode")
            if io is not None:
                return self._dispatch(ctx, "fast", io, None)
            self.counters["declined"] += 1
        return self._emulate(ctx)

    def _fast_unrecorded(self, exit: SvmIoExit | VmxIoExit, io: IoAccess) -> Outcome:
        """The fast path for throughput runs: the same three steps, with none of the recording
        bookkeeping (no stage clock, no snapshot, no bus log), so replays run at full speed."""
        machine = self.machine
        try:
            data = fastpath.perform(machine, io)
        except DeviceError as e:
            fault = self.inject("#GP", 0, f"device refused the access: {e}")
            self.counters["fast"] += 1
            return Outcome("fast", exit, io, fault=fault)
        fastpath.retire(machine, exit, io, data)
        self.counters["fast"] += 1
        # path, exit, access, instruction, events, diff, fault, stages, request, completed,
        # done, reemulated, elements (_make skips the keyword handling of Outcome(...))
        return Outcome._make(("fast", exit, io, None, (), None, None, None, None, True, True,
                              False, 1))  # fmt: skip

    def _emulate(self, ctx: ExitContext) -> Outcome:
        try:
            code = emulator.fetch(self.machine)
            ctx.lap("fetch")
            insn = emulator.decode_fetched(self.machine, code)
        except PageFault as e:
            return self.finish(ctx, "emulate", fault=self.inject_page_fault(e))
        except InvalidInstruction as e:
            return self.finish(
                ctx, "emulate", fault=self.inject("#GP", 0, f"emulation failed: {e}")
            )
        ctx.lap("decode")
        return self._dispatch(ctx, "emulate", insn.access(self.machine.cpu.rdx), insn)

    def _dispatch(self, ctx, path, io, insn) -> Outcome:
        device = self.machine.bus.device_at(io.port)
        if device is None or device.location != "device-model":
            return self._execute(ctx, path, io, insn)
        data = None if io.is_in or io.string else self.machine.cpu.rax & ones(io.size)
        request = IoRequest(io, data, device_name(device))
        self.counters["device-model"] += 1
        self.pending = _Pending(ctx, path, io, insn, request)
        if self.complete_immediately:
            return self.complete()
        return self.finish(ctx, path, io, insn, request=request, completed=False)

    def complete(self) -> Outcome:
        """The device model answered: finish the pending access (no re-emulation)."""
        if self.pending is None:
            raise HvmioError("no device-model request is pending")
        pending, self.pending = self.pending, None
        pending.ctx.resume()
        return self._execute(pending.ctx, pending.path, pending.access, pending.instruction,
                             pending.request)  # fmt: skip

    def _execute(self, ctx, path, io, insn, request=None) -> Outcome:
        machine = self.machine
        try:
            if insn is None:
                data = fastpath.perform(machine, io)
                ctx.lap("device")
                fastpath.retire(machine, ctx.exit, io, data)
                ctx.lap("writeback")
                return self.finish(ctx, path, io, request=request, done=True, elements=1)
            run = emulator.execute(machine, insn)
            ctx.lap("device")
        except DeviceError as e:
            fault = self.inject("#GP", 0, f"device refused the access: {e}")
            return self.finish(ctx, path, io, insn, request=request, fault=fault)
        fault = None if run.fault is None else self.inject_page_fault(run.fault)
        return self.finish(ctx, path, io, insn, request=request, fault=fault, done=run.done,
                           elements=run.elements)  # fmt: skip

    def inject(
        self, vector: str, error_code: int, reason: str, address: int | None = None
    ) -> Fault:
        """Queue an exception for the guest, delivered at the current RIP."""
        fault = Fault(vector, error_code, self.machine.cpu.rip, reason, address)
        self.injected.append(fault)
        self.counters["faults"] += 1
        return fault

    def inject_page_fault(self, fault: PageFault) -> Fault:
        """#PF with CR2 = the address; error code bit 1 = the access was a write."""
        return self.inject("#PF", int(fault.write) << 1, str(fault), fault.address)

    def finish(self, ctx: ExitContext, path: str, io: IoAccess | None = None, insn=None, *,
               fault=None, request=None, completed=True, done=False, elements=0,
               reemulated=False) -> Outcome:  # fmt: skip
        """Count the exit and package what it did."""
        if completed:
            self.counters[path] += 1
        machine = self.machine
        recorded = ctx.before is not None
        return Outcome(
            path=path,
            exit=ctx.exit,
            access=io,
            instruction=insn,
            events=tuple(machine.bus.log[ctx.log_start :]) if recorded else (),
            diff=machine.diff(ctx.before) if recorded else None,
            fault=fault,
            stages=dict(ctx.stages) if ctx.timed else None,
            request=request,
            completed=completed,
            done=done,
            reemulated=reemulated,
            elements=elements,
        )

    def _check_idle(self) -> None:
        if self.pending is not None:
            raise HvmioError(f"a device-model request is outstanding ({self.pending.request}); "
                             "call complete() first")  # fmt: skip
