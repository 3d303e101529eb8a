"""The hardware model (capstone) and the emulator's decoder check each other: one oracle a side."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import CODE_AT, machine_with

from hvmio_lab import ExitInfoError, Machine, NotAnIoExit, PageFault, decode_instruction
from hvmio_lab.exits import SvmIoExit, VmxIoExit
from hvmio_lab.hardware import intercept

OPCODES = [0xE4, 0xE5, 0xE6, 0xE7, 0xEC, 0xED, 0xEE, 0xEF, 0x6C, 0x6D, 0x6E, 0x6F]
PREFIXES = [0x66, 0x67, 0xF3, 0xF2, 0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65]


@settings(max_examples=300, deadline=None)
@given(
    mode=st.sampled_from([16, 32, 64]),
    prefixes=st.lists(st.sampled_from(PREFIXES), max_size=4),
    opcode=st.sampled_from(OPCODES),
    imm=st.integers(0, 0xFF),
    dx=st.integers(0, 0xFFFF),
    vendor=st.sampled_from(["svm", "vmx"]),
)
def test_exit_record_agrees_with_the_instruction_bytes(mode, prefixes, opcode, imm, dx, vendor):
    code = (
        bytes(prefixes)
        + bytes([opcode])
        + (bytes([imm]) if opcode in (0xE4, 0xE5, 0xE6, 0xE7) else b"")
    )
    machine = machine_with(code, mode)
    machine.cpu.rdx = 0xABCD_0000 | dx
    record = intercept(machine, vendor)
    insn = decode_instruction(code, mode)
    from_record, from_bytes = record.access(), insn.access(machine.cpu.rdx)
    assert from_record.agrees_with(from_bytes), (from_record, from_bytes)
    assert record.next_rip == CODE_AT + insn.length == CODE_AT + len(code)
    # the fields the record does carry must be there, not None
    assert from_record.port == (imm if insn.immediate else dx)
    if vendor == "svm":
        assert from_record.address_size == insn.address_size
    else:
        assert from_record.immediate == insn.immediate
    if insn.string:
        assert from_record.segment == insn.segment


def test_real_mode_record_uses_ip_not_the_linear_address():
    machine = machine_with(b"\xee", mode=16, rip=0x7C00)
    record = intercept(machine, "svm")
    assert (record.rip, record.exitinfo2) == (0x7C00, 0x7C01)


@pytest.mark.parametrize(
    "code, why",
    [
        (b"\x90", "nop"),
        (b"\xf0\xec", "LOCK"),
        (b"\xf0\xf3\x6c", "LOCK before REP"),
        (b"\x0f\x0b", "ud2"),
    ],
)
def test_no_exit_for_other_instructions(code, why):
    with pytest.raises(NotAnIoExit):
        intercept(machine_with(code), "svm")


@pytest.mark.parametrize(
    "code, size, segment",
    [
        (b"\x66\x48\xed", 4, None),  # REX.W beats 66: in eax, dx (unicorn agrees)
        (b"\x64\x26\x6e", 1, "FS"),  # es is a null prefix in long mode, even after fs
        (b"\x26\x6e", 1, "DS"),
        (b"\x65\x3e\x2e\x6f", 4, "GS"),
    ],
)
def test_long_mode_prefix_rules(code, size, segment):
    """Cases where capstone 5 differs from the CPU; the decoder and unicorn follow the CPU."""
    record = intercept(machine_with(code, 64), "svm")
    access = record.access()
    assert (access.size, access.segment) == (size, segment)
    assert access.agrees_with(decode_instruction(code, 64).access(0))


@pytest.mark.parametrize("code, cut, where", [
    (b"\x3e\xec", 1, "straddling"),  # ds: in al, dx with its opcode on the next page
    (b"\xe4\x60", 1, "immediate on the next page"),
    (b"\xec", 0, "first byte on the page"),
])  # fmt: skip
@pytest.mark.parametrize("vendor", ["svm", "vmx"])
def test_an_instruction_fetch_into_a_not_present_page_faults_before_the_exit(code, cut, where,
                                                                             vendor):  # fmt: skip
    page = 0x2000
    machine = machine_with(code, 32, rip=page - cut)
    machine.memory.set_present(page, False)
    with pytest.raises(PageFault) as fault:
        intercept(machine, vendor)
    assert (fault.value.address, fault.value.write) == (page, False)


def test_an_instruction_that_ends_before_a_not_present_page_still_exits():
    machine = machine_with(b"\xec", 32, rip=0x1FFF)
    machine.memory.set_present(0x2000, False)
    assert intercept(machine, "svm").next_rip == 0x2000


@pytest.mark.parametrize("path", ["fast", "emulate", "seed2010"])
@pytest.mark.parametrize("vendor", ["svm", "vmx"])
def test_no_path_consumes_the_uart_byte_when_the_fetch_faults(vendor, path):
    """The repro: `ds: in al, dx` straddling into a not-present page, RBR waiting."""
    from hvmio_lab import Machine
    from hvmio_lab.hypervisor import Hypervisor

    machine = Machine.pc(32, uart_input=b"k")
    machine.memory.write(0x1FFF, b"\x3e\xec")
    machine.memory.set_present(0x2000, False)
    machine.cpu.rip, machine.cpu.rdx = 0x1FFF, 0x3F8
    with pytest.raises(PageFault):
        Hypervisor(machine, vendor, path).step()
    assert list(machine.bus.devices["uart"].input) == [ord("k")]
    assert machine.cpu.rip == 0x1FFF


@settings(max_examples=200, deadline=None)
@given(
    mode=st.sampled_from([16, 32, 64]),
    prefixes=st.lists(st.sampled_from(PREFIXES), max_size=4),
    opcode=st.sampled_from(OPCODES),
    dx=st.integers(0, 0xFFFF),
    vendor=st.sampled_from(["svm", "vmx"]),
    rip=st.sampled_from([0, CODE_AT, 0xFFFF, (1 << 64) - 16]),
)
def test_a_silicon_record_equals_the_same_record_built_and_checked_by_hand(
    mode, prefixes, opcode, dx, vendor, rip
):
    """``intercept`` builds its records without re-checking what it encoded: each must be the
    record the checking constructor gives from the same raw values, down to the access."""
    code = bytes(prefixes) + bytes([opcode]) + (b"\x60" if opcode in (0xE4, 0xE5, 0xE6, 0xE7)
                                                else b"")  # fmt: skip
    machine = Machine(mode)
    machine.memory.write(CODE_AT, code)
    machine.cpu.rip, machine.cpu.rdx = CODE_AT, dx
    record = intercept(machine, vendor)
    if vendor == "svm":
        silicon = SvmIoExit.from_silicon(record.exitinfo1, len(code), rip)
        by_hand = SvmIoExit(record.exitinfo1, rip + len(code), rip)
    else:
        info = record.instruction_info
        silicon = VmxIoExit.from_silicon(record.qualification, len(code), rip, info)
        by_hand = VmxIoExit(record.qualification, len(code), rip, info)
    assert silicon == by_hand and vars(silicon).keys() >= {"next_rip"}
    assert (silicon.next_rip, silicon.access()) == (by_hand.next_rip, by_hand.access())
    assert silicon.describe() == by_hand.describe()


def test_a_silicon_record_with_a_bad_rip_is_refused_as_a_hand_made_one_is():
    for bad in (-1, 1 << 64, 2.0, True):
        with pytest.raises(ExitInfoError, match=r"RIP|EXITINFO2"):  # EXITINFO2 = RIP + 1
            SvmIoExit.from_silicon(0x1F480241, 1, bad)
        with pytest.raises(ExitInfoError, match="RIP"):
            VmxIoExit.from_silicon(0x1F48000B, 1, bad)
    with pytest.raises(ExitInfoError, match="EXITINFO2"):  # RIP + length past 2^64 − 1
        SvmIoExit.from_silicon(0x1F480241, 2, (1 << 64) - 1)
