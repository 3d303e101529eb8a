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

from collections.abc import Callable
from enum import Enum
from typing import NamedTuple

from . import emulator
from .devices import PmTimer, ones
from .errors import DeviceError, HvmioError, InvalidInstruction, PageFault
from .exits import IoAccess, SvmIoExit, VmxIoExit
from .machine import WIDTH_MASK, Machine
from .outcome import PathResult, request_for

Lap = Callable[[str], None] | None


class Rc(Enum):
    """What the patch's ``handle_mmio`` returns (Xen's X86EMUL_* codes)."""

    OKAY = "okay"
    UNHANDLEABLE = "unhandleable"
    RETRY = "retry"


class Unhandleable(HvmioError):
    """handle_mmio failed (X86EMUL_UNHANDLEABLE): the patch injects #GP for it."""


class Mmio(NamedTuple):
    """One return of ``handle_mmio``: its rc, and what it decoded and did on the way."""

    rc: Rc
    access: IoAccess | None = None
    instruction: emulator.IoInstruction | None = None
    done: bool = False
    elements: int = 0
    trouble: HvmioError | None = None  # an Unhandleable, or the #PF to inject


class Xen2010:
    """The vCPU fields the patch added (``io_port``/``io_size``/``io_dir``), and the stack slot
    behind the handler's ``data`` (``rubble``)."""

    def __init__(self) -> None:
        self.io_port = self.io_size = self.io_dir = 0
        self.rubble = 0  # what the stack slot behind ``data`` last held

    def handle(self, machine: Machine, exit: SvmIoExit | VmxIoExit, lap: Lap = None) -> PathResult:
        """The vendor exit handler: STR set → handle_mmio(); otherwise handle_mmio_decoded()."""
        if isinstance(exit, SvmIoExit):  # raw shifts, no validation, as in the patch
            raw, string = exit.exitinfo1, exit.exitinfo1 & (1 << 2)
            port, size, is_in = (raw >> 16) & 0xFFFF, (raw >> 4) & 0x07, raw & 1
            length = exit.exitinfo2 - exit.rip
        else:
            raw, string = exit.qualification, exit.qualification & 0x10
            port, size, is_in = (raw >> 16) & 0xFFFF, (raw & 0x07) + 1, (raw >> 3) & 1
            length = exit.instruction_length
        if lap is not None:
            lap("decode")
        if not string:
            self.io_port, self.io_size, self.io_dir = port, size, is_in
        got = self.handle_mmio(machine, lap, completing=False)
        if not string and got.rc is not Rc.RETRY:  # RIP moves even when rc says it failed
            machine.cpu.rip = (machine.cpu.rip + length) & WIDTH_MASK[machine.mode]
        request = None
        if got.rc is Rc.RETRY:  # the device model answered; completion runs handle_mmio again
            device = machine.bus.device_at(got.access.port)
            request = request_for(got.access, device, machine.cpu.rax)
            got = self.handle_mmio(machine, lap, completing=True)
        return PathResult("emulate" if string else "fast", got.access, got.instruction, got.done,
                          got.elements, got.trouble, request, request is not None)  # fmt: skip

    def handle_mmio(self, machine: Machine, lap: Lap, completing: bool) -> Mmio:
        """The patch's handle_mmio: skip fetch + decode whenever ``io_size`` is non-zero."""
        if self.io_size == 0:
            return self._emulate(machine, lap, completing)
        if self.io_size not in (1, 2, 4):  # nothing validated the record's SZ bits
            return _failed(f"size {self.io_size} from the exit record")
        io = IoAccess(self.io_port, self.io_size, bool(self.io_dir))
        device = machine.bus.device_at(io.port)
        if io.is_in and device is not None and device.location == "device-model":
            self.io_size = 0  # awaiting completion; only a write is fire-and-forget
            return Mmio(Rc.RETRY, io)
        data = self.rubble if io.is_in else machine.cpu.rax & 0xFFFF_FFFF
        try:
            data = self._do_io(machine, io, data)
        except DeviceError as e:
            return _failed(str(e), io)  # returns before io_size is cleared: the stash goes stale
        if lap is not None:
            lap("device")
        self.rubble = data
        if io.is_in:  # memcpy(&eax, &data, size): a 32-bit IN leaves RAX[63:32] alone
            mask = ones(io.size)
            machine.cpu.rax = (machine.cpu.rax & ~mask) | (data & mask)
        self.io_size = 0
        if lap is not None:
            lap("writeback")
        return Mmio(Rc.OKAY, io, None, True, 1)

    @staticmethod
    def _do_io(machine: Machine, io: IoAccess, data: int) -> int:
        bus = machine.bus
        if io.is_in and isinstance(bus.device_at(io.port), PmTimer) and io.size != 4:
            return data  # the 2010 PM-timer handler said OK without writing the value
        if io.is_in:
            return bus.read(io.port, io.size)
        bus.write(io.port, io.size, data)
        return data

    @staticmethod
    def _emulate(machine: Machine, lap: Lap, completing: bool) -> Mmio:
        try:
            insn = emulator.decode_at_rip(machine, lap)
        except PageFault as e:
            return Mmio(Rc.OKAY, trouble=e)  # X86EMUL_EXCEPTION, modelled as the #PF itself
        except InvalidInstruction as e:
            return _failed(str(e))
        if lap is not None:
            lap("decode")
        io = insn.access(machine.cpu.rdx)
        device = machine.bus.device_at(io.port)
        if not completing and device is not None and device.location == "device-model":
            return Mmio(Rc.RETRY, io, insn)  # this emulation only sends the request
        done = emulator.run(machine, insn)
        if lap is not None:
            lap("device")
        trouble = done.trouble
        if isinstance(trouble, DeviceError):
            return _failed(str(trouble), io, insn)
        return Mmio(Rc.OKAY, io, insn, done.done, done.elements, trouble)


def _failed(reason: str, io: IoAccess | None = None, insn=None) -> Mmio:
    return Mmio(Rc.UNHANDLEABLE, io, insn, False, 0, Unhandleable(f"handle_mmio failed: {reason}"))
