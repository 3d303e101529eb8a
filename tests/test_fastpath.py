"""The fast path: handled from the exit record alone, and equivalent to the emulator."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import CODE_AT, Refusing, Scripted, machine_with

from hvmio_lab import SvmIoExit, VmxIoExit
from hvmio_lab.hardware import intercept
from hvmio_lab.hypervisor import Hypervisor
from hvmio_lab.machine import register_values

U64 = (1 << 64) - 1
# Every non-string I/O opcode: (opcode, has imm8, is IN, byte form)
NON_STRING = [
    (0xE4, True, True, True), (0xE5, True, True, False),
    (0xE6, True, False, True), (0xE7, True, False, False),
    (0xEC, False, True, True), (0xED, False, True, False),
    (0xEE, False, False, True), (0xEF, False, False, False),
]  # fmt: skip


def operand_size(mode, byte_form, has_66):
    if byte_form:
        return 1
    default = 2 if mode == 16 else 4
    return (6 - default) if has_66 else default  # 66 swaps 16 <-> 32


def expected_rax(old, value, size):
    """SDM Vol. 1 §3.4.1.1: 32-bit results zero-extend; 8/16-bit results leave the rest."""
    if size == 4:
        return value & 0xFFFF_FFFF
    keep = U64 ^ ((1 << (8 * size)) - 1)
    return (old & keep) | (value & ((1 << (8 * size)) - 1))


def one_exit(path, vendor, code, mode, regs, answers):
    machine = machine_with(code, mode)
    device = Scripted(answers)
    machine.bus.attach(range(0, 0x10000), device)
    for name, value in regs.items():
        setattr(machine.cpu, name, value)
    outcome = Hypervisor(machine, vendor, path, recording=False).step()
    return machine, device, outcome


@settings(max_examples=150, deadline=None)
@given(
    form=st.sampled_from(NON_STRING),
    mode=st.sampled_from([16, 32, 64]),
    has_66=st.booleans(),
    imm=st.integers(0, 0xFF),
    vendor=st.sampled_from(["svm", "vmx"]),
    rax=st.integers(0, U64),
    rdx=st.integers(0, U64),
    answer=st.integers(0, 0xFFFF_FFFF),
)
def test_fast_and_emulate_leave_identical_machines(
    form, mode, has_66, imm, vendor, rax, rdx, answer
):
    opcode, has_imm, is_in, byte_form = form
    code = (b"\x66" if has_66 else b"") + bytes([opcode]) + (bytes([imm]) if has_imm else b"")
    if mode != 64:
        rax, rdx = rax & 0xFFFF_FFFF, rdx & 0xFFFF_FFFF
    results, accesses = {}, []
    for path in ("fast", "emulate"):
        machine, device, outcome = one_exit(
            path, vendor, code, mode, {"rax": rax, "rdx": rdx}, [answer]
        )
        assert outcome.path == path
        assert outcome.done and outcome.fault is None
        results[path] = (register_values(machine.cpu), device.reads, device.writes)
        accesses.append(outcome.access)
    assert results["fast"] == results["emulate"]
    assert accesses[0].agrees_with(accesses[1])
    regs, reads, writes = results["fast"]
    size = operand_size(mode, byte_form, has_66)
    port = imm if has_imm else rdx & 0xFFFF
    assert regs["rip"] == CODE_AT + len(code)
    if is_in:
        assert reads == [(port, size)]
        assert regs["rax"] == expected_rax(rax, answer, size)
    else:
        assert writes == [(port, size, rax & ((1 << 8 * size) - 1))]
        assert regs["rax"] == rax


@pytest.mark.parametrize("vendor", ["svm", "vmx"])
def test_fast_path_never_reads_instruction_bytes(vendor):
    machine = machine_with(b"\xed")  # in eax, dx
    machine.cpu.rdx = 0x1F48
    machine.bus.attach(range(0x1F48, 0x1F4C), Scripted([0x1234_5678]))
    exit = intercept(machine, vendor)
    machine.memory.write(CODE_AT, b"\x90" * 16)  # poison: the bytes are no longer an IN
    machine.memory.set_present(CODE_AT, False)  # and the page is gone
    outcome = Hypervisor(machine, vendor, "fast").handle(exit)
    assert outcome.fault is None and outcome.path == "fast"
    assert machine.cpu.rax == 0x1234_5678 and machine.cpu.rip == CODE_AT + 1
    # The emulator, by contrast, has to fetch, and the poisoned page stops it.
    emulated = Hypervisor(machine_poisoned := machine_with(b"\xed"), vendor, "emulate")
    machine_poisoned.memory.set_present(CODE_AT, False)
    result = emulated.handle(exit)
    assert result.fault is not None and result.fault.vector == "#PF"
    assert machine_poisoned.cpu.rip == CODE_AT


def test_rip_comes_from_the_record_not_the_bytes():
    """The fast path trusts EXITINFO2 / the instruction length: that is what makes it fast."""
    machine = machine_with(b"\xec")
    machine.bus.attach(range(0, 0x10000), Scripted([0x5A]))
    svm = SvmIoExit(exitinfo1=0x0000_0211 | (0x60 << 16), exitinfo2=CODE_AT + 3, rip=CODE_AT)
    Hypervisor(machine, "svm", "fast").handle(svm)
    assert machine.cpu.rip == CODE_AT + 3
    machine.cpu.rip = CODE_AT
    vmx = VmxIoExit(qualification=(0x60 << 16) | 0x8, instruction_length=2, rip=CODE_AT)
    Hypervisor(machine, "vmx", "fast").handle(vmx)
    assert machine.cpu.rip == CODE_AT + 2


@pytest.mark.parametrize("vendor", ["svm", "vmx"])
def test_string_exit_falls_back_to_the_emulator(vendor):
    machine = machine_with(b"\xf3\x6c")  # rep insb
    machine.cpu.rdx, machine.cpu.rcx, machine.cpu.rdi = 0x60, 3, 0x8000
    machine.bus.attach(range(0x60, 0x61), Scripted([1, 2, 3]))
    hv = Hypervisor(machine, vendor, "fast")
    outcome = hv.step()
    assert outcome.path == "emulate" and outcome.instruction is not None
    assert hv.counters["declined"] == 1 and hv.counters["emulate"] == 1
    assert machine.memory.read(0x8000, 3) == b"\x01\x02\x03"
    assert machine.cpu.rcx == 0 and machine.cpu.rdi == 0x8003
    assert machine.cpu.rip == CODE_AT + 2


@pytest.mark.parametrize("recording", [True, False])
@pytest.mark.parametrize("path", ["fast", "emulate"])
def test_a_refused_access_injects_gp_at_the_faulting_instruction(path, recording):
    machine = machine_with(b"\xed")
    machine.cpu.rax, machine.cpu.rdx = 0xDEAD_BEEF_0000_0000, 0x10
    machine.bus.attach(range(0x10, 0x11), Refusing())
    before = register_values(machine.cpu)
    outcome = Hypervisor(machine, "svm", path, recording=recording).step()
    assert outcome.fault.vector == "#GP" and outcome.fault.error_code == 0
    assert outcome.fault.rip == CODE_AT
    assert register_values(machine.cpu) == before  # nothing half-done
    assert not outcome.done


def test_step_on_a_non_io_instruction_is_refused():
    from hvmio_lab import NotAnIoExit

    machine = machine_with(b"\x90")
    with pytest.raises(NotAnIoExit, match="nop"):
        Hypervisor(machine).step()


def test_counters_count_each_path():
    machine = machine_with(b"\xec\xec\x6c")  # in al,dx; in al,dx; insb
    machine.cpu.rdi = 0x9000
    machine.bus.attach(range(0, 0x10000), Scripted())
    hv = Hypervisor(machine, "vmx", "fast")
    for _ in range(3):
        hv.step()
    assert hv.counters["fast"] == 2 and hv.counters["emulate"] == 1 and hv.counters["declined"] == 1


def test_recording_gives_stages_diff_and_events():
    machine = machine_with(b"\xe5\x40")  # in eax, 0x40
    machine.bus.attach(range(0x40, 0x41), Scripted([7]))
    outcome = Hypervisor(machine, "svm", "fast", recording=True).step()
    assert set(outcome.stages) >= {"exit", "decode", "device", "writeback"}
    assert all(ns >= 0 for ns in outcome.stages.values())
    assert outcome.diff.register("rax") == (0, 7)
    assert outcome.diff.register("rip") == (CODE_AT, CODE_AT + 2)
    assert [(e.port, e.size, e.value) for e in outcome.events] == [(0x40, 4, 7)]
    quiet = Hypervisor(machine_with(b"\xe5\x40"), "svm", "fast", recording=False).step()
    assert quiet.stages is None and quiet.diff is None


def test_timing_without_recording_gives_stages_but_no_diff():
    """Stage times must not pay for a 2 MiB snapshot per exit, so they come without diffs."""
    machine = machine_with(b"\xe5\x40")
    machine.bus.attach(range(0x40, 0x41), Scripted([7]))
    outcome = Hypervisor(machine, "vmx", "fast", recording=False, timed=True).step()
    assert set(outcome.stages) >= {"exit", "decode", "device", "writeback"}
    assert outcome.diff is None and outcome.events == ()
    assert machine.cpu.rax == 7 and outcome.done


@pytest.mark.parametrize("path", ["fast", "emulate", "seed2010"])
@pytest.mark.parametrize("vendor", ["svm", "vmx"])
def test_real_mode_ip_wraps_at_64k(vendor, path):
    """In a 16-bit code segment the instruction pointer is IP: past 0xFFFF it wraps to 0."""
    machine = machine_with(b"\xec", mode=16, rip=0xFFFF)  # in al, dx at CS:0xFFFF (CS = 0)
    machine.bus.attach(range(0, 0x10000), Scripted([0x42]))
    outcome = Hypervisor(machine, vendor, path).step()
    assert outcome.done and machine.cpu.rip == 0x0000
    assert machine.cpu.rax & 0xFF == 0x42


def test_the_fast_path_moves_only_size_bytes_and_a_refusal_changes_nothing():
    """`out dx, al` carries AL only (Hyperlight's garbled serial output, IO_EXITS.md §7.3).
    A device's refusal comes back as the result's trouble with RIP still on the instruction."""
    from hvmio_lab import DeviceError, IoAccess, fastpath

    machine = machine_with(b"\xee", rax=0x1122_3344_5566_7788)
    machine.bus.attach(range(0x40, 0x41), device := Scripted())
    # out dx, al to 0x40: TYPE 0, SZ8, A32, PORT 0x40 (worked out by hand from the APM table)
    exit_ = SvmIoExit(0x00400110, CODE_AT + 1, CODE_AT)
    result = fastpath.run(machine, exit_, IoAccess(0x40, 1, False))
    assert device.writes == [(0x40, 1, 0x88)] and result.done and result.elements == 1
    assert machine.cpu.rip == CODE_AT + 1
    refusing = machine_with(b"\xee")
    refusing.bus.attach(range(0x40, 0x41), Refusing())
    result = fastpath.run(refusing, exit_, IoAccess(0x40, 1, False))
    assert isinstance(result.trouble, DeviceError) and not result.done
    assert refusing.cpu.rip == CODE_AT
