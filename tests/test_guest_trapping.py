"""Guests written to defeat a static sweep: every I/O instruction the CPU executes exits, before
it executes, at the address the manuals say, under both vendors and on every path.

The guests are assembled here with nasm. Each is also run on bare unicorn with its own IN/OUT
hooks (no hypervisor, no project code): the sequence of I/O instructions unicorn executes is
the reference the exits must match, and capstone, not our decoder, says what sits at each
exit's RIP.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from capstone import CS_ARCH_X86, CS_MODE_16, CS_MODE_32, CS_MODE_64, Cs
from unicorn import UC_ARCH_X86, UC_HOOK_INSN, UC_MODE_32, UC_MODE_64, Uc
from unicorn import x86_const as ux

from hvmio_lab import PageFault, decode_instruction
from hvmio_lab.guest import Guest
from hvmio_lab.machine import Segment

VENDORS = ["svm", "vmx"]
PATHS = ["fast", "emulate", "seed2010"]
EVERYWHERE = [(v, p) for v in VENDORS for p in PATHS]
_CS = {16: CS_MODE_16, 32: CS_MODE_32, 64: CS_MODE_64}


def nasm(source: str, bits: int, tmp_path) -> bytes:
    """Assemble ``source`` (flat binary) with nasm; the tests need it, so no nasm fails."""
    assert shutil.which("nasm"), "nasm is needed to build the test guests (apt-get install nasm)"
    src, out = tmp_path / "guest.asm", tmp_path / "guest.bin"
    src.write_text(f"bits {bits}\n{source}\n")
    subprocess.run(["nasm", "-f", "bin", "-o", str(out), str(src)], check=True)
    return out.read_bytes()


def bare_unicorn(code: bytes, mode: int, origin: int, cs: int = 0, stack: int = 0x7000,
                 answers: dict[int, int] | None = None, limit: int = 10_000):  # fmt: skip
    """Run ``code`` on unicorn alone. Returns (linear address, port, is_in, value) for every
    I/O element unicorn executes: the CPU's own account, with no exits at all."""
    uc = Uc(UC_ARCH_X86, UC_MODE_64 if mode == 64 else UC_MODE_32)
    uc.mem_map(0, 2 << 20)
    uc.mem_write(origin, code)
    if mode == 16:
        uc.reg_write(ux.UC_X86_REG_CR0, uc.reg_read(ux.UC_X86_REG_CR0) & ~1)
        for seg in ("DS", "ES", "SS", "FS", "GS"):
            uc.reg_write(getattr(ux, f"UC_X86_REG_{seg}"), 0)
        uc.reg_write(ux.UC_X86_REG_CS, cs)
    uc.reg_write(ux.UC_X86_REG_RSP if mode == 64 else ux.UC_X86_REG_ESP, stack)
    seen = []

    def where(uc):
        ip = uc.reg_read(ux.UC_X86_REG_RIP if mode == 64 else ux.UC_X86_REG_EIP)
        return ((uc.reg_read(ux.UC_X86_REG_CS) << 4) if mode == 16 else 0) + ip

    def on_in(uc, port, size, _):
        seen.append((where(uc), port, True, None))
        return (answers or {}).get(port, (1 << (8 * size)) - 1)

    def on_out(uc, port, size, value, _):
        seen.append((where(uc), port, False, value))

    uc.hook_add(UC_HOOK_INSN, on_in, None, 1, 0, ux.UC_X86_INS_IN)
    uc.hook_add(UC_HOOK_INSN, on_out, None, 1, 0, ux.UC_X86_INS_OUT)
    uc.emu_start(origin, 0, count=limit)  # a 32/64-bit unicorn starts at EIP = begin
    return seen


def exits_of(guest: Guest) -> list:
    """(linear RIP, port, is_in) of each exit. At each, capstone must see an I/O instruction
    at RIP, and the record must agree with what our own decoder makes of the bytes."""
    out = []
    while (outcome := guest.step()) is not None:
        rip = outcome.exit.rip
        linear = guest.machine.linear("CS", rip)
        code = bytes(guest.machine.memory.data[linear : linear + 15])
        insn = next(Cs(CS_ARCH_X86, _CS[guest.machine.mode]).disasm(code, rip, 1))
        assert insn.mnemonic.split()[0].rstrip("bwd") in ("in", "out", "ins", "outs"), insn
        assert outcome.exit.next_rip == rip + insn.size
        ours = decode_instruction(code, guest.machine.mode).access(outcome.access.port)
        assert outcome.exit.access().agrees_with(ours)
        out.append((linear, outcome.access.port, outcome.access.is_in))
    return out


def bare_sites(seen) -> list:
    """(linear address, port, is_in) of each I/O instruction unicorn ran (no REP here)."""
    return [(linear, port, is_in) for linear, port, is_in, _ in seen]


# ---------------------------------------------------------------- the sweep-defeating guests

JUMP_INTO_BYTES = """
org 0x7C00
    mov al, 0xAA
    jmp short over
    db 0xB8          ; a sweep reads B8 E6 80 as mov ax, 0x80E6 and misses the OUT
over:
    out 0x80, al
    hlt
"""


@pytest.mark.parametrize("vendor, path", EVERYWHERE)
def test_a_jump_into_the_middle_of_bytes_exits_at_the_out(tmp_path, vendor, path):
    code = nasm(JUMP_INTO_BYTES, 16, tmp_path)
    over = 0x7C00 + code.index(b"\xe6\x80")
    guest = Guest.from_code(code, vendor=vendor, path=path)
    assert over not in guest.program.io_instructions()  # the sweep is fooled…
    outcome = guest.step()  # …the CPU is not
    assert (outcome.exit.rip, outcome.access.port, outcome.access.is_in) == (over, 0x80, False)
    assert outcome.exit.next_rip == over + 2
    assert guest.step() is None and guest.result().success
    assert guest.devices["post"].codes == [0xAA]
    assert bare_sites(bare_unicorn(code, 16, 0x7C00)) == [(over, 0x80, False)]


DATA_BEFORE_IO = """
org 0x7C00
    mov dx, 0x3FD
    jmp short code
    db 0x0F          ; data: a sweep reads 0F EC as one instruction and misses IN AL, DX
code:
    in al, dx        ; UART line status
    mov al, 0xAA
    out 0x80, al
    hlt
"""


@pytest.mark.parametrize("vendor, path", EVERYWHERE)
def test_data_before_an_io_instruction_does_not_hide_it(tmp_path, vendor, path):
    code = nasm(DATA_BEFORE_IO, 16, tmp_path)
    at = 0x7C00 + code.index(b"\x0f") + 1
    guest = Guest.from_code(code, vendor=vendor, path=path)
    assert at not in guest.program.io_instructions()
    exits = exits_of(guest)
    assert exits == [(at, 0x3FD, True), (at + 3, 0x80, False)]
    assert exits == bare_sites(bare_unicorn(code, 16, 0x7C00))
    assert guest.result().success


SELF_WRITTEN = """
org 0x7C00
    mov byte [0x6000], 0xE6   ; out 0x80, al
    mov byte [0x6001], 0x80
    mov byte [0x6002], 0xC3   ; ret
    mov al, 0x11
    call 0x6000
    mov byte [0x6000], 0xEE   ; rewrite it: out dx, al; ret
    mov byte [0x6001], 0xC3
    mov dx, 0x80
    mov al, 0xAA
    call 0x6000
    hlt
"""


@pytest.mark.parametrize("vendor, path", EVERYWHERE)
def test_code_the_guest_writes_and_then_runs_exits(tmp_path, vendor, path):
    code = nasm(SELF_WRITTEN, 16, tmp_path)
    guest = Guest.from_code(code, vendor=vendor, path=path)
    exits = exits_of(guest)
    assert exits == [(0x6000, 0x80, False), (0x6000, 0x80, False)]
    assert exits == bare_sites(bare_unicorn(code, 16, 0x7C00))
    assert guest.devices["post"].codes == [0x11, 0xAA] and guest.result().success


FAR_JUMP = """
org 0
    jmp 0x07C0:next  ; the classic boot idiom: CS = 0x07C0, IP counts from 0
next:
    mov ax, cs
    mov ds, ax
    mov al, [value]
    out 0x80, al
    hlt
value: db 0xAA
"""


@pytest.mark.parametrize("vendor, path", EVERYWHERE)
def test_a_far_jump_to_cs_07c0_exits_at_the_ip_offset(tmp_path, vendor, path):
    code = nasm(FAR_JUMP, 16, tmp_path)
    out_ip = code.index(b"\xe6\x80")
    guest = Guest.from_code(code, vendor=vendor, path=path)
    outcome = guest.step()
    assert guest.cpu.segment("CS") == Segment(0x07C0, 0x7C00)
    # the record carries IP (an offset in CS), and the hardware found the OUT at CS.base + IP
    assert (outcome.exit.rip, outcome.exit.next_rip) == (out_ip, out_ip + 2)
    assert guest.step() is None and guest.result().success
    assert bare_sites(bare_unicorn(code, 16, 0x7C00)) == [(0x7C00 + out_ip, 0x80, False)]


FS_GS_STRINGS = """
org 0x10000
    mov ecx, 0xC0000100      ; IA32_FS_BASE
    mov eax, 0x30000
    xor edx, edx
    wrmsr
    mov ecx, 0xC0000101      ; IA32_GS_BASE
    mov eax, 0x40000
    wrmsr
    mov dx, 0x3F8
    mov rsi, 0x100
    mov rcx, 3
    fs rep outsb             ; reads FS.base + 0x100, not linear 0x100
    mov rsi, 0x100
    mov rcx, 2
    gs rep outsb
    mov al, 0xAA
    out 0x80, al
    hlt
"""


@pytest.mark.parametrize("vendor, path", EVERYWHERE)
def test_fs_and_gs_bases_in_64_bit_mode_reach_string_io(tmp_path, vendor, path):
    code = nasm(FS_GS_STRINGS, 64, tmp_path)
    guest = Guest.from_code(code, mode=64, origin=0x10000, vendor=vendor, path=path)
    memory = guest.machine.memory
    memory.write(0x100, b"no")  # what a flat (wrong) segment would send
    memory.write(0x30100, b"FS!")
    memory.write(0x40100, b"GS")
    first = guest.step()
    assert first.access.string and first.access.segment == "FS"
    assert guest.cpu.segment("FS").base == 0x30000 and guest.cpu.segment("GS").base == 0x40000
    while guest.step() is not None:
        pass
    assert guest.devices["uart"].text == "FS!GS"
    assert guest.result().success
    assert _bare_string_bytes(code) == b"FS!GS"  # unicorn alone sends the same bytes


def _bare_string_bytes(code: bytes) -> bytes:
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.mem_map(0, 2 << 20)
    uc.mem_write(0x10000, code)
    uc.mem_write(0x100, b"no")
    uc.mem_write(0x30100, b"FS!")
    uc.mem_write(0x40100, b"GS")
    uc.reg_write(ux.UC_X86_REG_RSP, 0x80000)
    sent = bytearray()
    uc.hook_add(UC_HOOK_INSN, lambda uc, port, size, value, _: sent.append(value)
                if port == 0x3F8 else None, None, 1, 0, ux.UC_X86_INS_OUT)  # fmt: skip
    uc.emu_start(0x10000, 0, count=1000)
    return bytes(sent)


# ---------------------------------------------------------------- fetch faults come first

NOT_PRESENT = """
org 0x10000
    mov dx, 0x3F8
    jmp 0x11000 - 1 + {skip}
times 0x1000 - 1 - ($ - $$) db 0x90
    db 0x3E                  ; a DS prefix on the last byte of the present page…
    in al, dx                ; …and the IN's opcode on the next page, not present
    hlt
"""


@pytest.mark.parametrize("straddle", [True, False], ids=["straddling", "on-the-page"])
@pytest.mark.parametrize("vendor, path", EVERYWHERE)
def test_a_not_present_code_page_faults_before_any_exit(tmp_path, vendor, path, straddle):
    code = nasm(NOT_PRESENT.format(skip=0 if straddle else 1), 32, tmp_path)
    guest = Guest.from_code(code, mode=32, origin=0x10000, vendor=vendor, path=path,
                            uart_input=b"k")  # fmt: skip
    guest.machine.memory.set_present(0x11000, False)
    with pytest.raises(PageFault) as fault:
        guest.step()
    assert fault.value.address == 0x11000 and not fault.value.write
    assert list(guest.devices["uart"].input) == [ord("k")]  # the byte was not consumed
    assert guest.exits == 0 and sum(guest.hypervisor.counters.values()) == 0


# ---------------------------------------------------------------- what the vCPU reports

SELECTOR_AFTER_EAX = """
org 0x7C00
    mov eax, 0x12340000
    out 0x80, al
    hlt
"""


def test_selectors_read_right_after_eax_holds_0x12340000(tmp_path):
    guest = Guest.from_code(nasm(SELECTOR_AFTER_EAX, 16, tmp_path))
    outcome = guest.step()
    assert guest.cpu.rax == 0x12340000  # read first, as the old loop's order never did
    assert guest.cpu.segment("CS") == Segment(0, 0)
    assert guest.cpu.segment("SS") == Segment(0, 0)
    assert outcome.exit.rip == 0x7C06


MANY_IN_ONE_BLOCK = """
org 0x7C00
    mov al, 1
    out 0x80, al
    inc al
    out 0x80, al
    inc al
    out 0x80, al
    in al, 0x80
    mov al, 0xAA
    out 0x80, al
    hlt
"""


@pytest.mark.parametrize("vendor, path", EVERYWHERE)
def test_each_io_instruction_of_one_block_exits_before_the_next_runs(tmp_path, vendor, path):
    code = nasm(MANY_IN_ONE_BLOCK, 16, tmp_path)
    guest = Guest.from_code(code, vendor=vendor, path=path)
    codes = []
    while (outcome := guest.step()) is not None:
        codes.append((outcome.exit.rip, tuple(guest.devices["post"].codes)))
    sites = [s[0] for s in bare_sites(bare_unicorn(code, 16, 0x7C00))]
    assert [rip for rip, _ in codes] == sites
    assert codes[0][1] == (1,) and codes[1][1] == (1, 2) and codes[2][1] == (1, 2, 3)
    assert guest.devices["post"].codes == [1, 2, 3, 0xAA]


REP_INSB = """
org 0x7C00
    cld
    mov dx, 0x3F8
    mov di, 0x6000
    mov cx, 3
    rep insb                 ; three bytes from the UART's receive buffer
    mov al, 0xAA
    out 0x80, al
    hlt
"""


@pytest.mark.parametrize("vendor, path", EVERYWHERE)
def test_rep_insb_lands_where_unicorn_alone_puts_it(tmp_path, vendor, path):
    code = nasm(REP_INSB, 16, tmp_path)
    guest = Guest.from_code(code, vendor=vendor, path=path, uart_input=b"abc")
    guest.machine.memory.write(0x6000, b"----")
    assert guest.run().success
    cpu = guest.cpu
    got = (guest.machine.memory.read(0x6000, 4), cpu.rdi & 0xFFFF, cpu.rcx & 0xFFFF)
    # unicorn alone, its IN hook answering the same bytes in order
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    uc.mem_map(0, 1 << 20)
    uc.mem_write(0x7C00, code)
    uc.mem_write(0x6000, b"----")
    uc.reg_write(ux.UC_X86_REG_CR0, uc.reg_read(ux.UC_X86_REG_CR0) & ~1)
    for seg in ("CS", "DS", "ES", "SS"):
        uc.reg_write(getattr(ux, f"UC_X86_REG_{seg}"), 0)
    answers = iter(b"abc")
    uc.hook_add(UC_HOOK_INSN, lambda uc, port, size, _: next(answers) if port == 0x3F8 else 0,
                None, 1, 0, ux.UC_X86_INS_IN)  # fmt: skip
    uc.emu_start(0x7C00, 0, count=1000)
    want = (bytes(uc.mem_read(0x6000, 4)), uc.reg_read(ux.UC_X86_REG_DI),
            uc.reg_read(ux.UC_X86_REG_CX))  # fmt: skip
    assert got == want == (b"abc-", 0x6003, 0)
