"""The emulator's execution, against unicorn 2.1.4 as the oracle, plus the cases that matter.

unicorn runs the same instruction from the same state. Its UC_HOOK_INSN hooks for IN and
OUT fire for INS and OUTS too, once per element (see test_unicorn_routes_string_io_through
_its_hooks), so both sides see the same device values and we compare registers, memory and
the device traffic. unicorn runs a REP to the end in one go; our emulator stops at page
boundaries and leaves RIP on the instruction, so we re-enter it until RIP moves.

What unicorn cannot show, and how it is covered instead:
- page faults (unicorn has no guest paging here): the #PF tests below;
- 32-bit-mode segment bases (flat in unicorn's 32-bit mode): bases are tested in 16-bit
  mode (selector × 16) and with FS/GS in 64-bit mode;
- a 32-bit pointer wrapping at 2^32 (the guest has 2 MiB): the 16-bit wrap is tested,
  and in 64-bit mode the zero extension of ESI/EDI/ECX;
- a null segment prefix after FS/GS in 64-bit mode: QEMU lets it cancel FS/GS (unicorn
  issue 1781), where AMD APM Vol. 3 §1.2.4 and real CPUs ignore it (see test_decoder.py), so
  the strategy draws one segment prefix.
"""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import CODE_AT, Refusing, Scripted, machine_with
from unicorn import UC_ARCH_X86, UC_HOOK_INSN, UC_MODE_16, UC_MODE_32, UC_MODE_64, Uc
from unicorn import x86_const as ux

from hvmio_lab import DeviceError, GuestMemoryError, InvalidInstruction, Machine, PageFault
from hvmio_lab.decoder import OPCODES, FetchedBytes, decode_instruction
from hvmio_lab.devices import Uart16550
from hvmio_lab.emulator import Execution, batch_elements, emulate, execute, fetch
from hvmio_lab.machine import PAGE_SIZE, RFLAGS_DF

os.environ.setdefault("UC_IGNORE_REG_BREAK", "1")

MEMORY = 2 << 20
U64 = (1 << 64) - 1
ONES = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFF_FFFF}


def run_to_completion(machine: Machine, limit: int = 10_000) -> list[Execution]:
    """Re-enter the instruction, exit after exit, until RIP moves (as a guest would)."""
    runs = []
    while True:
        run = emulate(machine)
        runs.append(run)
        assert run.fault is None, run.fault
        if run.done:
            return runs
        assert len(runs) < limit


# ---------------------------------------------------------------- unicorn, the oracle

UC_MODES = {16: UC_MODE_16, 32: UC_MODE_32, 64: UC_MODE_64}
UC_GPRS = {
    64: {"rax": ux.UC_X86_REG_RAX, "rcx": ux.UC_X86_REG_RCX, "rdx": ux.UC_X86_REG_RDX,
         "rsi": ux.UC_X86_REG_RSI, "rdi": ux.UC_X86_REG_RDI, "rip": ux.UC_X86_REG_RIP},
    32: {"rax": ux.UC_X86_REG_EAX, "rcx": ux.UC_X86_REG_ECX, "rdx": ux.UC_X86_REG_EDX,
         "rsi": ux.UC_X86_REG_ESI, "rdi": ux.UC_X86_REG_EDI, "rip": ux.UC_X86_REG_EIP},
}  # fmt: skip
UC_GPRS[16] = UC_GPRS[32]
UC_SELECTORS = {"ES": ux.UC_X86_REG_ES, "SS": ux.UC_X86_REG_SS, "DS": ux.UC_X86_REG_DS,
                "FS": ux.UC_X86_REG_FS, "GS": ux.UC_X86_REG_GS}  # fmt: skip
UC_BASES_64 = {"FS": ux.UC_X86_REG_FS_BASE, "GS": ux.UC_X86_REG_GS_BASE}


def code_at(mode: int) -> int:
    """Where the differential runs put the code: out of reach of the pointers they draw."""
    return CODE_AT if mode == 16 else 0x1F8000


def run_unicorn(mode, code, regs, rflags, segments, memory, answers):
    """One run of ``code`` on unicorn; returns (registers, memory, device log)."""
    uc = Uc(UC_ARCH_X86, UC_MODES[mode])
    uc.mem_map(0, MEMORY)
    uc.mem_write(0, bytes(memory))
    uc.mem_write(code_at(mode), code)
    answers, log = list(answers), []

    def on_in(uc, port, size, _):
        value = answers.pop(0) & ONES[size] if answers else 0
        log.append(("in", port, size, value))
        return value

    def on_out(uc, port, size, value, _):
        log.append(("out", port, size, value & ONES[size]))

    uc.hook_add(UC_HOOK_INSN, on_in, None, 1, 0, ux.UC_X86_INS_IN)
    uc.hook_add(UC_HOOK_INSN, on_out, None, 1, 0, ux.UC_X86_INS_OUT)
    for name, value in regs.items():
        uc.reg_write(UC_GPRS[mode][name], value)
    for name, value in segments.items():
        if mode == 16:
            uc.reg_write(UC_SELECTORS[name], value)
        elif mode == 64 and name in UC_BASES_64:
            uc.reg_write(UC_BASES_64[name], value)
    uc.reg_write(ux.UC_X86_REG_EFLAGS, rflags)
    uc.reg_write(UC_GPRS[mode]["rip"], code_at(mode))
    uc.emu_start(code_at(mode), code_at(mode) + len(code), timeout=5_000_000)
    out = {name: uc.reg_read(reg) for name, reg in UC_GPRS[mode].items()}
    return out, bytes(uc.mem_read(0, MEMORY)), log


def run_ours(mode, code, regs, rflags, segments, memory, answers):
    machine = Machine(mode)
    machine.memory.data[:] = memory
    machine.memory.write(code_at(mode), code)
    for name, value in regs.items():
        setattr(machine.cpu, name, value)
    for name, value in segments.items():
        if mode == 16:
            machine.load_segment(name, value)
        elif mode == 64 and name in UC_BASES_64:
            machine.cpu.set_segment(name, 0, value)
    machine.cpu.rflags = rflags
    machine.cpu.rip = code_at(mode)
    device = Scripted(answers)
    insn = decode_instruction(code, mode)
    port = insn.port if insn.immediate else regs["rdx"] & 0xFFFF
    machine.bus.attach(range(port, port + 1), device)
    runs = run_to_completion(machine)
    out = {name: getattr(machine.cpu, name) for name in UC_GPRS[mode]}
    if mode != 64:
        out = {name: value & 0xFFFF_FFFF for name, value in out.items()}
    return out, bytes(machine.memory.data), device.log, runs


def pointer(draw, address_size: int, mode: int) -> int:
    """A pointer near a wrap point or a page boundary, with junk above the address size."""
    if address_size == 16:
        near = (0, 1, 2, 3, 0x0FFE, 0x0FFF, 0x7FFF, 0xFFFC, 0xFFFD, 0xFFFE, 0xFFFF)
        low = draw(st.sampled_from(near) | st.integers(0, 0xFFFF))
        junk_bits = 16 if mode != 64 else 48
    else:
        page = draw(st.integers(0x20, 0xF0))
        offset = draw(
            st.sampled_from((0, 1, 2, 3, 0xFFC, 0xFFD, 0xFFE, 0xFFF)) | st.integers(0, 0xFFF)
        )
        low = page * PAGE_SIZE + offset
        junk_bits = 32 if mode == 64 and address_size == 32 else 0
    junk = draw(st.integers(0, (1 << junk_bits) - 1)) if junk_bits else 0
    return low | (junk << address_size)


@st.composite
def io_cases(draw):
    mode = draw(st.sampled_from((16, 32, 64)))
    opcode = draw(st.sampled_from(tuple(OPCODES)))
    op = OPCODES[opcode]
    prefixes = []
    if draw(st.booleans()):
        prefixes.append(0x66)
    if draw(st.booleans()):
        prefixes.append(0x67)
    prefixes += draw(st.sampled_from(([], [0xF3], [0xF2])))
    prefixes += draw(st.sampled_from(([], [0x26], [0x2E], [0x36], [0x3E], [0x64], [0x65])))
    prefixes = draw(st.permutations(prefixes))
    if mode == 64:  # REX right before the opcode, where REX.W could matter
        prefixes += draw(st.sampled_from(([], [0x40], [0x48], [0x41])))
    code = (
        bytes(prefixes)
        + bytes([opcode])
        + (bytes([draw(st.integers(0, 255))]) if op.immediate else b"")
    )
    insn = decode_instruction(code, mode)
    width = 64 if mode == 64 else 32
    asize = insn.address_size
    count = draw(st.integers(0, 40))
    count_junk = draw(st.integers(0, (1 << (width - asize)) - 1)) if asize < width else 0
    regs = {
        "rax": draw(st.integers(0, (1 << width) - 1)),
        "rcx": count | (count_junk << asize),
        "rdx": draw(st.integers(0, 0xFFFF)) | (draw(st.integers(0, (1 << (width - 16)) - 1)) << 16),
        "rsi": pointer(draw, asize, mode),
        "rdi": pointer(draw, asize, mode),
    }
    segments = {}
    if mode == 16:
        segments = {
            name: draw(st.integers(0x2000, 0xF000)) for name in ("ES", "SS", "DS", "FS", "GS")
        }
    elif mode == 64:
        segments = {
            name: draw(st.integers(0, 0xF0)) * PAGE_SIZE + draw(st.integers(0, 8))
            for name in UC_BASES_64
        }
    rflags = 0x2 | (RFLAGS_DF if draw(st.booleans()) else 0)
    answers = draw(st.lists(st.integers(0, 0xFFFF_FFFF), min_size=41, max_size=41))
    seed = draw(st.integers(0, 255))
    return mode, code, regs, rflags, segments, answers, seed


def memory_image(seed: int) -> bytearray:
    pattern = bytes((seed + 7 * i) & 0xFF for i in range(251))  # 251 is prime: no page period
    return bytearray((pattern * (MEMORY // len(pattern) + 1))[:MEMORY])


@settings(max_examples=150, deadline=None)
@given(io_cases())
def test_execution_matches_unicorn(case):
    mode, code, regs, rflags, segments, answers, seed = case
    memory = memory_image(seed)
    ours = run_ours(mode, code, regs, rflags, segments, memory, answers)
    theirs = run_unicorn(mode, code, regs, rflags, segments, memory, answers)
    if mode == 16:
        theirs[0]["rip"] &= 0xFFFF
    assert ours[0] == theirs[0], code.hex(" ")
    assert ours[2] == theirs[2], code.hex(" ")
    assert ours[1] == theirs[1], code.hex(" ")
    runs = ours[3]
    assert sum(run.elements for run in runs) == len(ours[2])
    assert all(not run.done for run in runs[:-1]) and runs[-1].done


def test_unicorn_routes_string_io_through_its_hooks():
    """The premise of the comparison: in unicorn 2.1.4 INS/OUTS call the IN/OUT hooks."""
    regs = {"rax": 0, "rcx": 3, "rdx": 0x60, "rsi": 0x8000, "rdi": 0x9000}
    _, memory, log = run_unicorn(
        64, b"\xf3\x6c", regs, 0x2, {}, bytearray(MEMORY), [0xA1, 0xA2, 0xA3]
    )
    assert log == [("in", 0x60, 1, 0xA1), ("in", 0x60, 1, 0xA2), ("in", 0x60, 1, 0xA3)]
    assert memory[0x9000:0x9003] == b"\xa1\xa2\xa3"
    _, _, log = run_unicorn(
        32, b"\xf3\x66\x6f", regs, 0x2, {}, bytearray(b"\x11\x22" * (MEMORY // 2)), []
    )
    assert log == [("out", 0x60, 2, 0x2211)] * 3


@pytest.mark.parametrize("mode", [16, 32, 64])
def test_f2_repeats_in_unicorn_too(mode):
    regs = {"rax": 0, "rcx": 3, "rdx": 0x60, "rsi": 0x8000, "rdi": 0x9000}
    out, _, log = run_unicorn(mode, b"\xf2\x6c", regs, 0x2, {}, bytearray(MEMORY), [1, 2, 3])
    assert len(log) == 3 and out["rcx"] == 0
    ours = run_ours(mode, b"\xf2\x6c", regs, 0x2, {}, bytearray(MEMORY), [1, 2, 3])
    assert ours[2] == log and ours[0]["rcx"] == 0


# ---------------------------------------------------------------- the rules, one by one


def test_in_merges_8_and_16_bit_and_zero_extends_32_bit():
    for code, size, expected in [
        (b"\xec", 1, 0xFFFF_FFFF_FFFF_FF5A),
        (b"\x66\xed", 2, 0xFFFF_FFFF_FFFF_A55A),
        (b"\xed", 4, 0x0000_0000_1234_A55A),
    ]:
        machine = machine_with(code, rax=U64, rdx=0x60)
        machine.bus.attach(range(0x60, 0x61), Scripted([0x1234_A55A]))
        run = emulate(machine)
        assert machine.cpu.rax == expected
        assert run.values == (0x1234_A55A & ONES[size],) and run.done and run.elements == 1


def test_out_sends_only_size_bytes_and_an_unclaimed_in_reads_all_ones():
    machine = machine_with(b"\xe6\x80\xec", rax=0x1122_3344_5566_7788, rdx=0xABCD_0071)
    post = Scripted()
    machine.bus.attach(range(0x80, 0x81), post)
    emulate(machine)
    assert post.log == [("out", 0x80, 1, 0x88)]
    run = emulate(machine)  # port 0x71 from DX's low 16 bits: nothing there
    assert run.access.port == 0x71 and run.values == (0xFF,)
    assert machine.cpu.rax == 0x1122_3344_5566_77FF and machine.cpu.rip == CODE_AT + 3


def test_ip_wraps_at_16_bits_in_16_bit_mode():
    machine = Machine(16)
    machine.load_segment("CS", 0x1000)
    machine.memory.write(0x1000 * 16 + 0xFFFF, b"\xec")
    machine.cpu.rip = 0xFFFF
    assert emulate(machine).done and machine.cpu.rip == 0x0000


def test_rep_insw_fills_a_buffer_in_page_bounded_batches():
    data = list(range(0x100, 0x100 + 3000))
    machine = machine_with(b"\xf3\x66\x6d", rcx=3000, rdx=0x1F0, rdi=0x8800)
    machine.bus.attach(range(0x1F0, 0x1F1), Scripted(data))
    runs = run_to_completion(machine)
    assert [run.elements for run in runs] == [1024, 1976]  # 0x8800..0x9000, then 0x9000..
    assert (
        machine.cpu.rip == CODE_AT + 3 and machine.cpu.rcx == 0 and machine.cpu.rdi == 0x8800 + 6000
    )
    assert machine.memory.read(0x8800, 6000) == b"".join(v.to_bytes(2, "little") for v in data)


def test_df_1_runs_backwards_and_stops_at_the_start_of_the_page():
    machine = machine_with(b"\xf3\x6d", 32, rcx=5, rdx=0x60, rdi=0x9004, rflags=0x2 | RFLAGS_DF)
    machine.bus.attach(range(0x60, 0x61), Scripted([0xA, 0xB, 0xC, 0xD, 0xE]))
    first = emulate(machine)
    assert first.elements == 2 and not first.done  # 0x9004 and 0x9000, then the page ends
    assert machine.cpu.rdi == 0x8FFC and machine.cpu.rcx == 3 and machine.cpu.rip == CODE_AT
    run_to_completion(machine)
    assert machine.cpu.rdi == 0x9004 - 20 and machine.cpu.rcx == 0
    words = [int.from_bytes(machine.memory.read(0x9004 - 4 * i, 4), "little") for i in range(5)]
    assert words == [0xA, 0xB, 0xC, 0xD, 0xE]


def test_an_element_straddling_two_pages_is_a_batch_of_its_own():
    machine = machine_with(b"\xf3\x66\x6d", rcx=3, rdx=0x60, rdi=0x8FFF)
    machine.bus.attach(range(0x60, 0x61), Scripted([0x1122, 0x3344, 0x5566]))
    assert [run.elements for run in run_to_completion(machine)] == [1, 2]
    assert machine.memory.read(0x8FFF, 6) == bytes.fromhex("2211 4433 6655")


def test_16_bit_wrap_keeps_the_upper_bits_and_wraps_the_offset():
    machine = machine_with(b"\xf3\x6d", 16, rcx=0xBEEF_0003, rdx=0x60, rdi=0xDEAD_FFFE)
    machine.load_segment("ES", 0x2000)
    machine.bus.attach(range(0x60, 0x61), Scripted([0x1111, 0x2222, 0x3333]))
    runs = run_to_completion(machine)
    assert [run.elements for run in runs] == [1, 2]  # the wrap ends a batch
    assert machine.cpu.rdi == 0xDEAD_0004 and machine.cpu.rcx == 0xBEEF_0000
    assert machine.memory.read(0x2FFFE, 2) == b"\x11\x11"
    assert machine.memory.read(0x20000, 4) == b"\x22\x22\x33\x33"


def test_32_bit_address_size_in_64_bit_mode_zero_extends_rsi_and_rcx():
    machine = machine_with(
        b"\x67\xf3\x6e", rcx=0xFFFF_FFFF_0000_0002, rdx=0x80, rsi=0xDEAD_0000_0000_8000
    )
    post = Scripted()
    machine.bus.attach(range(0x80, 0x81), post)
    machine.memory.write(0x8000, b"hi")
    run_to_completion(machine)
    assert machine.cpu.rsi == 0x8002 and machine.cpu.rcx == 0
    assert [value for *_, value in post.log] == [ord("h"), ord("i")]


def test_zero_count_only_advances_rip():
    machine = machine_with(
        b"\x67\xf3\x6c", rcx=0xFFFF_FFFF_0000_0000, rdx=0x3F8, rdi=0x7777_0000_0000_9000
    )
    machine.bus.attach(range(0x3F8, 0x3F9), device := Scripted([1]))
    before = machine.snapshot()
    run = emulate(machine)
    assert run.done and run.elements == 0 and run.values == ()
    assert machine.diff(before).registers == (
        ("rip", CODE_AT, CODE_AT + 3),
    )  # RCX not even zero-extended
    assert device.log == []


@pytest.mark.parametrize(
    ("mode", "code", "rcx"), [(64, b"\xf3\x6c", U64), (16, b"\xf3\x6c", 0xFFFF_FFFF)]
)
def test_a_huge_count_never_hangs(mode, code, rcx):
    machine = machine_with(code, mode, rcx=rcx, rdx=0x60, rdi=0x9000)
    machine.bus.attach(range(0x60, 0x61), Scripted())
    start = time.perf_counter()
    run = emulate(machine)
    assert time.perf_counter() - start < 1.0
    assert run.elements == PAGE_SIZE and not run.done and machine.cpu.rip == CODE_AT
    assert machine.cpu.rcx == rcx - PAGE_SIZE


# ---------------------------------------------------------------- faults: side-effect safety


def uart_machine(code: bytes, **regs: int) -> tuple[Machine, Uart16550]:
    machine = machine_with(code, rdx=0x3F8, **regs)
    uart = Uart16550(input=b"AB")
    machine.bus.attach(uart.ports, uart)
    return machine, uart


def test_a_page_fault_leaves_the_uart_byte_unconsumed():
    machine, uart = uart_machine(b"\xf3\x6c", rcx=2, rdi=0x9000)
    machine.memory.set_present(0x9000, False)
    before = machine.snapshot()
    run = emulate(machine)
    assert isinstance(run.fault, PageFault) and run.fault.address == 0x9000 and run.fault.write
    assert run.elements == 0 and not run.done
    assert list(uart.input) == [ord("A"), ord("B")]  # checked before the device was read
    assert not machine.diff(before)  # RIP, RCX, RDI all as they were


def test_registers_show_the_elements_done_before_the_fault():
    machine, uart = uart_machine(b"\xf3\x6c", rcx=3, rdi=0x8FFF)
    machine.memory.set_present(0x9000, False)
    first = emulate(machine)
    assert first.elements == 1 and first.values == (ord("A"),) and first.fault is None
    second = emulate(machine)
    assert second.fault is not None and second.fault.address == 0x9000
    assert (machine.cpu.rcx, machine.cpu.rdi, machine.cpu.rip) == (2, 0x9000, CODE_AT)
    assert list(uart.input) == [ord("B")]
    machine.memory.set_present(0x9000, True)  # the guest's #PF handler maps the page...
    run_to_completion(machine)  # ...and the restarted instruction finishes
    assert machine.memory.read(0x8FFF, 2) == b"AB" and machine.cpu.rcx == 0


def test_outs_from_a_missing_page_sends_nothing():
    machine, uart = uart_machine(b"\x6e", rsi=0x9000)
    machine.memory.set_present(0x9000, False)
    run = emulate(machine)
    assert run.fault is not None and not run.fault.write and uart.output == b""


def test_a_straddling_element_faults_on_its_second_page():
    machine = machine_with(b"\x66\x6d", rdx=0x60, rdi=0x8FFF)
    machine.bus.attach(range(0x60, 0x61), device := Scripted([0x1234]))
    machine.memory.set_present(0x9000, False)
    run = emulate(machine)
    assert run.fault is not None and run.fault.address == 0x9000 and device.log == []


def test_a_device_error_propagates_with_rip_unchanged():
    machine, _ = uart_machine(b"\x66\xed", rax=0x55)
    with pytest.raises(DeviceError, match="8 bits wide"):
        emulate(machine)
    assert machine.cpu.rip == CODE_AT and machine.cpu.rax == 0x55


def test_a_device_error_mid_batch_commits_the_elements_done():
    class Tired(Scripted):
        def read(self, port, size):
            if len(self.log) == 2:
                raise DeviceError("tired")
            return super().read(port, size)

    machine = machine_with(b"\xf3\x6c", rcx=5, rdx=0x60, rdi=0x9000)
    machine.bus.attach(range(0x60, 0x61), Tired([7, 8, 9]))
    with pytest.raises(DeviceError):
        emulate(machine)
    assert machine.memory.read(0x9000, 2) == b"\x07\x08"
    assert (machine.cpu.rcx, machine.cpu.rdi, machine.cpu.rip) == (3, 0x9002, CODE_AT)


# ---------------------------------------------------------------- fetch and refusals


def test_fetch_stops_at_a_not_present_page_and_faults_only_if_needed():
    machine = machine_with(b"", rip=0x8FFE)
    machine.cpu.rip = 0x8FFE
    machine.memory.write(0x8FFE, b"\x66\xe5")
    machine.memory.set_present(0x9000, False)
    code = fetch(machine)
    assert isinstance(code, FetchedBytes) and code == b"\x66\xe5"
    with pytest.raises(PageFault, match="0x9000"):
        emulate(machine)  # the imm8 is on the missing page
    machine.memory.write(0x8FFE, b"\x66\xed")
    assert emulate(machine).done  # complete before the page ends: no fault


@pytest.mark.parametrize(
    ("code", "error", "message"),
    [
        (b"\xf0\xec", InvalidInstruction, "LOCK"),
        (b"\x90", InvalidInstruction, "not an I/O opcode"),
        (b"\x66" * 15 + b"\xec", InvalidInstruction, "15-byte"),
    ],
)
def test_refusals_through_emulate(code, error, message):
    machine = machine_with(code)
    before = machine.snapshot()
    with pytest.raises(error, match=message):
        emulate(machine)
    assert not machine.diff(before)


def test_bytes_that_run_off_the_end_of_memory():
    machine = Machine(64)
    machine.memory.write(MEMORY - 1, b"\xe4")
    machine.cpu.rip = MEMORY - 1
    with pytest.raises(GuestMemoryError):
        emulate(machine)


def test_fetch_on_a_missing_first_page():
    machine = machine_with(b"\xec")
    machine.memory.set_present(CODE_AT, False)
    with pytest.raises(PageFault, match=f"{CODE_AT:#x}"):
        emulate(machine)


# ---------------------------------------------------------------- small parts


@pytest.mark.parametrize(
    ("linear", "pointer", "count", "size", "asize", "down", "expected"),
    [
        (0x9000, 0x9000, 5000, 1, 64, False, 4096),
        (0x9FFE, 0x9FFE, 10, 2, 64, False, 1),
        (0x9FFF, 0x9FFF, 10, 2, 64, False, 1),  # straddles
        (0x9FFF, 0x9FFF, 10, 2, 64, True, 1),  # straddles upward, even with DF = 1
        (0x9004, 0x9004, 10, 4, 32, True, 2),
        (0x9003, 0x9003, 10, 4, 32, True, 1),
        (0x2FFFE, 0xFFFE, 10, 1, 16, False, 2),  # the 16-bit wrap ends the batch
        (0x20001, 0x0001, 10, 1, 16, True, 2),
        (0x9000, 0x9000, 0x7, 4, 64, False, 7),
    ],
)
def test_batch_elements(linear, pointer, count, size, asize, down, expected):
    assert batch_elements(linear, pointer, count, size, asize, down) == expected


def test_execute_takes_a_decoded_instruction_and_describes_itself():
    machine = machine_with(b"", 32, rcx=2, rdx=0x60, rdi=0x9000)
    machine.bus.attach(range(0x60, 0x61), Scripted([0x41, 0x42]))
    run = execute(machine, decode_instruction(b"\xf3\x6c", 32))
    assert str(run) == "rep insb byte ptr es:[edi], dx: 2 elements [41 42], done, RIP advanced"
    assert run.access.string and run.access.rep and run.access.address_size == 32


def test_recording_off_gives_the_same_machine():
    results = []
    for recording in (True, False):
        machine = machine_with(b"\xf3\x66\x6d", rcx=300, rdx=0x60, rdi=0x8F00)
        machine.bus.attach(range(0x60, 0x61), Scripted(range(300)))
        machine.bus.recording = recording
        run_to_completion(machine)
        results.append(
            (bytes(machine.memory.data[0x8F00:0x9200]), machine.cpu.rdi, len(machine.bus.log))
        )
    assert results[0][:2] == results[1][:2]
    assert (results[0][2], results[1][2]) == (300, 0)


def test_a_refused_first_element_changes_no_register():
    machine = machine_with(
        b"\x67\xf3\x6c", rcx=0xAAAA_0000_0000_0002, rdx=0x3F8, rdi=0xBBBB_0000_0000_9000
    )
    machine.bus.attach(range(0x3F8, 0x3F9), Refusing())
    before = machine.snapshot()
    with pytest.raises(DeviceError):
        emulate(machine)
    assert not machine.diff(before)  # no zero extension of RDI/RCX either


class Wide(Scripted):
    """A sloppy device returning more bits than asked: the bus masks, and so must we."""

    def read(self, port, size):
        return 0xDEAD_BE00 | len(self.log.append(("in", port, size, 0)) or self.log)


@pytest.mark.parametrize("recording", [True, False])
def test_device_values_are_masked_to_the_access_size(recording):
    machine = machine_with(b"\xf3\x6c", rcx=3, rdx=0x60, rdi=0x9000)
    machine.bus.attach(range(0x60, 0x61), Wide())
    machine.bus.recording = recording
    run = emulate(machine)
    assert run.values == (0x01, 0x02, 0x03)
    assert machine.memory.read(0x9000, 3) == b"\x01\x02\x03"


def test_rex_w_beats_66_in_unicorn_too():
    """``66 48 ED``: capstone says ``in ax, dx``, the SDM and unicorn a 32-bit IN (test_decoder)."""
    regs = {"rax": U64, "rcx": 0, "rdx": 0x60, "rsi": 0, "rdi": 0}
    theirs = run_unicorn(64, b"\x66\x48\xed", regs, 0x2, {}, bytearray(MEMORY), [0x1234_5678])
    ours = run_ours(64, b"\x66\x48\xed", regs, 0x2, {}, bytearray(MEMORY), [0x1234_5678])
    assert theirs[2] == ours[2] == [("in", 0x60, 4, 0x1234_5678)]
    assert theirs[0]["rax"] == ours[0]["rax"] == 0x1234_5678


def test_the_chapter_04_answers_are_what_the_emulator_does():
    from hvmio_lab.checks import ch04

    machine = machine_with(b"\xf3\x6d", 16, rcx=5, rdx=0x60, rdi=0x0004, rflags=0x2 | RFLAGS_DF)
    machine.bus.attach(range(0x60, 0x61), Scripted(range(5)))
    runs = run_to_completion(machine)
    assert (machine.cpu.rdi, machine.cpu.rcx) == (ch04.DI_04_2, ch04.CX_04_2)
    assert [run.elements for run in runs] == [3, 2]  # the wrap ends the first batch
    assert ch04.ex_04_2.judge(machine.cpu.rdi, machine.cpu.rcx).ok
    insn = decode_instruction(bytes.fromhex("66 67 F3 6D"), 16)
    assert ch04.ex_04_1.judge(insn.text, insn.address_size).ok
    practice = ch04.practice_04(seed=4, n=5)
    assert all(practice.judge(i, q.answer).ok for i, q in enumerate(practice.questions, 1))


# ---------------------------------------------------------------- REP batches and the 16-bit wrap


def test_batch_ends_where_a_16_bit_pointer_wraps_even_mid_page():
    # ES base 0x20010 (selector 0x2001): DI = 0xFFFE is linear 0x3000E, mid-page, yet only two
    # elements fit before DI wraps to 0 (linear 0x20010), so the batch must stop there.
    assert batch_elements(0x3000E, 0xFFFE, 10, 1, 16, False) == 2
    assert batch_elements(0x3000C, 0xFFFC, 10, 2, 16, False) == 2
    assert batch_elements(0x20015, 0x0005, 10, 1, 16, True) == 6  # down to DI = 0, then wrap


@pytest.mark.parametrize(("code", "di", "rflags"), [
    pytest.param(b"\xf3\x6c", 0xFFFE, 0x2, id="rep-insb-up"),  # upwards across the wrap
    pytest.param(b"\xf3\x6d", 0xFFFC, 0x2, id="rep-insw-up"),
    pytest.param(b"\xf3\x6c", 0x0001, 0x402, id="rep-insb-down"),  # DF = 1, down across it
])  # fmt: skip
def test_a_16_bit_rep_ins_wraps_like_unicorn_with_an_unaligned_segment(code, di, rflags):
    regs = {"rax": 0, "rcx": 6, "rdx": 0x60, "rsi": 0, "rdi": di}
    segments = {"ES": 0x2001, "SS": 0x3000, "DS": 0x3000, "FS": 0x3000, "GS": 0x3000}
    memory = bytearray(2 << 20)
    answers = list(range(0xA1, 0xA7))
    ours = run_ours(16, code, regs, rflags, segments, memory, answers)
    theirs = run_unicorn(16, code, regs, rflags, segments, memory, answers)
    theirs[0]["rip"] &= 0xFFFF
    assert ours[0] == theirs[0] and ours[2] == theirs[2]
    assert ours[1] == theirs[1]  # the bytes landed at the same places
    assert ours[0]["rcx"] == 0


# ---------------------------------------------------------------- FS/GS bases, REP count 0, #PF


@pytest.mark.parametrize(("prefix", "segment"), [(0x64, "FS"), (0x65, "GS")], ids=["fs", "gs"])
def test_outs_reads_through_the_fs_or_gs_base_in_64_bit_mode(prefix, segment):
    """In 64-bit mode FS and GS keep their bases (SDM Vol. 1 §3.4.4): `rep outsb fs:[rsi]`
    reads base + RSI. unicorn runs the same bytes as the oracle."""
    code = bytes([prefix, 0xF3, 0x6E])
    regs = {"rax": 0, "rcx": 3, "rdx": 0x80, "rsi": 0x0100, "rdi": 0}
    memory = bytearray(2 << 20)
    memory[0x5100:0x5103] = b"fs!"  # base + RSI
    memory[0x0100:0x0103] = b"ds?"  # RSI alone: what a flat reading would send
    bases = {"FS": 0, "GS": 0, segment: 0x5000}
    ours = run_ours(64, code, regs, 0x2, bases, memory, [])
    theirs = run_unicorn(64, code, regs, 0x2, bases, memory, [])
    assert [value for *_, value in ours[2]] == list(b"fs!")
    assert ours[2] == theirs[2] and ours[0] == theirs[0]



def test_the_emulator_reports_only_the_byte_an_out_al_sends():
    machine = machine_with(b"\xee")  # out dx, al
    machine.cpu.rax, machine.cpu.rdx = 0x1122_3344_5566_7788, 0x40
    machine.bus.attach(range(0x40, 0x41), device := Scripted())
    run = emulate(machine)
    assert run.values == (0x88,) and device.writes == [(0x40, 1, 0x88)]


# ------------------------------------------------------- one linear(), with the 64-bit rule


@pytest.mark.parametrize("segment", ["ES", "CS", "SS", "DS"])
def test_machine_linear_ignores_es_cs_ss_ds_bases_in_64_bit_mode(segment):
    """SDM Vol. 1 §3.4.2.1: in 64-bit mode these bases are treated as 0, whatever a vCPU
    reports; FS and GS keep theirs. One rule, in Machine.linear, for every path."""
    machine = Machine(64)
    machine.cpu.set_segment(segment, 0x10, 0x5000)
    machine.cpu.set_segment("FS", 0x18, 0x7000)
    assert machine.linear(segment, 0x1234) == 0x1234
    assert machine.linear("FS", 0x1234) == 0x8234
    real = Machine(16)
    real.load_segment(segment, 0x100)
    assert real.linear(segment, 0x10) == 0x1010  # selector × 16 + offset


def test_the_silicon_and_the_emulator_fetch_at_the_same_place_with_a_cs_base_in_64_bit_mode():
    """Before, hardware.py fetched at CS.base + RIP through Machine.linear while the emulator
    used its own flat rule: a vCPU reporting a true CS base split them."""
    from hvmio_lab.hardware import intercept

    machine = machine_with(b"\xec", rdx=0x60)  # in al, dx
    machine.cpu.set_segment("CS", 0x10, 0x5000)
    machine.memory.write(0x5000 + CODE_AT, b"\x90")  # a NOP where a based fetch would land
    machine.bus.attach(range(0x60, 0x61), Scripted([0x5A]))
    assert intercept(machine, "svm").access().port == 0x60
    assert emulate(machine).done and machine.cpu.rax & 0xFF == 0x5A
