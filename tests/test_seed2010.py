"""Each confirmed defect of the 2010 patch (IO_EXITS.md §4), reproduced on path="seed2010" and
absent on the modern fast path."""

import pytest
from support import CODE_AT, Refusing, Scripted, machine_with

from hvmio_lab import PmTimer
from hvmio_lab.hypervisor import Hypervisor

HIGH = 0xDEAD_BEEF_0000_0000


def run(path, code, answers=(), location="hypervisor", rax=HIGH, rdx=0x40, vendor="svm"):
    machine = machine_with(code)
    device = Scripted(answers, location)
    machine.bus.attach(range(0x40, 0x44), device)
    machine.cpu.rax, machine.cpu.rdx = rax, rdx
    hv = Hypervisor(machine, vendor, path)
    return machine, hv, hv.step()


@pytest.mark.parametrize("vendor", ["svm", "vmx"])
def test_32_bit_in_does_not_zero_extend_in_2010(vendor):
    machine, _, _ = run("seed2010", b"\xed", [0x1234_5678], vendor=vendor)
    assert machine.cpu.rax == HIGH | 0x1234_5678  # memcpy of 4 bytes left RAX[63:32]
    machine, _, _ = run("fast", b"\xed", [0x1234_5678], vendor=vendor)
    assert machine.cpu.rax == 0x1234_5678


def failing_out():
    machine = machine_with(b"\x66\xef" + b"\xf3\x6e")  # out dx, ax ; rep outsb
    machine.bus.attach(range(0x40, 0x41), Refusing())
    good = Scripted()
    machine.bus.attach(range(0x50, 0x51), good)
    machine.cpu.rdx = 0x40
    return machine, good


@pytest.mark.parametrize("vendor", ["svm", "vmx"])
def test_rip_is_advanced_before_gp_in_2010(vendor):
    machine, _ = failing_out()
    outcome = Hypervisor(machine, vendor, "seed2010").step()
    assert outcome.fault.vector == "#GP"
    assert machine.cpu.rip == CODE_AT + 2  # the guest takes #GP after the instruction
    assert outcome.fault.rip == CODE_AT + 2

    machine, _ = failing_out()
    outcome = Hypervisor(machine, vendor, "fast").step()
    assert outcome.fault.vector == "#GP"
    assert machine.cpu.rip == CODE_AT and outcome.fault.rip == CODE_AT


def test_stale_stash_mishandles_the_next_emulated_exit():
    """After UNHANDLEABLE the stashed port/size/dir survive, so the next string exit is taken
    as the old 2-byte OUT to port 0x40 instead of `rep outsb` to port 0x50."""
    for path, expect_stale in (("seed2010", True), ("fast", False)):
        machine, good = failing_out()
        hv = Hypervisor(machine, "svm", path)
        hv.step()  # out dx, ax: refused
        machine.cpu.rip = CODE_AT + 2  # the guest handler resumes at rep outsb
        machine.cpu.rdx, machine.cpu.rcx, machine.cpu.rsi = 0x50, 2, 0x8000
        machine.memory.write(0x8000, b"ok")
        outcome = hv.step()
        if expect_stale:
            assert good.writes == []  # the string never reached its port
            assert outcome.fault.vector == "#GP" and outcome.instruction is None
            stale = outcome.access  # the refused `out dx, ax` again, from the stash
            assert (stale.port, stale.size, stale.is_in) == (0x40, 2, False)
        else:
            assert good.writes == [(0x50, 1, ord("o")), (0x50, 1, ord("k"))]
            assert outcome.fault is None and outcome.done


def test_device_model_in_is_reemulated_at_completion_in_2010():
    machine, hv, outcome = run("seed2010", b"\xed", [0x99], location="device-model")
    assert outcome.request is not None and outcome.reemulated
    assert outcome.instruction is not None  # the emulator fetched and decoded it after all
    assert hv.counters["reemulations"] == 1
    assert machine.cpu.rip == CODE_AT + 1 and machine.cpu.rax == 0x99

    machine, hv, outcome = run("fast", b"\xed", [0x99], location="device-model")
    assert outcome.request is not None and not outcome.reemulated
    assert outcome.instruction is None and hv.counters["reemulations"] == 0
    assert machine.cpu.rip == CODE_AT + 1 and machine.cpu.rax == 0x99


@pytest.mark.parametrize("size_prefix, size", [(b"", 1), (b"\x66", 2)])
def test_short_pm_timer_read_leaks_the_previous_value_in_2010(size_prefix, size):
    opcode = b"\xec" if size == 1 else b"\xed"
    code = b"\xef" + size_prefix + opcode  # out dx, eax (to the scratch port) ; in al/ax, dx
    for path, expect in (
        ("seed2010", 0x5A5A5A5A & ((1 << 8 * size) - 1)),
        ("fast", (1 << 8 * size) - 1),
    ):
        machine = machine_with(code)
        machine.bus.attach(range(0x40, 0x41), Scripted())
        timer = PmTimer(machine.clock)
        machine.bus.attach(timer.ports, timer)
        hv = Hypervisor(machine, "svm", path)
        machine.cpu.rax, machine.cpu.rdx = 0x5A5A5A5A, 0x40
        hv.step()  # the previous access leaves 0x5A5A5A5A in the handler's data slot
        machine.cpu.rax, machine.cpu.rdx = 0, 0x1F48
        machine.clock.advance(10**9)  # the timer has moved: a real read would not be 0x5A…
        hv.step()
        assert machine.cpu.rax == expect, path
