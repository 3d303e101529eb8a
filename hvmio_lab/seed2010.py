"""The 2010 patch ("x86/hvm: accelerate I/O intercept handling", Xen changeset 147808b8b8) as
posted, with its defects, so each can be shown live (IO_EXITS.md §1, §4). Written here from the
patch's control flow; no Xen code is copied.

The flow: the vendor handler reads port/size/direction from the exit record with raw shifts,
stashes them in the vCPU (``io_port``/``io_size``/``io_dir``) and calls ``handle_mmio``, which
skips fetch and decode whenever ``io_size`` is non-zero. The defects reproduced:

1. a 32-bit IN copies 4 bytes into RAX and leaves RAX[63:32] as it was (fixed in 2013,
   9d89100ba8 and 1e521eddeb);
2. on failure, RIP is advanced before #GP is injected;
3. after an UNHANDLEABLE failure the stash is not cleared, so the next emulated exit is taken
   as port I/O with the stale port/size/direction;
4. a device-model IN re-runs the full emulator at completion (the Sept-2010 rewrite,
   65f6837480, completes it without re-emulation);
5. a 1- or 2-byte PM-timer read returns whatever was in the handler's ``data`` variable: the
   2010 PM-timer handler reported success without writing it. "Stack rubble" is modelled as the
   previous access's value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import emulator
from .devices import PmTimer, device_name, ones
from .emulator import Execution
from .errors import DeviceError, InvalidInstruction, PageFault
from .exits import IoAccess, SvmIoExit
from .machine import WIDTH_MASK
from .outcome import ExitContext, IoRequest

if TYPE_CHECKING:
    from .hypervisor import Hypervisor

OKAY, UNHANDLEABLE, RETRY = "okay", "unhandleable", "retry"


class Xen2010:
    """The vCPU fields the patch added, and its handle_mmio/handle_mmio_decoded flow."""

    def __init__(self) -> None:
        self.io_port = self.io_size = self.io_dir = 0
        self.rubble = 0  # what the stack slot behind ``data`` last held
        self.failure = ""

    def handle(self, hv: Hypervisor, ctx: ExitContext):
        """The vendor exit handler: STR set → handle_mmio(); otherwise handle_mmio_decoded()."""
        machine, exit = hv.machine, ctx.exit
        if isinstance(exit, SvmIoExit):  # raw shifts, no validation, as in the patch
            raw, string = exit.exitinfo1, exit.exitinfo1 & (1 << 2)
            port, size, is_in = (raw >> 16) & 0xFFFF, (raw >> 4) & 0x07, raw & 1
            length = exit.exitinfo2 - exit.rip
        else:
            raw, string = exit.qualification, exit.qualification & 0x10
            port, size, is_in = (raw >> 16) & 0xFFFF, (raw & 0x07) + 1, (raw >> 3) & 1
            length = exit.instruction_length
        ctx.lap("decode")
        if not string:
            self.io_port, self.io_size, self.io_dir = port, size, is_in
        rc, io, insn = self.handle_mmio(hv, ctx, completing=False)
        if not string and rc != RETRY:  # the RIP advance happens even when rc says it failed
            machine.cpu.rip = (machine.cpu.rip + length) & WIDTH_MASK[machine.mode]
        request = None
        if rc == RETRY:  # the device model answered; completion runs handle_mmio once more
            request = IoRequest(io, None, device_name(machine.bus.device_at(io.port)))
            hv.counters["device-model"] += 1
            hv.counters["reemulations"] += 1
            rc, io, insn = self.handle_mmio(hv, ctx, completing=True)
        fault, done, elements = None, rc == OKAY, int(rc == OKAY)
        if isinstance(rc, Execution):
            done, elements = rc.done, rc.elements
            rc = rc.fault or OKAY
        if rc == UNHANDLEABLE:
            fault = hv.inject("#GP", 0, f"handle_mmio failed: {self.failure}")
        elif isinstance(rc, PageFault):
            fault = hv.inject_page_fault(rc)
        path = "emulate" if string else "fast"
        return hv.finish(ctx, path, io, insn, fault=fault, request=request, done=done,
                         elements=elements, reemulated=request is not None)  # fmt: skip

    def handle_mmio(self, hv: Hypervisor, ctx, completing: bool):
        """(rc, access, instruction); the instruction is None when fetch+decode was skipped.

        rc is OKAY, UNHANDLEABLE, RETRY, a PageFault from the fetch, or the emulator's Execution.
        """
        if self.io_size == 0:
            return self._emulate(hv, ctx, completing)
        machine = hv.machine
        if self.io_size not in (1, 2, 4):  # nothing validated the record's SZ bits
            self.failure = f"size {self.io_size} from the exit record"
            return UNHANDLEABLE, None, None
        io = IoAccess(self.io_port, self.io_size, bool(self.io_dir))
        device = machine.bus.device_at(io.port)
        if io.is_in and device is not None and device.location == "device-model":
            self.io_size = 0  # awaiting completion; only a write is fire-and-forget
            return RETRY, io, None
        data = self.rubble if io.is_in else machine.cpu.rax & 0xFFFF_FFFF
        try:
            data = self._do_io(machine, io, data)
        except DeviceError as e:
            self.failure = str(e)
            return UNHANDLEABLE, io, None  # returns before io_size is cleared: the stash goes stale
        ctx.lap("device")
        self.rubble = data
        if io.is_in:  # memcpy(&eax, &data, size): a 32-bit IN leaves RAX[63:32] alone
            mask = ones(io.size)
            machine.cpu.rax = (machine.cpu.rax & ~mask) | (data & mask)
        self.io_size = 0
        ctx.lap("writeback")
        return OKAY, io, None

    @staticmethod
    def _do_io(machine, io: IoAccess, data: int) -> int:
        bus = machine.bus
        if io.is_in and isinstance(bus.device_at(io.port), PmTimer) and io.size != 4:
            return data  # the 2010 PM-timer handler said OK without writing the value
        if io.is_in:
            return bus.read(io.port, io.size)
        bus.write(io.port, io.size, data)
        return data

    def _emulate(self, hv: Hypervisor, ctx, completing: bool):
        machine = hv.machine
        try:
            code = emulator.fetch(machine)
            ctx.lap("fetch")
            insn = emulator.decode_fetched(machine, code)
            ctx.lap("decode")
        except PageFault as e:
            return e, None, None
        except InvalidInstruction as e:
            self.failure = str(e)
            return UNHANDLEABLE, None, None
        io = insn.access(machine.cpu.rdx)
        device = machine.bus.device_at(io.port)
        if not completing and device is not None and device.location == "device-model":
            return RETRY, io, insn  # this emulation only sends the request
        try:
            run = emulator.execute(machine, insn)
        except DeviceError as e:
            self.failure = str(e)
            return UNHANDLEABLE, io, insn
        ctx.lap("device")
        return run, io, insn
