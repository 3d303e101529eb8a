"""Real guest code on unicorn: every program, every vendor and path, same guest-visible result."""

import pytest

from hvmio_lab import GuestRunaway, HvmioError
from hvmio_lab.guest import Guest, Program, load_program, programs
from hvmio_lab.machine import Segment

VENDORS = ["svm", "vmx"]
PATHS = ["fast", "emulate", "seed2010"]
SECTOR = 512


@pytest.fixture(scope="module")
def runs():
    """Each program run once per vendor and path, with recording off (as a throughput run)."""
    out = {}
    for name in programs():
        for vendor in VENDORS:
            for path in PATHS:
                guest = Guest(name, vendor, path, recording=False)
                out[name, vendor, path] = (guest, guest.run())
    return out


def test_the_catalogue():
    assert programs() == ["ata_read", "pmtimer_poll", "port_hammer", "uart_hello"]
    with pytest.raises(HvmioError, match="no guest program"):
        load_program("nope")


@pytest.mark.parametrize("name", ["ata_read", "pmtimer_poll", "port_hammer", "uart_hello"])
def test_every_path_reaches_success_with_the_same_guest_view(runs, name):
    views = set()
    for vendor in VENDORS:
        for path in PATHS:
            guest, result = runs[name, vendor, path]
            assert result.success, result
            assert result.halted and result.post_codes[-1] == 0xAA
            memory = guest.machine.memory
            result_word = memory.read(0x9008 if name == "port_hammer" else 0x9000, 8)  # not TSC
            views.add((result.uart_text, result.post_codes, result.exits, result_word,
                       memory.read(0x20000, 2 * 4096)))  # fmt: skip
    assert len(views) == 1  # UART text, POST codes, exit count, result word, buffers


def test_uart_hello_exit_count_follows_the_program(runs):
    """Per character: one LSR poll (the model's transmitter is always empty) and one THR write;
    then one POST write."""
    message = load_program("uart_hello").params["message"]
    _, result = runs["uart_hello", "svm", "fast"]
    assert result.uart_text == message
    assert result.exits == 2 * len(message) + 1
    assert result.by_path == {"fast": 2 * len(message) + 1}


def test_port_hammer_exit_count(runs):
    params = load_program("port_hammer").params
    guest, result = runs["port_hammer", "vmx", "fast"]
    assert result.exits == params["iterations"] + 1
    assert guest.read_u64(params["iterations_addr"]) == params["iterations"]


def test_pmtimer_poll_result_is_the_lcg(runs):
    p = load_program("pmtimer_poll").params
    value = p["lcg_seed"]
    for _ in range(p["rounds"] * p["work_per_round"]):
        value = (value * p["lcg_multiplier"] + p["lcg_increment"]) % (1 << 64)
    guest, result = runs["pmtimer_poll", "svm", "emulate"]
    assert guest.read_u64(p["result_addr"]) == value == p["expected_result"]
    assert result.exits == p["rounds"] + 1


def test_ata_read_reads_the_disk_and_batches_by_page(runs):
    p = load_program("ata_read").params
    guest, result = runs["ata_read", "svm", "fast"]
    image = guest.devices["ata"].image
    count, lba = p["sector_count"], p["lba"]
    buffer = guest.machine.memory.read(p["buffer"], count * SECTOR)
    assert buffer == image[lba * SECTOR : (lba + count) * SECTOR]
    # 1 IDENTIFY block + `count` sectors, each one `rep insw` whose 512 bytes sit in one page:
    # one emulated exit each; everything else is a non-string IN/OUT on the fast path.
    assert result.by_path["emulate"] == 1 + count


def test_stepping_shows_what_each_exit_did():
    guest = Guest("uart_hello", "svm", "fast")
    first = guest.step()
    assert first.access.port == 0x3FD and first.access.is_in  # the LSR poll comes first
    site = next(a for a, text in guest.program.io_instructions().items() if text == "in al, dx")
    assert first.diff.register("rip") == (site, site + 1)  # past the one byte EC
    second = guest.step()
    assert second.access.port == 0x3F8 and not second.access.is_in
    assert guest.devices["uart"].text == "h"
    guest.reset()
    assert guest.devices["uart"].text == "" and guest.exits == 0


@pytest.mark.parametrize("recording, timed", [(True, False), (True, True), (False, True),
                                              (False, False)])  # fmt: skip
def test_outcomes_keeps_every_exit_while_recording_and_none_otherwise(recording, timed):
    """The stepper and the trace writer read ``outcomes``: one Outcome per exit, in order, each
    with its state diff, while recording; nothing kept with recording off, timed or not (a
    long unrecorded run must not grow)."""
    guest = Guest("uart_hello", "vmx", "emulate", recording=recording, timed=timed)
    result = guest.run()
    assert result.success and result.exits > 10
    if recording:
        assert len(guest.outcomes) == result.exits
        assert all(o.diff is not None and o.diff.register("rip") for o in guest.outcomes)
        assert guest.outcomes[0].access.port == 0x3FD  # the LSR poll comes first
    else:
        assert guest.outcomes == []


def test_a_guest_without_exits_is_stopped():
    spin = Program("spin", 64, 0x10000, 0x80000, b"\xeb\xfe", "jmp $", 0xAA, {})
    guest = Guest(spin)
    with pytest.raises(GuestRunaway, match="without an I/O exit"):
        guest.step()


# ---------------------------------------------------------------- what firmware needs


def _nasm(source: str, bits: int, tmp_path) -> bytes:
    import subprocess

    (tmp_path / "g.asm").write_text(f"bits {bits}\n{source}\n")
    subprocess.run(["nasm", "-f", "bin", "-o", str(tmp_path / "g.bin"), str(tmp_path / "g.asm")],
                   check=True)  # fmt: skip
    return (tmp_path / "g.bin").read_bytes()


PROTECTED_MODE = """
org 0x7C00
    cli
    lgdt [gdtr]
    mov eax, cr0
    or eax, 1
    mov cr0, eax
    jmp dword 0x08:(pm - 0x7000)    ; code segment based at 0x7000
bits 32
pm:
    mov ax, 0x10                    ; data segment based at 0x30000
    mov ds, ax
    mov al, [5]
    out 0x80, al
    hlt
align 8
gdt:
    dq 0
    dw 0xFFFF, 0x7000
    db 0x00, 0x9A, 0xCF, 0x00       ; code: base 0x7000, 4 GiB, 32-bit (D = 1)
    dw 0xFFFF, 0x0000
    db 0x03, 0x92, 0xCF, 0x00       ; data: base 0x30000
gdtr:
    dw 23
    dd gdt
"""


@pytest.mark.parametrize("path", PATHS)
def test_a_switch_to_protected_mode_uses_the_descriptor_bases(tmp_path, path):
    code = _nasm(PROTECTED_MODE, 16, tmp_path)
    guest = Guest.from_code(code, path=path)
    guest.machine.memory.write(0x30005, b"\xaa")
    outcome = guest.step()
    assert guest.machine.mode == 32
    assert guest.cpu.segment("CS") == Segment(0x08, 0x7000)
    assert guest.cpu.segment("DS") == Segment(0x10, 0x30000)
    out_linear = 0x7C00 + code.index(b"\xe6\x80")
    assert outcome.exit.rip == out_linear - 0x7000  # EIP is an offset in CS
    assert guest.step() is None and guest.devices["post"].codes == [0xAA]


INT_THROUGH_THE_IVT = """
org 0x7C00
    mov word [0x42 * 4], handler
    mov word [0x42 * 4 + 2], 0
    mov al, 0x5A
    sti
    int 0x42
    pushf
    pop bx
    mov al, 0xAA
    out 0x80, al
    hlt
handler:
    pushf
    pop cx                           ; FLAGS inside the handler: IF clear
    out 0x80, al
    iret
"""


def test_real_mode_int_goes_through_the_ivt(tmp_path):
    code = _nasm(INT_THROUGH_THE_IVT, 16, tmp_path)
    guest = Guest.from_code(code, interrupts="ivt")
    result = guest.run()
    assert result.success and result.post_codes == (0x5A, 0xAA)
    assert not guest.cpu.rcx & 1 << 9  # IF cleared on the way in
    assert guest.cpu.rbx & 1 << 9  # and IRET put the pushed FLAGS (IF set) back
    seen = []
    guest = Guest.from_code(code, interrupts=lambda g, vector: seen.append(vector)
                            or g.deliver_real_mode(vector))  # fmt: skip
    assert guest.run().success and seen == [0x42]
    with pytest.raises(HvmioError, match="raised interrupt 0x42"):
        Guest.from_code(code).run()


@pytest.mark.parametrize("recording", [True, False], ids=["stepped", "in-hook"])
def test_a_guest_spinning_on_a_port_is_stopped_with_what_it_spins_on(tmp_path, recording):
    spin = Guest.from_code(_nasm("org 0x7C00\nagain: in al, 0x61\njmp again", 16, tmp_path),
                           exit_limit=300, recording=recording)  # fmt: skip
    with pytest.raises(GuestRunaway, match=r"300 exits.*300 of them were reads of port 0x61 "
                       r"\(no device\) at CS:RIP 0x0:0x7c00 .*in al, 0x61"):  # fmt: skip
        spin.run()
    assert spin.exits == 300 and spin.cpu.rip == 0x7C02  # the 300th IN is done, as stepped


def test_a_guest_running_without_exits_is_stopped_where_it_runs():
    guest = Guest.from_code(b"\x90\xeb\xfe", instruction_limit=10_000)  # nop; jmp $
    with pytest.raises(GuestRunaway, match=r"10,000 instructions .* at CS:RIP 0x0:0x7c01 "
                       r"\(linear 0x7c01: jmp 0x7c01\)"):  # fmt: skip
        guest.step()


def test_firmware_options_memory_roms_entry_and_devices():
    code = bytes.fromhex("b0aa e680 f4")  # mov al, 0xAA; out 0x80, al; hlt
    image = bytes(0x10000 - 0x10) + code.ljust(0x10, b"\x90")  # 64 KiB, code at offset FFF0
    attached = []

    def attach(machine):
        from hvmio_lab.devices import attach_pc

        attach_pc(machine)
        attached.append(machine)

    stub = Program("rom", 16, 0x500, 0x7000, b"\xf4", "a ROM does the work", 0xAA)
    guest = Guest(stub, memory_size=128 << 20, attach=attach, entry=(0xF000, 0xFFF0),
                  roms={0xF0000: image, 0xFFFF0000: image})  # fmt: skip
    assert attached == [guest.machine] and guest.machine.memory.size == 128 << 20
    assert guest.cpu.segment("CS") == Segment(0xF000, 0xF0000)
    outcome = guest.step()
    assert outcome.exit.rip == 0xFFF2 and guest.run().success
    assert bytes(guest.uc.mem_read(0xFFFFFFF0, 5)) == code  # the alias above RAM


def test_reset_is_all_or_nothing():
    fail = []

    def attach(machine):
        if fail:
            raise HvmioError("no devices today")
        from hvmio_lab.devices import attach_pc

        attach_pc(machine)

    guest = Guest("uart_hello", attach=attach)
    guest.step()
    machine, exits = guest.machine, guest.exits
    fail.append(True)
    with pytest.raises(HvmioError, match="no devices today"):
        guest.reset()
    assert guest.machine is machine and guest.exits == exits == 1
    assert guest.step().access.port == 0x3F8  # it carries on where it was


@pytest.mark.parametrize("options, message", [
    ({"interrupts": "bios"}, "interrupts must be"),
    ({"exit_limit": 0}, "exit_limit must be"),
    ({"instruction_limit": 2.5}, "instruction_limit must be"),
    ({"instruction_limit": None}, "instruction_limit must be"),
])  # fmt: skip
def test_bad_guest_options_are_refused(options, message):
    with pytest.raises(HvmioError, match=message):
        Guest.from_code(b"\xf4", **options)


def test_from_code_refuses_nothing_and_a_bad_mode():
    with pytest.raises(HvmioError, match="no code"):
        Guest.from_code(b"")
    with pytest.raises(HvmioError, match="mode must be"):
        Guest.from_code(b"\xf4", mode=8)


def test_recorded_exit_diff_does_not_depend_on_memory_size():
    """The stepper's diff of an exit is the same with 2 MiB or 128 MiB of RAM."""
    diffs = []
    for size in (2 << 20, 128 << 20):
        guest = Guest("ata_read", memory_size=size)
        while (outcome := guest.step()) is not None and not outcome.access.string:
            pass
        diffs.append(outcome.diff)
    assert diffs[0] == diffs[1] and diffs[0].memory  # an INS wrote the IDENTIFY block


def test_your_own_code_steps_in_the_stepper(tmp_path):
    from hvmio_lab.widgets.stepper import ExitStepper

    code = _nasm("org 0x7C00\nmov dx, 0x3F8\nmov al, 'A'\nout dx, al\nmov al, 0xAA\n"
                 "out 0x80, al\nhlt", 16, tmp_path)  # fmt: skip
    stepper = ExitStepper(Guest.from_code(code))
    first = stepper.step()
    assert (first.access.port, first.exit.rip) == (0x3F8, 0x7C05)
    assert stepper.guest.devices["uart"].text == "A"
    assert any("out dx, al" in text for _, text in stepper.listing_lines())
    stepper.step()
    assert stepper.step() is None and stepper.guest.result().success


def test_a_snapshot_kept_while_the_guest_runs_still_diffs_right():
    from hvmio_lab.machine import register_values

    guest = Guest("uart_hello", recording=False)
    guest.step()
    before = register_values(guest.cpu)
    snapshot = guest.machine.snapshot()
    guest.step()  # the guest CPU runs: the snapshot reads and keeps every register first
    diff = guest.machine.diff(snapshot)
    after = register_values(guest.cpu)
    changed = tuple((n, before[n], after[n]) for n in before if before[n] != after[n])
    assert diff.registers == changed and diff.register("rip")


# ---------------------------------------------------------------- run's in-hook exits


def _final_state(guest):
    """Everything the guest can see, but the host's TSC (port_hammer times its loop)."""
    from hvmio_lab.machine import register_values

    registers = register_values(guest.cpu)
    memory = bytearray(guest.machine.memory.data)
    if guest.program.name == "port_hammer":
        for name in ("rax", "rdx", "r8", "r9", "r10", "rflags"):  # the TSC and its arithmetic
            registers.pop(name)
        at = guest.program.params["tsc_delta_addr"]
        memory[at : at + 8] = bytes(8)
    return (guest.exits, registers, bytes(memory), guest.devices["uart"].text,
            tuple(guest.devices["post"].codes), dict(guest.hypervisor.counters))  # fmt: skip


@pytest.mark.parametrize("name", ["port_hammer", "pmtimer_poll", "ata_read", "uart_hello"])
def test_run_ends_exactly_where_stepping_one_exit_at_a_time_ends(name):
    """run() handles clean fast-path exits inside unicorn's hook; step() stops for each one."""
    ran = Guest(name, "vmx", "fast", recording=False)
    ran.run()
    stepped = Guest(name, "vmx", "fast", recording=False)
    while stepped.step() is not None:
        pass
    assert _final_state(ran) == _final_state(stepped)


def _drive(guest, how: str) -> None:
    """To the end, free (``run``) or stopping at every exit (``step``)."""
    if how == "run":
        guest.run()
    else:
        while guest.step() is not None:
            pass


PARTIAL_REGISTERS = """
org 0x7C00
    mov eax, 0x12345678
    mov dx, 0x3FD
    in al, dx                ; merges: EAX = 0x123456xx
    mov ebx, eax
    mov dx, 0x3F8
    in ax, dx                ; the UART refuses 2 bytes: #GP, RIP stays, AX unchanged
    hlt
"""


def test_run_and_step_agree_on_merges_and_on_a_refused_access(tmp_path):
    code = _nasm(PARTIAL_REGISTERS, 16, tmp_path)
    results = []
    for drive in ("run", "step"):
        guest = Guest.from_code(code, vendor="svm", path="fast", recording=False)
        with pytest.raises(HvmioError, match="injected #GP"):
            _drive(guest, drive)
        results.append((guest.exits, guest.cpu.rip, guest.cpu.rax, guest.cpu.rbx))
    assert results[0] == results[1]
    exits, rip, rax, rbx = results[0]
    assert exits == 2 and rip == 0x7C00 + code.index(b"\xed")  # in ax, dx
    assert rbx == 0x12345660 and rax == rbx  # LSR 0x60 merged into AL; AX left alone


def test_run_pauses_at_max_exits_and_carries_on():
    guest = Guest("port_hammer", "svm", "fast", recording=False)
    assert guest.run(max_exits=10).exits == 10 and not guest.halted
    assert guest.run(max_exits=500).exits == 500
    assert guest.run().success


# ---------------------------------------------------------------- run's free running

STRING_IO = """
org 0x7C00
    cld
    mov si, text
    mov dx, 0x3F8
    mov cx, 3
    rep outsb                 ; 'abc'
    outsb                     ; 'd': a single OUTS, then a store and a register change
    mov [0x600], si           ; in the same block
    inc bx
    mov di, 0x700
    insb                      ; 'x' from the UART's input
    mov [0x602], di
    mov cx, 2
    rep insb                  ; 'yz'
    mov [0x604], cx
    mov al, 0xAA
    out 0x80, al
    hlt
text: db "abcd"
"""


def _visible(guest):
    from hvmio_lab.machine import register_values

    return (guest.exits, register_values(guest.cpu), bytes(guest.machine.memory.data),
            guest.devices["uart"].text, tuple(guest.devices["post"].codes))  # fmt: skip


def _differences(a, b) -> list[str]:
    """What differs between two ``_visible`` ends, short enough to read (and for pytest to
    print: a diff of two 2 MiB memories takes it minutes)."""
    fields = ("exits", "registers", "uart", "post")
    out = [f"{field}: {x!r} != {y!r}" for field, x, y in
           zip(fields, (a[0], a[1], a[3], a[4]), (b[0], b[1], b[3], b[4]), strict=True)
           if x != y]  # fmt: skip
    if a[2] != b[2]:
        at = next(i for i, (x, y) in enumerate(zip(a[2], b[2], strict=True)) if x != y)
        out.append(f"memory from {at:#x}: {a[2][at : at + 8].hex()} != {b[2][at : at + 8].hex()}")
    return out


def test_free_running_string_io_ends_as_stepped(tmp_path):
    """run() runs the guest without unicorn's instruction counter, so unicorn cannot stop
    right after an INS or OUTS: the loop keeps what the CPU was and undoes what ran past it."""
    code = _nasm(STRING_IO, 16, tmp_path)
    ends = []
    for drive in ("run", "step"):
        guest = Guest.from_code(code, vendor="vmx", path="fast", recording=False,
                                uart_input=b"xyz", exit_limit=100)  # fmt: skip
        _drive(guest, drive)
        assert guest.result().success
        ends.append(_visible(guest))
    assert _differences(ends[0], ends[1]) == []
    _exits, registers, memory, uart, post = ends[0]
    assert uart == "abcd" and post == (0xAA,)
    assert memory[0x700:0x703] == b"xyz"
    text = 0x7C00 + code.index(b"abcd")
    assert int.from_bytes(memory[0x600:0x602], "little") == text + 4  # SI past 'd'
    assert int.from_bytes(memory[0x602:0x604], "little") == 0x701
    assert memory[0x604:0x606] == bytes(2) and registers["rbx"] == 1


REFUSED_MID_BLOCK = """
org 0x7C00
    mov word [0x600], 0x1111
    mov dx, 0x3F8
    in ax, dx                 ; the UART refuses 2 bytes: #GP, the run stops here
    add word [0x600], 0x2222  ; the rest of the block must not have happened
    mov bx, 0x5555
    out 0x80, al
    hlt
"""


def test_a_refused_access_in_a_free_run_leaves_nothing_of_the_rest_of_its_block(tmp_path):
    code = _nasm(REFUSED_MID_BLOCK, 16, tmp_path)
    ends = []
    for drive in ("run", "step"):
        guest = Guest.from_code(code, vendor="svm", path="fast", recording=False)
        with pytest.raises(HvmioError, match="injected #GP"):
            _drive(guest, drive)
        ends.append(_visible(guest))
    assert _differences(ends[0], ends[1]) == []
    exits, registers, memory, uart, post = ends[0]
    assert exits == 1 and post == () and uart == ""
    assert registers["rip"] == 0x7C00 + code.index(b"\xed")  # in ax, dx (16-bit: no 66)
    assert memory[0x600:0x602] == (0x1111).to_bytes(2, "little") and registers["rbx"] == 0


LONG_COMPUTE = """
org 0x7C00
    mov ecx, 10000000         ; 20 M instructions: within the instruction limit
work:
    dec ecx
    jnz work
    mov al, 0xAA
    out 0x80, al
    hlt
"""


def test_a_free_run_that_computes_long_between_exits_still_ends(tmp_path, monkeypatch):
    from hvmio_lab.guest import loop

    monkeypatch.setattr(loop._Watchdog, "STALL_S", 0.01)  # the watchdog stops it many times
    code = _nasm(LONG_COMPUTE, 16, tmp_path)
    guest = Guest.from_code(code, recording=False)
    result = guest.run()
    assert result.success and guest.cpu.rcx == 0 and guest.exits == 1


def test_a_free_run_without_exits_is_stopped_where_it_runs(monkeypatch):
    from hvmio_lab.guest import loop

    monkeypatch.setattr(loop._Watchdog, "STALL_S", 0.01)
    guest = Guest.from_code(b"\x90\xeb\xfe", instruction_limit=10_000, recording=False)
    with pytest.raises(GuestRunaway, match=r"10,000 instructions .* at CS:RIP 0x0:0x7c01 "):
        guest.run()


# ---------------------------------------------------------------- unicorn's C API

def test_registers_read_through_the_c_api_as_the_binding_reads_them():
    """uc_api reads each register as the binding does, a 2-byte selector after a wide value
    included (unicorn writes only a register's own width into the caller's cell)."""
    import random

    from unicorn import UC_ARCH_X86, UC_MODE_64, Uc
    from unicorn import x86_const as ux

    from hvmio_lab.guest.uc_api import registers

    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    read, write, batch = registers(uc)
    rng = random.Random(2010)
    wide = [getattr(ux, f"UC_X86_REG_{n}") for n in
            ("RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RSP", "RBP", "R8", "R15", "RIP")]
    for reg in wide:
        uc.reg_write(reg, rng.getrandbits(64))
    write(ux.UC_X86_REG_R9, 0xFEDC_BA98_7654_3210)
    uc.reg_write(ux.UC_X86_REG_DS, 0x2B)
    ids = (*wide, ux.UC_X86_REG_R9, ux.UC_X86_REG_DS, ux.UC_X86_REG_CS)
    expected = [uc.reg_read(reg) for reg in ids]
    assert expected[-3] == 0xFEDC_BA98_7654_3210 and expected[-2] == 0x2B
    assert list(batch(ids)()) == expected
    for reg, value in zip(ids, expected, strict=True):
        read(ux.UC_X86_REG_RAX)  # leaves 64 bits of RAX in the cell before a selector
        assert read(reg) == value


@pytest.mark.parametrize("c_api", [True, False])
def test_descriptor_table_registers_read_as_the_guest_loaded_them(monkeypatch, c_api):
    """GDTR and LDTR (base, limit) through the C API, and through the binding where the C
    library is not to be had, are the values written with the binding's own call."""
    from unicorn import UC_ARCH_X86, UC_MODE_32, Uc
    from unicorn import x86_const as ux

    from hvmio_lab.guest import uc_api

    if not c_api:
        monkeypatch.setattr(uc_api, "_c_api", lambda uc: None)
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    read = uc_api.table_register(uc)
    uc.reg_write(ux.UC_X86_REG_GDTR, (0, 0x000F_6A00, 0x37, 0))
    assert read(ux.UC_X86_REG_GDTR) == (0x000F_6A00, 0x37)
    uc.reg_write(ux.UC_X86_REG_GDTR, (0, 0x1234_5678, 0xFFFF, 0))
    assert read(ux.UC_X86_REG_GDTR) == (0x1234_5678, 0xFFFF)  # the new value, not a kept one
    uc.reg_write(ux.UC_X86_REG_LDTR, (0x18, 0x0002_0000, 0x7, 0x82))
    assert read(ux.UC_X86_REG_LDTR) == (0x0002_0000, 0x7)


def test_the_vcpu_masks_writes_sends_them_at_sync_and_rebases_a_loaded_segment():
    """UnicornCpu: a write is masked to the register's width and reaches unicorn only at
    ``sync``; a selector loaded during an exit gives its segment the new base at once, even
    after the old base was asked for; a name that is no register is refused."""
    from unicorn import UC_ARCH_X86, UC_MODE_32, Uc
    from unicorn import x86_const as ux

    from hvmio_lab.guest.cpu import UnicornCpu

    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    uc.reg_write(ux.UC_X86_REG_CR0, uc.reg_read(ux.UC_X86_REG_CR0) & ~1)  # real mode
    uc.reg_write(ux.UC_X86_REG_EBX, 0x1234)
    uc.reg_write(ux.UC_X86_REG_ES, 0x1000)
    cpu = UnicornCpu(uc, 16, bytearray(1 << 20))
    assert cpu.rbx == 0x1234
    cpu.rbx = 0x1_0000_0042  # wider than the 32-bit register
    assert cpu.rbx == 0x42 and uc.reg_read(ux.UC_X86_REG_EBX) == 0x1234
    assert cpu.segment_base("ES") == 0x10000  # real mode: selector × 16
    cpu.set_segment("ES", 0x2000, 0x20000)
    assert cpu.segment_base("ES") == 0x20000 and cpu.segment("ES") == Segment(0x2000, 0x20000)
    cpu.sync()
    assert uc.reg_read(ux.UC_X86_REG_EBX) == 0x42 and uc.reg_read(ux.UC_X86_REG_ES) == 0x2000
    assert cpu.segment_base("ES") == 0x20000  # read afresh from unicorn after the sync
    with pytest.raises(HvmioError, match="r8 does not exist outside 64-bit mode"):
        cpu.r8 = 1
    with pytest.raises(AttributeError, match="no register 'rbxx'"):
        cpu.rbxx = 1
    with pytest.raises(AttributeError):
        cpu.rbxx  # noqa: B018


def test_the_vcpu_reads_cr0_and_selectors_as_registers_and_follows_a_mode_switch():
    """CR0 and the selectors are registers of the vCPU view like RAX: read from unicorn on
    first use, written back at ``sync``. ``mode`` and the segment bases follow CR0.PE: real
    mode (base = selector × 16) until PE is set, then the descriptor table (SDM Vol. 3
    §3.4.5), here a GDT entry with base 0x12345000."""
    from unicorn import UC_ARCH_X86, UC_MODE_32, Uc
    from unicorn import x86_const as ux

    from hvmio_lab.guest.cpu import UnicornCpu

    memory = bytearray(1 << 20)
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    cr0 = uc.reg_read(ux.UC_X86_REG_CR0) & ~1
    uc.reg_write(ux.UC_X86_REG_CR0, cr0)  # real mode
    uc.reg_write(ux.UC_X86_REG_DS, 0x10)
    cpu = UnicornCpu(uc, 16, memory)
    assert cpu.cr0 == cr0 and getattr(cpu, "ds.sel") == 0x10
    assert cpu.mode == 16 and cpu.segment_base("DS") == 0x100
    # a GDT at 0x8000 whose entry 2 (selector 0x10) has base 0x12345000, D = 1
    memory[0x8010:0x8018] = bytes((0xFF, 0xFF, 0x00, 0x50, 0x34, 0x93, 0xCF, 0x12))
    uc.reg_write(ux.UC_X86_REG_GDTR, (0, 0x8000, 0x17, 0))
    cpu.cr0 = cr0 | 1
    cpu.sync()
    assert uc.reg_read(ux.UC_X86_REG_CR0) & 1  # the write reached unicorn at sync
    assert cpu.segment_base("DS") == 0x12345000


def test_an_error_inside_the_io_hook_reaches_the_caller():
    """A bug in the loop's hook cannot cross unicorn's C frames: it must still be raised."""
    guest = Guest("port_hammer", "svm", "fast", recording=False)

    def broken(*_):
        raise RuntimeError("boom in the hook")

    guest._hook_reads = dict.fromkeys((True, False), broken)  # the hook's first call
    with pytest.raises(RuntimeError, match="boom in the hook"):
        guest.run()


def test_a_binding_without_the_c_library_runs_guests_the_same(monkeypatch, tmp_path):
    """Where the binding does not expose unicorn's library (uc_api falls back on the binding's
    own methods), every exit still happens, with the same result, only slower."""
    from hvmio_lab.guest import uc_api

    code = _nasm(STRING_IO, 16, tmp_path)
    ends = []
    for fallback in (False, True):
        if fallback:
            monkeypatch.setattr(uc_api, "_c_api", lambda uc: None)
        guest = Guest.from_code(code, vendor="svm", path="fast", recording=False,
                                uart_input=b"xyz")  # fmt: skip
        assert guest.run().success
        hammer = Guest("port_hammer", "svm", "fast", recording=False)
        assert hammer.run().success
        ends.append((_visible(guest), hammer.exits, hammer.cpu.rip))
    assert _differences(ends[0][0], ends[1][0]) == [] and ends[0][1:] == ends[1][1:]


# ---------------------------------------------------------------- string I/O done in the hook

# Each stores the registers its string instructions moved, then sends POST 0xAA. The UART hands
# out 1, 2, 3 … (uart_input), so every byte an INS stores says which element it was. The
# expected ends are worked out from the SDM's INS/OUTS (Vol. 2B): an element at ES:(R)DI or
# DS:(R)SI, the pointer moved by the size (down when DF = 1), (R)CX counted down, all at the
# address size, where a 32-bit register write zero-extends (Vol. 1 §3.4.1.1).
STRING_CASES = {
    "a page-crossing rep insb: two batches, two exits": (32, """
    cld
    mov edi, 0x1FF0
    mov ecx, 40
    mov dx, 0x3F8
    rep insb
    mov [0x600], edi
    mov [0x604], ecx
""", {0x1FF0: bytes(range(1, 41)), 0x600: (0x2018).to_bytes(4, "little") + bytes(4)}, ""),
    "DF = 1: rep insb and rep outsb go down": (32, """
    std
    mov edi, 0x2013
    mov ecx, 20
    mov dx, 0x3F8
    rep insb
    mov [0x600], edi
    mov [0x604], ecx
    mov esi, 0x2013
    mov ecx, 4
    rep outsb
    mov [0x608], esi
    cld
""", {0x2000: bytes(range(20, 0, -1)),
      0x600: (0x1FFF).to_bytes(4, "little") + bytes(4) + (0x200F).to_bytes(4, "little")},
     "\x01\x02\x03\x04"),
    "a 16-bit address size in 32-bit code: DI wraps, EDI's high half stays": (32, """
    cld
    mov edi, 0xABCDFFFC
    mov ecx, 0x12340008
    mov dx, 0x3F8
    a16 rep insb
    mov [0x600], edi
    mov [0x604], ecx
""", {0xFFFC: bytes((1, 2, 3, 4)), 0: bytes((5, 6, 7, 8)),
      0x600: (0xABCD0004).to_bytes(4, "little") + (0x12340000).to_bytes(4, "little")}, ""),
    "rep insw from a port with no data, then single insb and outsb": (32, """
    cld
    mov edi, 0x3000
    mov ecx, 5
    mov dx, 0x1F0
    rep insw                  ; no command, no data phase: all ones
    mov dx, 0x3F8
    mov esi, 0x3000
    mov edi, 0x3100
    insb
    insb
    outsb
    mov [0x600], edi
    mov [0x604], esi
""", {0x3000: b"\xff" * 10, 0x3100: bytes((1, 2)),
      0x600: (0x3102).to_bytes(4, "little") + (0x3001).to_bytes(4, "little")}, "\xff"),
    "a 32-bit address size in 64-bit code zero-extends RDI and RCX": (64, """
    cld
    mov rdi, 0x100002000
    mov rcx, 0x700000006
    mov dx, 0x3F8
    a32 rep insb
    mov [0x600], rdi
    mov [0x608], rcx
    mov rsi, 0x2000
    mov rcx, 3
    rep outsb
    mov [0x610], rsi
""", {0x2000: bytes(range(1, 7)),
      0x600: (0x2006).to_bytes(8, "little") + bytes(8) + (0x2003).to_bytes(8, "little")},
     "\x01\x02\x03"),
}
STRING_END = """
    mov al, 0xAA
    out 0x80, al
    hlt
"""


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("case", list(STRING_CASES))
def test_string_io_handled_in_the_hook_ends_as_the_sdm_says_and_as_stepped(tmp_path, case,
                                                                            vendor):  # fmt: skip
    """run() lets the emulator do a string exit inside unicorn's hook and unicorn finish the
    element it is in: the SDM's bytes and registers, and the same exits, registers, memory
    and devices as stopping at each exit (step) and as pausing after every exit (in the hook,
    under count=)."""
    bits, body, memory, uart = STRING_CASES[case]
    code = _nasm(f"org 0x10000\n{body}{STRING_END}", bits, tmp_path)
    ends = []
    for drive in ("run", "step", "pause"):
        guest = Guest.from_code(code, mode=bits, origin=0x10000, vendor=vendor, path="fast",
                                recording=False, uart_input=bytes(range(1, 101)),
                                exit_limit=100)  # a string loop that never ends fails fast
        if drive == "pause":
            while not guest.halted:  # max_exits counts the guest's exits so far
                guest.run(max_exits=guest.exits + 1)
        else:
            _drive(guest, drive)
        assert guest.result().success, (drive, guest.result())
        ends.append(_visible(guest))
    assert _differences(ends[0], ends[1]) == _differences(ends[0], ends[2]) == []
    _exits, _registers, ram, text, _post = ends[0]
    assert {at: ram[at : at + len(want)] for at, want in memory.items()} == memory
    assert text == uart


def test_a_rep_batch_stops_at_the_page_end_and_the_instruction_exits_again(tmp_path):
    bits, body, _, _ = STRING_CASES["a page-crossing rep insb: two batches, two exits"]
    code = _nasm(f"org 0x10000\n{body}{STRING_END}", bits, tmp_path)
    guest = Guest.from_code(code, mode=32, origin=0x10000, vendor="svm", path="fast",
                            recording=False, uart_input=bytes(range(1, 101)))  # fmt: skip
    assert guest.run().by_path == {"emulate": 2, "fast": 1}  # 16 elements, then 24
