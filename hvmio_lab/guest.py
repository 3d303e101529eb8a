"""Real guest code on a real CPU emulator: the VMRUN/#VMEXIT loop.

unicorn (a CPU emulator built on QEMU) is the guest CPU. A capstone pre-scan of the program
finds its I/O instructions and hands their addresses to unicorn as exits, so the CPU stops
*before* an IN/OUT/INS/OUTS executes. The hypervisor then builds the exit record, handles it
and the guest resumes where RIP now points.

One source of truth: guest memory is a single buffer that unicorn maps directly
(``mem_map_ptr``), so both see every byte at once. Registers live in unicorn; during an exit
the Machine's CPU is a write-back cache of them, read lazily and flushed before the guest
resumes (an explicit sync, because each unicorn register read costs microseconds).
"""

from __future__ import annotations

import ctypes
import json
from dataclasses import dataclass, field
from functools import cache
from time import perf_counter_ns

from unicorn import UC_ARCH_X86, UC_MODE_16, UC_MODE_32, UC_MODE_64, UC_PROT_ALL, Uc, UcError
from unicorn import x86_const as ux
from unicorn.unicorn_py3 import unicorn as _unicorn_binding

from . import resources
from .devices import attach_pc
from .errors import GuestRunaway, HvmioError
from .fields import SEGMENTS
from .hardware import IO_INSTRUCTIONS, disassembler
from .hypervisor import Hypervisor
from .machine import REGISTERS, Machine, Segment
from .outcome import Outcome

GUESTS = resources.data("guests")
_UC_MODES = {16: UC_MODE_16, 32: UC_MODE_32, 64: UC_MODE_64}
EXIT_QUANTUM_NS = 1_000  # model: virtual time that passes per VM exit (drives the PM timer)
RUNAWAY_INSTRUCTIONS = 50_000_000  # a guest that runs this long without an exit or HLT is stuck


@dataclass(frozen=True)
class Program:
    """A guest program from data/guests: its bytes and what programs.json says about it."""

    name: str
    mode: int
    load: int
    stack: int
    code: bytes
    description: str
    success_post: int
    params: dict = field(hash=False, compare=False)

    @property
    def code_size(self) -> int:
        return self.params.get("code_size", len(self.code))

    def _sweep(self):
        """A capstone linear sweep of the code (data after the final HLT is left out)."""
        return disassembler(self.mode).disasm(self.code[: self.code_size], self.load)

    def io_instructions(self) -> dict[int, str]:
        """Address → disassembly of every I/O instruction: where the guest CPU must stop."""
        return {
            insn.address: f"{insn.mnemonic} {insn.op_str}".strip()
            for insn in self._sweep()
            if insn.id in IO_INSTRUCTIONS
        }

    def listing(self) -> list[tuple[int, str, str]]:
        """(address, bytes, text) for each instruction of the code, for the stepper."""
        return [(i.address, i.bytes.hex(" "), f"{i.mnemonic} {i.op_str}".strip())
                for i in self._sweep()]  # fmt: skip


@cache
def _catalogue() -> dict:
    return json.loads((GUESTS / "programs.json").read_text())


def programs() -> list[str]:
    return sorted(_catalogue())


def load_program(name: str) -> Program:
    meta = _catalogue().get(name)
    if meta is None:
        raise HvmioError(f"no guest program {name!r}; there are: {', '.join(programs())}")
    code = (GUESTS / f"{name}.bin").read_bytes()
    return Program(name, meta["mode"], meta["load"], meta["stack"], code,
                   meta["description"], meta["success_post"], meta["params"])  # fmt: skip


def _register_ids(mode: int) -> dict[str, int]:
    """unicorn register ids for our names. Outside long mode the 32-bit registers are the whole
    register and R8–R15 do not exist (they stay 0 here)."""
    wide = mode == 64
    ids = {f"{seg.lower()}.sel": getattr(ux, f"UC_X86_REG_{seg}") for seg in SEGMENTS}
    for name in REGISTERS:
        if name == "rflags":
            ids[name] = ux.UC_X86_REG_EFLAGS
        elif name[1:].isdigit():
            if wide:
                ids[name] = getattr(ux, f"UC_X86_REG_{name.upper()}")
        else:
            ids[name] = getattr(ux, f"UC_X86_REG_{('R' if wide else 'E') + name[1:].upper()}")
    return ids


def _register_access(uc: Uc):
    """(read, write) for one register id. unicorn's Python wrapper costs ~3 µs a call here;
    its C entry points cost ~1 µs, so use them when this binding (2.1) exposes them."""
    lib, handle = getattr(_unicorn_binding, "uclib", None), getattr(uc, "_uch", None)
    if lib is None or handle is None:
        return uc.reg_read, uc.reg_write
    cell = ctypes.c_uint64()
    ref = ctypes.byref(cell)
    c_read, c_write = lib.uc_reg_read, lib.uc_reg_write

    def read(uc_id: int) -> int:
        if c_read(handle, uc_id, ref):
            return uc.reg_read(uc_id)  # let the wrapper raise its error
        return cell.value

    def write(uc_id: int, value: int) -> None:
        cell.value = value
        if c_write(handle, uc_id, ref):
            uc.reg_write(uc_id, value)

    return read, write


class UnicornCpu:
    """The Machine's view of unicorn's registers: read on first use, written back by ``sync``."""

    def __init__(self, uc: Uc, mode: int):
        self._mode = mode
        self._ids = _register_ids(mode)
        self._read, self._write = _register_access(uc)
        self._cache: dict[str, int] = {}
        self._dirty: set[str] = set()

    def _get(self, name: str) -> int:
        value = self._cache.get(name)
        if value is None:
            uc_id = self._ids.get(name)
            value = self._cache[name] = 0 if uc_id is None else self._read(uc_id)
        return value

    def _set(self, name: str, value: int) -> None:
        if name not in self._ids:
            raise HvmioError(f"{name} does not exist in {self._mode}-bit mode")
        if self._mode != 64:
            value &= 0xFFFF_FFFF
        self._cache[name] = value
        self._dirty.add(name)

    def sync(self) -> None:
        """Flush written registers to unicorn and forget the rest (the guest is about to run)."""
        for name in self._dirty:
            self._write(self._ids[name], self._cache[name])
        self._dirty.clear()
        self._cache.clear()

    def segment(self, name: str) -> Segment:
        selector = self._get(f"{name.lower()}.sel")
        return Segment(selector, selector << 4 if self._mode == 16 else 0)

    def set_segment(self, name: str, selector: int, base: int) -> None:
        self._set(f"{name.lower()}.sel", selector)


for _name in REGISTERS:
    setattr(UnicornCpu, _name, property(
        lambda self, n=_name: self._get(n), lambda self, v, n=_name: self._set(n, v)))  # fmt: skip


@dataclass(frozen=True)
class RunResult:
    """What a run to HLT (or to ``max_exits``) did, for a summary line or a test."""

    program: str
    vendor: str
    path: str
    exits: int
    by_path: dict[str, int]
    post_codes: tuple[int, ...]
    uart_text: str
    halted: bool
    success: bool
    faults: tuple = ()
    wall_ns: int = 0

    @property
    def exits_per_second(self) -> float:
        return self.exits / (self.wall_ns / 1e9) if self.wall_ns else 0.0

    def __str__(self) -> str:
        paths = ", ".join(f"{k} {v}" for k, v in sorted(self.by_path.items()))
        status = "success" if self.success else ("halted" if self.halted else "stopped")
        text = f", UART {self.uart_text!r}" if self.uart_text else ""
        return (f"{self.program} ({self.vendor}, {self.path}): {status} after {self.exits} exits "
                f"[{paths}], POST {[hex(c) for c in self.post_codes]}{text}")  # fmt: skip


class Guest:
    """A guest program on unicorn, exiting to a ``Hypervisor`` at every I/O instruction."""

    def __init__(self, program: str | Program, vendor: str = "svm", path: str = "fast",
                 recording: bool = True, disk: bytes | None = None, uart_input: bytes = b"",
                 timed: bool | None = None):  # fmt: skip
        self.program = program if isinstance(program, Program) else load_program(program)
        self.vendor, self.path, self.recording, self.timed = vendor, path, recording, timed
        self._disk, self._uart_input = disk, uart_input
        self.reset()

    def reset(self) -> None:
        """Reload the program into fresh memory, registers and devices."""
        prog = self.program
        self.uc = Uc(UC_ARCH_X86, _UC_MODES[prog.mode])
        self.cpu = UnicornCpu(self.uc, prog.mode)
        self.machine = Machine(prog.mode, cpu=self.cpu)
        attach_pc(self.machine, disk=self._disk, uart_input=self._uart_input)
        memory = self.machine.memory.data
        self._mapping = (ctypes.c_char * len(memory)).from_buffer(memory)
        self.uc.mem_map_ptr(0, len(memory), UC_PROT_ALL, ctypes.addressof(self._mapping))
        memory[prog.load : prog.load + len(prog.code)] = prog.code
        self.io_sites = prog.io_instructions()
        self.uc.ctl_exits_enabled(True)
        self.uc.ctl_set_exits(list(self.io_sites))
        self.cpu.rip = prog.load
        self.cpu.rsp = prog.stack
        self.cpu.sync()
        self.hypervisor = Hypervisor(self.machine, self.vendor, self.path, self.recording,
                                     timed=self.timed)  # fmt: skip
        self.halted = False
        self.exits = 0
        self.outcomes: list[Outcome] = []

    @property
    def devices(self):
        return self.machine.bus.devices

    def _run_to_exit(self) -> bool:
        """Let the guest run until it stops before an I/O instruction (True) or halts (False)."""
        rip = self.cpu.rip
        if rip in self.io_sites:
            return True  # a REP instruction left unfinished by the last exit exits again at once
        self.cpu.sync()
        try:
            self.uc.emu_start(rip, 0, count=RUNAWAY_INSTRUCTIONS)
        except UcError as e:
            raise HvmioError(f"the guest CPU stopped at {self.cpu.rip:#x}: {e}") from e
        rip = self.cpu.rip
        if rip in self.io_sites:
            return True
        if (
            self.machine.memory.data[self.machine.linear("CS", rip) - 1] == 0xF4
        ):  # HLT: emu_start returns just past it
            self.halted = True
            return False
        raise GuestRunaway(
            f"{self.program.name} ran {RUNAWAY_INSTRUCTIONS:,} instructions to {rip:#x} "
            "without an I/O exit or HLT"
        )

    def step(self) -> Outcome | None:
        """Run to the next I/O exit and handle it; None once the guest has halted."""
        if self.halted or not self._run_to_exit():
            return None
        outcome = self.hypervisor.step()
        self.exits += 1
        self.machine.clock.advance(EXIT_QUANTUM_NS)
        if outcome.fault is not None:
            raise HvmioError(f"{self.program.name}: the hypervisor injected {outcome.fault}")
        if self.recording:
            self.outcomes.append(outcome)
        return outcome

    def run(self, max_exits: int | None = None) -> RunResult:
        """Run until HLT (or ``max_exits`` exits) and summarise."""
        start = perf_counter_ns()
        while max_exits is None or self.exits < max_exits:
            if self.step() is None:
                break
        return self.result(perf_counter_ns() - start)

    def result(self, wall_ns: int = 0) -> RunResult:
        post = tuple(self.devices["post"].codes)
        counters = self.hypervisor.counters
        return RunResult(
            program=self.program.name, vendor=self.vendor, path=self.path, exits=self.exits,
            by_path={k: counters[k] for k in ("fast", "emulate") if counters[k]},
            post_codes=post, uart_text=self.devices["uart"].text, halted=self.halted,
            success=self.halted and bool(post) and post[-1] == self.program.success_post,
            faults=tuple(self.hypervisor.injected), wall_ns=wall_ns,
        )  # fmt: skip

    def read_u64(self, address: int) -> int:
        return int.from_bytes(self.machine.memory.read(address, 8), "little")
