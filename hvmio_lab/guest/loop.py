"""The VMRUN/#VMEXIT loop: guest code on unicorn, an exit before every I/O instruction it runs.

How the guest CPU traps. Facts checked on unicorn 2.1.4 (its source: ``qemu/softmmu/ioport.c``,
``qemu/softmmu/cpus.c``) and measured here with ``bench/bench_guest.py``:

- unicorn calls its ``UC_HOOK_INSN`` IN/OUT hooks from inside every IN, OUT, INS and OUTS it
  executes (INS/OUTS share the port helpers; once per element for REP), with EIP synced to
  the instruction's own address. So the hook sees every I/O instruction that really runs: at
  any CS base, in any mode, after a far jump or a mode switch, in code written at run time.
  Nothing decides in advance where the exits are (``Program.listing`` is for display only).
- An ``emu_stop()`` from that hook is honoured only where unicorn next checks for a stop.
  With ``count=`` it checks before every instruction, so the CPU stops right after the I/O
  instruction; the loop then puts back what that instruction changed (RIP; RAX for an IN;
  RCX/RSI/RDI for INS/OUTS, all read in the hook before it ran) and hands the exit to the
  hypervisor at the instruction's address, as if it had not run. Without ``count=`` the
  check comes later: at the next memory access (a store is performed first, with RIP left on
  it) or at the end of the translated block (tried: ``in; inc rbx; mov [m], bl; inc rbx``
  stopped on the MOV with the store done). A REP string instruction ends a block after
  every element, and an INS stops at its own element's store, so those stop in time anyway.
- The price of ``count=``: unicorn runs a counting hook before every guest instruction (bench
  row ``count=``, 9–14 ns here; the issue measured 19 ns), which is most of an exit in
  pmtimer_poll (≈2,000 instructions per exit).
- So two ways to run. ``step`` (the stepper, recording, timed stages, the seed2010 and
  emulate paths, ``run(max_exits=)``) runs with ``count=`` and stops at every exit.
  ``run`` to HLT (fast path, recording and timing off) runs free, without ``count=``: the
  hook hands each exit to the hypervisor right there, with the registers as they were before
  the instruction, and when the handler did exactly what the instruction does (RIP to the
  next instruction; an IN's value merged or zero-extended into RAX) the value goes back to
  unicorn, which finishes the instruction itself. String I/O goes to the emulator there
  too: it does the exit's elements (a batch, to the page bound) and unicorn, already inside
  the first element, finishes that one from registers set back by one element
  (``_string_in_hook``). An exit that needs the CPU stopped (a fault; an error) and that
  unicorn would run past (an IN, an OUT, a single OUTS) is rolled back: the hook saves the
  CPU context, journals every store from there on (``UC_HOOK_MEM_WRITE``, only until the
  stop), and once unicorn stops the loop undoes the stores and restores the context. Same
  exits, same state (tested against ``step``, faults and string I/O included).
- ``count=`` is also a run's instruction bound. A free run has none, so a watchdog thread
  stops a free-running guest that has made no exit for half a second, and the loop goes on
  under ``count=`` up to the next exit (then free again). Blocks compiled in a free stretch
  lack the counting hook, so the loop flushes unicorn's translations when it turns
  ``count=`` back on (unicorn itself flushes them when it is turned off).
- Rejected: ``ctl_set_exits`` on addresses found ahead of time (a sweep, a block hook). The
  addresses must be known before the block is translated, which is the sweep's flaw; unicorn
  invalidates the block before every exit address at the end of each ``emu_start`` (a hot
  loop is recompiled every round); a Python ``UC_HOOK_BLOCK`` costs a callback per block run
  (≈500 per exit in pmtimer_poll); marking pages non-executable to catch new code crashed
  unicorn when ``mem_protect`` ran inside its fetch hook; unicorn's own ``timeout=`` starts a
  thread for every ``emu_start`` (0.1 ms here).
- Registers: ``UnicornCpu`` calls unicorn's C API directly (the binding's ``reg_read`` costs
  about five C calls) and an exit reads only what its path asks for: the hook reads RIP
  (with RAX for an OUT, which sends it, and an 8- or 16-bit IN, which merges into it, and CS
  and CR0 outside long mode) in one batch. The exit record the silicon builds is kept per
  site (``_site``): the same bytes at the same address, mode and port give the same record,
  checked at every exit.
- A stop under ``count=`` cuts the block right after the I/O instruction, so two I/O
  instructions in one run cannot happen; if they ever did, the loop raises (never a silent
  loss).

What unicorn does first and cannot be put back: for INS it writes a placeholder 0 to the
destination element before calling the IN hook (QEMU's restartable dummy store). A normal
INS exit overwrites that element with the device's data, as the CPU would; an INS exit that
fails (a #PF injected, a device refusal) leaves 0 there instead of the old bytes. A REP
INS/OUTS with (R)CX = 0 performs no port access, so unicorn calls no hook and it runs
without an exit (whether a CPU exits for a zero count is not settled here). The loop cannot
see either case, so neither is reported. A page marked not present loses EXEC in unicorn, so
an instruction fetch there faults before any exit (``PageFault``); guest data accesses to it
are not faulted (the exit paths check their own memory operands).
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from time import perf_counter_ns

from unicorn import (
    UC_ARCH_X86,
    UC_ERR_FETCH_PROT,
    UC_HOOK_INTR,
    UC_HOOK_MEM_WRITE,
    UC_MODE_32,
    UC_MODE_64,
    UC_PROT_ALL,
    UC_PROT_EXEC,
    UC_PROT_READ,
    UC_PROT_WRITE,
    Uc,
    UcError,
)
from unicorn import x86_const as ux

from ..devices import attach_pc, device_name
from ..errors import GuestRunaway, HvmioError, PageFault
from ..exits import SvmIoExit, VmxIoExit
from ..hardware import decode_io, disassembler, intercept
from ..hypervisor import Hypervisor
from ..kept import keep
from ..machine import DEFAULT_MEMORY, PAGE_SIZE, RFLAGS_DF, WIDTH_MASK, Machine, merge_gpr
from ..outcome import Outcome
from . import realmode
from .cpu import CR0_PE, UnicornCpu
from .programs import Program, load_program
from .uc_api import hook_io

EXIT_QUANTUM_NS = 1_000  # model: virtual time that passes per VM exit (drives the PM timer)
INSTRUCTION_LIMIT = 50_000_000  # a guest that runs this long without an exit or HLT is stuck
_ONES = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFF_FFFF}
_SINGLE, _REP = 1, 2  # a site's kind: INS/OUTS without and with a repeat prefix
_SITES: dict[tuple, tuple] = {}  # _site's records: (vendor, address…, port) → (bytes, record, kind)
_IN_WRITES, _OUT_WRITES = frozenset(("rax", "rip")), frozenset(("rip",))
# what the hook reads at once: RIP, RAX where it is used (an OUT sends it, an 8- or 16-bit IN
# merges into it; a 32-bit IN zero-extends), and CS and CR0 for the mode outside long mode
_HOOK_READS = {(True, True): ("rip", "rax"), (False, True): ("rip",),
               (True, False): ("rip", "rax", "cs.sel", "cr0"),
               (False, False): ("rip", "cs.sel", "cr0")}  # fmt: skip
_IN_CHANGES = ("rax",)
# what the emulator reads for INS/OUTS, at once
_STRING_READS = ("rip", "rax", "rcx", "rdx", "rsi", "rdi", "rflags")
# and outside long mode, for the segment bases: INS writes through ES, OUTS reads through DS
# unless a prefix overrides it
_STRING_SELECTORS = ("es.sel", "ds.sel")
# what INS/OUTS write, by (REP, INS)
_STRING_WRITES = {(rep, is_in): frozenset(("rip", "rdi" if is_in else "rsi")
                                           + (("rcx",) if rep else ()))
                  for rep in (False, True) for is_in in (False, True)}  # fmt: skip
_STRING_CHANGES = ("rax", "rcx", "rsi", "rdi")  # RAX too: INS/OUTS leave it, reading is cheap
_NOT_PRESENT = UC_PROT_READ | UC_PROT_WRITE  # no EXEC: a fetch faults, data still reaches it


def _one_short(target: int, step: int, address_size: int, width: int) -> int:
    """The value a string instruction's register must hold for unicorn's own update of it
    (``step`` added at the address size: CX merges, ECX zero-extends) to give ``target``. One
    always exists for the emulator's registers, which zero-extend a 32-bit ECX or pointer
    as unicorn does (a ``bits 64`` ``a32 rep insb`` is tested)."""
    return merge_gpr(target, target - step, address_size // 8) & width


class _Watchdog:
    """Stops a free-running guest that has made no exit for ``STALL_S``: without ``count=``
    nothing else bounds it (unicorn's own ``timeout=`` starts a thread for every
    ``emu_start``, 0.1 ms each here). One thread for the process, asleep while no guest runs
    free; the loop then runs the guest on under ``count=`` up to its next exit."""

    STALL_S = 0.5

    def __init__(self) -> None:
        self._watched: dict[int, list] = {}  # id(guest) → [guest, exits seen, since]
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, guest: Guest) -> None:
        """``guest`` is about to run free: stop it if it stalls (until ``unwatch``). Plain
        calls, not a context manager: this is paid on every free run, a few µs."""
        with self._lock:
            self._watched[id(guest)] = [guest, guest.exits, time.monotonic()]
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="hvmio-watchdog",
                                                daemon=True)  # fmt: skip
                self._thread.start()
        if not self._wake.is_set():  # asleep: no guest was running free
            self._wake.set()

    def unwatch(self, guest: Guest) -> None:
        with self._lock:
            del self._watched[id(guest)]

    def _watch(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(self.STALL_S / 5)
            with self._lock:
                if not self._watched:
                    self._wake.clear()
                now = time.monotonic()
                for entry in self._watched.values():
                    guest, seen, since = entry
                    if guest.exits != seen:
                        entry[1:] = guest.exits, now
                    elif now - since >= self.STALL_S:
                        guest.uc.emu_stop()  # what unicorn's own timeout does, from its thread
                        entry[2] = now


_WATCHDOG = _Watchdog()


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


Interrupts = Callable[["Guest", int], None] | str | None


class Guest:
    """A guest program on unicorn, exiting to a ``Hypervisor`` before every I/O instruction.

    ``program`` is a shipped program's name, a ``Program``, or use ``Guest.from_code`` for
    your own bytes. Options for firmware (SeaBIOS needs all of them):

    - ``memory_size``: guest RAM in bytes (default 2 MiB; SeaBIOS wants 128 MiB). Recording
      costs do not grow with it.
    - ``attach``: ``attach(machine)`` puts the devices on the bus instead of ``attach_pc``
      (``disk`` and ``uart_input`` go to ``attach_pc`` only).
    - ``roms``: ``{physical address: image}``. An image inside RAM is copied there (writable,
      like shadowed BIOS RAM); one above RAM is mapped read-only on its own (e.g. SeaBIOS at
      0xE0000 and again at 0xFFFE0000). The exit paths see RAM only.
    - ``entry``: ``(cs, ip)`` to start at, e.g. ``(0xF000, 0xFFF0)`` (CS base 0xF0000, the
      real-mode rule; the reset state's base 0xFFFF0000 is not modelled). Without it the guest
      starts at CS = 0, RIP = ``program.load``. A 16-bit program starts in real mode and may
      switch modes; 32- and 64-bit programs start flat in protected or long mode.
    - ``interrupts``: what happens when the guest raises an interrupt or exception (unicorn's
      ``UC_HOOK_INTR``). ``None``: a clear error. ``"ivt"``: real-mode ``int n`` goes
      through the IVT (``realmode.deliver``). A callable ``f(guest, vector)`` decides itself
      (and may call ``guest.deliver_real_mode(vector)``); RIP is past an ``int n``.
    - ``exit_limit``: at most this many exits in all; past it ``GuestRunaway`` says what the
      guest was spinning on (port, direction, device, where). ``instruction_limit``: at most
      this many instructions between two exits (``GuestRunaway`` says where); ``run``, which
      runs free, starts counting once the guest has gone half a second without an exit.
    """

    def __init__(self, program: str | Program, vendor: str = "svm", path: str = "fast",
                 recording: bool = True, disk: bytes | None = None, uart_input: bytes = b"",
                 timed: bool | None = None, *, memory_size: int = DEFAULT_MEMORY,
                 attach: Callable[[Machine], object] | None = None,
                 roms: dict[int, bytes] | None = None, entry: tuple[int, int] | None = None,
                 interrupts: Interrupts = None, exit_limit: int | None = None,
                 instruction_limit: int = INSTRUCTION_LIMIT):  # fmt: skip
        self.program = program if isinstance(program, Program) else load_program(program)
        self.vendor, self.path, self._recording, self.timed = vendor, path, recording, timed
        self._disk, self._uart_input = disk, uart_input
        self.memory_size, self.attach, self.roms = memory_size, attach, dict(roms or {})
        self.entry, self.interrupts = entry, interrupts
        if interrupts not in (None, "ivt") and not callable(interrupts):
            raise HvmioError(f"interrupts must be None, 'ivt' or a callable, got {interrupts!r}")
        for name, limit in (("exit_limit", exit_limit), ("instruction_limit", instruction_limit)):
            if (limit is not None or name == "instruction_limit") and (
                limit.__class__ is not int or limit < 1
            ):
                raise HvmioError(f"{name} must be a whole number ≥ 1, got {limit!r}")
        self.exit_limit, self.instruction_limit = exit_limit, instruction_limit
        self.reset()

    @classmethod
    def from_code(cls, code: bytes, mode: int = 16, origin: int = 0x7C00, *,
                  stack: int | None = None, name: str = "your code", success_post: int = 0xAA,
                  **options) -> Guest:  # fmt: skip
        """Run your own machine code (NASM output, say) like a shipped program, stepper too.

        It loads at ``origin`` (also where it starts, with CS = 0 unless ``entry`` says
        otherwise); the stack starts at ``stack`` (default: just below ``origin``, or 0x80000
        for 32/64-bit code). ``success_post``: the last POST code that means success.
        """
        if mode not in (16, 32, 64):
            raise HvmioError(f"mode must be 16, 32 or 64, got {mode!r}")
        code = bytes(code)
        if not code:
            raise HvmioError("there is no code to run (0 bytes)")
        if stack is None:
            stack = origin if mode == 16 else 0x80000
        program = Program(name, mode, origin, stack, code,
                          f"{len(code)} bytes given to Guest.from_code", success_post)  # fmt: skip
        return cls(program, **options)

    # ------------------------------------------------------------------ building the VM

    def reset(self) -> None:
        """Reload the program into fresh memory, registers and devices (all or nothing: if
        anything fails, the guest is left as it was)."""
        if hasattr(self, "hypervisor"):  # keep the switch as it was last set
            self._recording = self.hypervisor.recording
        built = self._build()
        (self.uc, self.cpu, self.machine, self.hypervisor, self._mappings) = built
        self._presence: set[int] = set()
        self._trap: tuple[str, ...] | None = None
        self._port = 0
        self._inline: int | None = None  # run's in-hook exits: how many more (-1: no limit)
        self._inline_exits = 0
        self._handled: Outcome | None = None
        self._last: Outcome | None = None
        self._inline_error: BaseException | None = None
        self._paused = False
        self._overrun: int | None = None
        self._record: SvmIoExit | VmxIoExit | None = None  # the stopped exit's, from the hook
        self._free = False  # run's free running: no count=, stops rolled back (_roll_back_after)
        self._stalled = False  # the watchdog stopped a free run: count= until the next exit
        self._counted: bool | None = None  # whether the last emu_start had count=
        self._journal: list[tuple[int, bytes]] | None = None
        self._journal_hook = None
        self._hook_error: BaseException | None = None
        self._context = self.uc.context_save()  # where a rolled-back stop keeps the CPU state
        long_mode = self.cpu.start_mode == 64
        self._hook_reads = {uses_rax: self.cpu.reader(_HOOK_READS[uses_rax, long_mode])
                            for uses_rax in (True, False)}  # fmt: skip
        # and what INS/OUTS read after those (the reader's C arrays made here, not at the
        # guest's first string exit)
        string_reads = _STRING_READS + (() if long_mode else _STRING_SELECTORS)
        self._string_reads = {uses_rax: self.cpu.reader(tuple(
            name for name in string_reads if name not in _HOOK_READS[uses_rax, long_mode]))
            for uses_rax in (True, False)}  # fmt: skip
        self._interrupt: int | None = None
        self.halted = False
        self.exits = 0
        self.outcomes: list[Outcome] = []
        self._hot: Counter = Counter()
        self.io_sites: dict[int, str] = self.program.io_instructions()

    def _build(self):
        prog = self.program
        if prog.mode not in (16, 32, 64):
            raise HvmioError(f"{prog.name}: mode must be 16, 32 or 64, got {prog.mode!r}")
        uc = Uc(UC_ARCH_X86, UC_MODE_64 if prog.mode == 64 else UC_MODE_32)
        machine = Machine(prog.mode, self.memory_size)
        memory = machine.memory.data
        cpu = machine.cpu = UnicornCpu(uc, prog.mode, memory)
        if self.attach is None:
            attach_pc(machine, disk=self._disk, uart_input=self._uart_input)
        else:
            self.attach(machine)
        if prog.load < 0 or prog.load + len(prog.code) > len(memory):
            raise HvmioError(f"{prog.name}: {len(prog.code)} bytes at {prog.load:#x} do not fit "
                             f"in {len(memory):#x} bytes of memory")  # fmt: skip
        ram = (ctypes.c_char * len(memory)).from_buffer(memory)
        uc.mem_map_ptr(0, len(memory), UC_PROT_ALL, ctypes.addressof(ram))
        mappings = [ram, *self._map_roms(uc, memory),  # what unicorn's pointers need alive
                    hook_io(uc, partial(self._trapped, True), partial(self._trapped, False),
                            self._on_hook_error)]  # fmt: skip
        memory[prog.load : prog.load + len(prog.code)] = prog.code
        uc.hook_add(UC_HOOK_INTR, self._on_interrupt)
        uc.ctl_exits_enabled(True)  # no `until` address: nothing for unicorn to invalidate
        uc.ctl_set_exits([])
        cs, ip = self.entry if self.entry is not None else (0, prog.load)
        if prog.mode == 16:  # real mode: clear CR0.PE, the reset IVT, real-mode segment loads
            uc.reg_write(ux.UC_X86_REG_CR0, uc.reg_read(ux.UC_X86_REG_CR0) & ~CR0_PE)
            uc.reg_write(ux.UC_X86_REG_IDTR, (0, 0, 0x3FF, 0))  # SDM Vol. 3A §9.1.4
            for seg in ("DS", "ES", "SS", "FS", "GS"):
                uc.reg_write(getattr(ux, f"UC_X86_REG_{seg}"), 0)
            uc.reg_write(ux.UC_X86_REG_CS, cs)
        elif self.entry is not None:
            raise HvmioError("entry=(cs, ip) is for real-mode (16-bit) guests")
        cpu.rip = ip
        cpu.rsp = prog.stack
        cpu.sync()
        hypervisor = Hypervisor(machine, self.vendor, self.path, self._recording,
                                timed=self.timed)  # fmt: skip
        return uc, cpu, machine, hypervisor, mappings

    def _map_roms(self, uc: Uc, memory: bytearray) -> list:
        kept = []
        for address, image in sorted(self.roms.items()):
            image = bytes(image)
            end = address + len(image)
            if address < 0 or not image:
                raise HvmioError(f"ROM at {address:#x}: needs an address ≥ 0 and some bytes")
            if end <= len(memory):
                memory[address:end] = image
            elif address >= len(memory) and address % PAGE_SIZE == 0:
                size = -(-len(image) // PAGE_SIZE) * PAGE_SIZE
                buffer = (ctypes.c_char * size).from_buffer(bytearray(image.ljust(size, b"\0")))
                uc.mem_map_ptr(address, size, UC_PROT_READ | UC_PROT_EXEC,
                               ctypes.addressof(buffer))  # fmt: skip
                kept.append(buffer)
            else:
                raise HvmioError(f"ROM {address:#x}..{end:#x} must lie inside RAM (0.."
                                 f"{len(memory):#x}) or start page-aligned above it")  # fmt: skip
        return kept

    @property
    def recording(self) -> bool:
        """The Hypervisor's recording switch (state diff + device events), and whether
        ``outcomes`` keeps each exit's Outcome: one switch."""
        return self.hypervisor.recording

    @recording.setter
    def recording(self, on: bool) -> None:
        self._recording = self.hypervisor.recording = on

    @property
    def devices(self):
        return self.machine.bus.devices

    # ------------------------------------------------------------------ unicorn's hooks

    def _on_hook_error(self, error: BaseException) -> None:
        self._hook_error = error  # raised once unicorn has returned

    def _trapped(self, is_in: bool, port: int, size: int, _value: int = 0) -> int | None:
        """Inside an I/O instruction (unicorn's IN or OUT hook, ``is_in`` bound): note what it
        is about to change, stop after it. An IN reads what this returns, all ones for None."""
        cpu, uc = self.cpu, self.uc
        if self._trap is not None:
            if self._journal is not None:  # after a rolled-back stop: undone with the rest
                return None
            self._overrun = cpu.reg_read(ux.UC_X86_REG_RIP if cpu.start_mode == 64
                                         else ux.UC_X86_REG_EIP)  # fmt: skip
            uc.emu_stop()
            return None
        self._hook_reads[not is_in or size < 4]()  # RIP now, before the instruction, and RAX
        # where it is used
        try:
            record, string = self._site(cpu, port)
        except BaseException as error:  # step re-raises it, once the CPU has stopped
            self._inline_error, self._trap = error, _STRING_CHANGES
            self._stop(uc)
            return None
        changes = _STRING_CHANGES if string else _IN_CHANGES if is_in else ()
        if self._inline is not None:
            if string:
                return self._string_in_hook(uc, is_in, port, size, record, string == _REP)
            return self._exit_in_hook(uc, is_in, port, size, changes, record)
        cpu.read(changes)  # the pre-state of what the instruction is about to change
        self._trap, self._port, self._record = changes, port, record
        if self._free and not (string == _REP or (string and is_in)):
            self._roll_back_after(uc)  # unicorn runs on past an IN, an OUT or a single OUTS
        else:  # count= stops right after; free, a REP element ends a block, and an INS
            uc.emu_stop()  # stops at its element's store
        return None

    def _stop(self, uc) -> None:
        """Stop the CPU with this instruction not yet run (the loop puts the state back)."""
        self.cpu.read(self._trap)  # what the loop will put back, unless the handler wrote it
        if self._free:
            self._roll_back_after(uc)
        else:
            uc.emu_stop()

    def _roll_back_after(self, uc) -> None:
        """Free running (no ``count=``), an ``emu_stop`` takes effect only further on: unicorn
        finishes this instruction and runs on to the next memory access (a store it performs)
        or the end of the block. So keep the CPU state as it is now, before the instruction,
        journal every store from here on, and undo both once the CPU has stopped."""
        uc.context_update(self._context)
        self._journal = []
        self._journal_hook = uc.hook_add(UC_HOOK_MEM_WRITE, self._on_write)
        uc.emu_stop()

    def _on_write(self, uc, _access, address, size, _value, _):
        memory = self.machine.memory.data
        if address + size <= len(memory):  # above RAM is ROM: a write there does not land
            self._journal.append((address, bytes(memory[address : address + size])))

    def _undo(self) -> None:
        """Put back what unicorn ran after the instruction it was stopped in (free running)."""
        uc, journal = self.uc, self._journal
        uc.hook_del(self._journal_hook)
        for address, old in reversed(journal):
            uc.mem_write(address, old)  # through unicorn: it drops code translated from there
        uc.context_restore(self._context)
        self._journal = self._journal_hook = None

    def _site(self, cpu: UnicornCpu, port: int) -> tuple[SvmIoExit | VmxIoExit, int]:
        """The exit record the silicon builds for the I/O instruction at CS:RIP, and its kind
        (0, ``_SINGLE`` or ``_REP`` string I/O). Kept per site, for every guest: the record is
        the same value while the same bytes sit at the same address in the same mode (and the
        vendor and port are the same), and the bytes are compared at every exit, so code
        written at run time gets a record of its own. Not while pages are marked not present,
        where the fetch may fault instead."""
        machine = self.machine
        rip = cpu.rip
        if cpu.start_mode == 64:  # long mode for good: CS base 0, so RIP is the address
            at, key = rip, (self.vendor, rip, port)
        else:
            machine.mode = cpu.mode
            at = machine.linear("CS", rip)
            key = (self.vendor, at, rip, machine.mode, port)
        memory = machine.memory
        site = _SITES.get(key)
        code = site[0] if site is not None else None
        if code is not None and memory.data[at : at + len(code)] == code and not memory.not_present:
            return site[1], site[2]
        record = intercept(machine, self.vendor, port)
        access = record.access()
        kind = (_REP if access.rep else _SINGLE) if access.string else 0
        end = at + (record.next_rip - record.rip) % (1 << 64)
        if end <= len(memory.data) and not memory.not_present:  # RAM only, like the exit paths
            keep(_SITES, key, (bytes(memory.data[at:end]), record, kind))
        return record, kind

    def _exit_in_hook(self, uc, is_in: bool, port: int, size: int, changes,
                      record: SvmIoExit | VmxIoExit) -> int | None:  # fmt: skip
        """``run``'s shortcut: handle the exit here, at the instruction, with the registers
        as they were before it. If the handler did exactly what the instruction does (RIP to
        the next instruction; for an IN, the value into AL/AX/EAX with the architectural
        merge or zero extension) the answer goes back to unicorn, which finishes the
        instruction itself: the same state, without a stop and resume. Anything else (a
        fault, a path that leaves RIP, the 2010 patch's missing zero extension) stops the
        CPU and the loop puts the handler's state in place, as for any exit."""
        cpu = self.cpu
        rip = cpu.rip  # as the instruction found them (read in the hook)
        rax = cpu.rax if is_in and size < 4 else 0  # a 32-bit IN zero-extends: RAX unread
        outcome = self._handle_in_hook(uc, port, record, changes)
        if outcome is None:
            return None
        if is_in:
            value = cpu.rax & _ONES[size]
            clean = (cpu.written() <= _IN_WRITES
                     and cpu.rax == merge_gpr(rax, value, size) & cpu.width)  # fmt: skip
        else:
            value, clean = None, cpu.written() <= _OUT_WRITES
        clean = (
            clean and outcome.done and outcome.completed and outcome.fault is None
            and cpu.rip == rip + (record.next_rip - record.rip)
        )  # fmt: skip
        if not clean:
            self._handled, self._trap = outcome, changes
            self._stop(uc)
            return None
        cpu.forget()  # unicorn now makes the same RAX and RIP itself
        self._last = outcome
        if self._inline > 0:
            self._count_down(uc)
        return value

    def _handle_in_hook(self, uc, port: int, record, changes) -> Outcome | None:
        """The exit, handled in the hook; None if the handler raised (the CPU is then being
        stopped, and ``step`` re-raises the error once it has)."""
        self._inline_exits += 1
        try:
            return self._handle(port, record)
        except BaseException as error:
            self._inline_error = error
            self._trap = changes
            self._stop(uc)
            return None

    def _count_down(self, uc) -> None:
        """One of run's ``max_exits`` used, in the hook: at the last, stop once this
        instruction is done."""
        self._inline -= 1
        if self._inline == 0:
            self._paused = True
            uc.emu_stop()

    def _string_in_hook(self, uc, is_in: bool, port: int, size: int, record, rep: bool
                        ) -> int | None:  # fmt: skip
        """``run``'s shortcut for INS and OUTS: the emulator does this exit's elements here,
        in the hook, and unicorn, which is inside the first of them, finishes that one with
        the registers set back by one element. unicorn works out the element's address before
        its IN hook and updates (R)CX and (R)SI/(R)DI after it (QEMU's ``gen_ins``,
        ``gen_outs``, ``GEN_REPZ``), so: an INS gets the first element's data back (it is
        stored where the emulator put it), the pointer is set one element short of the
        emulator's, and for REP the count one more. A batch that leaves RIP on the instruction
        (the page bound) loops back and exits again, as on the hardware. Anything else (a
        fault, an error, a register the instruction does not write) stops the CPU and the loop
        puts the handler's state in place, as for any exit."""
        cpu = self.cpu
        self._string_reads[not is_in or size < 4]()  # what the emulator reads, in one call
        rip, pointer = cpu.rip, "rdi" if is_in else "rsi"
        before = cpu.rdi if is_in else cpu.rsi
        outcome = self._handle_in_hook(uc, port, record, _STRING_CHANGES)
        if outcome is None:
            return self._stored(is_in, size, before, record.access().address_size)
        insn = outcome.instruction
        # length, mnemonic, size, is_in, string, rep, address size, segment
        length, address_size = insn[0], insn[6]
        step = -size if cpu.rflags & RFLAGS_DF else size  # one element of the pointer
        on = cpu.rip == rip + length if outcome.done else rep and cpu.rip == rip
        values = None  # (register, value one element short)
        if (on and outcome.completed and outcome.fault is None and outcome.elements
                and cpu.written() <= _STRING_WRITES[rep, is_in]):  # fmt: skip
            values = [(pointer, _one_short(getattr(cpu, pointer), step, address_size,
                                           cpu.width))]  # fmt: skip
            if rep:
                values.append(("rcx", _one_short(cpu.rcx, -1, address_size, cpu.width)))
        if values is None or self._inline == 1:
            # (at run's max_exits too: a stop in the hook lands before unicorn's update of
            # the registers, so the loop puts the handler's values in place)
            self._handled, self._trap = outcome, _STRING_CHANGES
            self._stop(uc)
            return self._stored(is_in, size, before, address_size)
        value = self._stored(is_in, size, before, address_size)
        cpu.forget()  # unicorn makes RIP itself, and the rest from these:
        cpu.write_now(values)
        self._last = outcome
        if self._inline > 0:  # (never the last: that one was stopped above)
            self._count_down(uc)
        return value

    def _stored(self, is_in: bool, size: int, pointer: int, address_size: int | None
                ) -> int | None:  # fmt: skip
        """For an INS: what is now at its first element, ES:(R)DI, which unicorn stores there
        once the hook returns (the emulator's data, or unicorn's placeholder 0), so that the
        store changes nothing. None (all ones) for an OUTS, or with the address size unknown."""
        if not is_in or address_size is None:
            return None
        machine = self.machine
        at = machine.linear("ES", pointer & WIDTH_MASK[address_size])
        return int.from_bytes(machine.memory.data[at : at + size], "little")

    def _on_interrupt(self, uc, vector, _):
        self._interrupt = vector
        uc.emu_stop()

    # ------------------------------------------------------------------ running

    def _run_to_exit(self) -> str:
        """Run the guest until it is stopped before an I/O instruction ("exit"), after an
        exit handled in the hook ("handled", or "paused" at run's max_exits), or halts."""
        cpu = self.cpu
        while True:
            begin = cpu.rip
            if self.machine.memory.not_present != self._presence:
                self._sync_presence()
            cpu.sync(skip_rip=True)
            self._trap = self._interrupt = self._overrun = None
            self._handled = self._inline_error = None
            self._paused, self._inline_exits = False, 0
            free = self._free and not self._stalled
            exits = self.exits
            try:
                if free:
                    _WATCHDOG.watch(self)
                    try:
                        self.uc.emu_start(begin, 0)  # unicorn drops its count= code itself
                    finally:
                        _WATCHDOG.unwatch(self)
                else:
                    if self._counted is False:  # blocks compiled without count='s check
                        self.uc.ctl_flush_tb()
                    self.uc.emu_start(begin, 0, count=self.instruction_limit)
                self._counted = not free
            except UcError as e:
                if self._journal is None:
                    self._cpu_stopped(e)
            if self._hook_error is not None:  # a bug in the loop, not the guest's doing
                error, self._hook_error = self._hook_error, None
                raise error
            if self._journal is not None:
                self._undo()
            if self.exits != exits:
                self._stalled = False
            if self._overrun is not None:
                raise HvmioError(f"{self.program.name}: the I/O instruction at {self._overrun:#x}"
                                 " ran without a VM exit (two in one run): this is a bug in "
                                 "the guest loop")  # fmt: skip
            if self._trap is not None:
                cpu.keep(self._trap)
                if self._handled is not None or self._inline_error is not None:
                    return "handled"
                if cpu.start_mode != 64:
                    self.machine.mode = cpu.mode
                return "exit"
            if self._paused:
                return "paused"
            if self._interrupt is not None:
                self._take_interrupt(self._interrupt)
                continue
            if self._halted_at(cpu.rip):
                self.halted = True
                return "halted"
            if free:  # the watchdog stopped it: count= bounds the stretch to the next exit
                self._stalled = True
                continue
            if self._inline_exits:  # the instruction count ran out, but not without exits
                continue
            raise GuestRunaway(f"{self.program.name} ran {self.instruction_limit:,} "
                               f"instructions without an I/O exit or HLT; it is at "
                               f"{self._where(cpu.rip)}")  # fmt: skip

    def _halted_at(self, rip: int) -> bool:
        """unicorn returns from HLT with RIP just past it."""
        at = self.machine.linear("CS", rip) - 1
        return 0 <= at < len(self.machine.memory.data) and self.machine.memory.data[at] == 0xF4

    def _where(self, rip: int) -> str:
        cpu = self.cpu
        at = self.machine.linear("CS", rip)
        code = bytes(self.machine.memory.data[at : at + 15])
        insn = next(disassembler(cpu.mode).disasm(code, rip, 1), None)
        text = f"{insn.mnemonic} {insn.op_str}".strip() if insn else "undecodable bytes"
        return f"CS:RIP {cpu.segment('CS').selector:#x}:{rip:#x} (linear {at:#x}: {text})"

    def _sync_presence(self) -> None:
        """Pages the Machine marks not present lose EXEC in unicorn: a fetch there faults."""
        wanted = set(self.machine.memory.not_present)
        for page in wanted ^ self._presence:
            start = page * PAGE_SIZE
            self.uc.mem_protect(start, PAGE_SIZE, _NOT_PRESENT if page in wanted else UC_PROT_ALL)
            self.uc.ctl_remove_cache(start, start + PAGE_SIZE)
        self._presence = wanted

    def _cpu_stopped(self, error: UcError) -> None:
        cpu = self.cpu
        rip = cpu.rip
        if error.errno == UC_ERR_FETCH_PROT:
            start = self.machine.linear("CS", rip)
            page = next((p for p in range(start // PAGE_SIZE, start // PAGE_SIZE + 2)
                         if p in self._presence), start // PAGE_SIZE)  # fmt: skip
            raise PageFault(max(start, page * PAGE_SIZE), False) from error
        raise HvmioError(f"{self.program.name}: the guest CPU stopped at {self._where(rip)}: "
                         f"{error}") from error  # fmt: skip

    def _take_interrupt(self, vector: int) -> None:
        if self.interrupts is None:
            raise HvmioError(f"{self.program.name} raised interrupt {vector:#x} at "
                             f"{self._where(self.cpu.rip)} and Guest(interrupts=...) is not "
                             "set")  # fmt: skip
        if self.interrupts == "ivt":
            self.deliver_real_mode(vector)
        else:
            self.interrupts(self, vector)

    def deliver_real_mode(self, vector: int) -> None:
        """Vector interrupt ``vector`` through the real-mode IVT, returning to RIP."""
        self.cpu.sync()
        realmode.deliver(self.uc, self.machine.memory.data, vector,
                         self.uc.reg_read(ux.UC_X86_REG_EIP))  # fmt: skip

    def step(self) -> Outcome | None:
        """Run to the next I/O exit and handle it; None once the guest has halted."""
        if self.halted:
            return None
        state = self._run_to_exit()
        if state == "exit":
            return self._handle(self._port, self._record)
        if state == "halted":
            return None
        if self._inline_error is not None:
            error, self._inline_error = self._inline_error, None
            raise error
        return self._handled if state == "handled" else self._last

    def _handle(self, port: int, record: SvmIoExit | VmxIoExit | None = None) -> Outcome:
        """The exit at RIP: the record the silicon builds (the hook's, unless the stages are
        timed, whose first stage is building it), then the hypervisor."""
        hypervisor = self.hypervisor
        start = None
        if hypervisor.timed or record is None:
            start = perf_counter_ns() if hypervisor.timed else None
            record = intercept(self.machine, self.vendor, port)
        outcome = hypervisor.handle(record, start)
        self.exits += 1
        self.machine.clock.ns += EXIT_QUANTUM_NS  # (advance's check, for a constant it passes)
        if outcome.fault is not None:
            raise HvmioError(f"{self.program.name}: the hypervisor injected {outcome.fault}")
        if outcome.diff is not None:  # a recorded exit (recording is on): kept
            self.outcomes.append(outcome)
            exit_rip = outcome.exit.rip
            if exit_rip not in self.io_sites:
                self.io_sites[exit_rip] = self._text_at(exit_rip)
        if self.exit_limit is not None and outcome.access is not None:
            self._hot[outcome.access.port, outcome.access.is_in, outcome.exit.rip] += 1
            if self.exits >= self.exit_limit:
                raise GuestRunaway(self._spin_report())
        return outcome

    def _text_at(self, rip: int) -> str:
        at = self.machine.linear("CS", rip)
        return decode_io(bytes(self.machine.memory.data[at : at + 15]), self.machine.mode)[2]

    def _spin_report(self) -> str:
        (port, is_in, rip), n = self._hot.most_common(1)[0]
        device = self.machine.bus.device_at(port)
        owner = f"the {device_name(device)} device" if device is not None else "no device"
        kind = "reads of" if is_in else "writes to"
        return (f"{self.program.name} made {self.exits:,} exits without halting (exit_limit); "
                f"{n:,} of them were {kind} port {port:#x} ({owner}) at "
                f"{self._where(rip)}: the guest is spinning on that port")  # fmt: skip

    def run(self, max_exits: int | None = None) -> RunResult:
        """Run until HLT (or until ``max_exits`` exits, a pause) and summarise.

        With recording and stage timing off, on the fast path, exits whose handling does
        exactly what the instruction does are handled inside unicorn's hook and the guest
        goes on without a stop (``_exit_in_hook``); every exit still reaches the hypervisor
        before its instruction, with the same result. Run to HLT (no ``max_exits``), the
        guest also runs free, without ``count=`` (see the module docstring)."""
        start = perf_counter_ns()
        hypervisor = self.hypervisor
        # (not for a subclass whose own step must see every exit)
        inline = (self.path == "fast" and not hypervisor.recording and not hypervisor.timed
                  and type(self).step is Guest.step)  # fmt: skip
        self._free = inline and max_exits is None
        try:
            while max_exits is None or self.exits < max_exits:
                if inline:
                    self._inline = -1 if max_exits is None else max_exits - self.exits
                if self.step() is None:
                    break
        finally:
            self._inline, self._free = None, False
        return self.result(perf_counter_ns() - start)

    def result(self, wall_ns: int = 0) -> RunResult:
        devices = self.devices
        post = tuple(devices["post"].codes) if "post" in devices else ()
        counters = self.hypervisor.counters
        return RunResult(
            program=self.program.name, vendor=self.vendor, path=self.path, exits=self.exits,
            by_path={k: counters[k] for k in ("fast", "emulate") if counters[k]},
            post_codes=post, uart_text=devices["uart"].text if "uart" in devices else "",
            halted=self.halted,
            success=self.halted and bool(post) and post[-1] == self.program.success_post,
            faults=tuple(self.hypervisor.injected), wall_ns=wall_ns,
        )  # fmt: skip

    def read_u64(self, address: int) -> int:
        return int.from_bytes(self.machine.memory.read(address, 8), "little")
