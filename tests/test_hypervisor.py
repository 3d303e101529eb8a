"""The dispatcher: one Hypervisor counts, injects and builds every Outcome, whichever path
ran; one recording switch; immediate device-model completion taking the short way with the
same result. Expected values come from the SDM and IO_EXITS.md, not from this package."""

from __future__ import annotations

import tracemalloc

import pytest
from support import CODE_AT, Refusing, Scripted, machine_with

from hvmio_lab import Machine
from hvmio_lab.guest import Guest, Program
from hvmio_lab.hardware import intercept
from hvmio_lab.hypervisor import Hypervisor
from hvmio_lab.machine import register_values

U64 = (1 << 64) - 1


# ---------------------------------------------------------------- one recording switch


def test_recording_off_nothing_grows_per_exit_even_from_an_unclaimed_port():
    """The issue's repro: 100 exits of `rep insb` from an unclaimed port with RCX = 2^64 − 1
    left 409,600 BusEvents (43 MiB) behind with recording off. Now the log stays empty and
    the memory held after the run is what the first exit needed."""
    machine = machine_with(b"\xf3\x6c", rcx=U64, rdx=0x1234, rdi=0x10000)
    hv = Hypervisor(machine, "svm", "fast", recording=False)
    exit_ = intercept(machine, "svm")
    hv.handle(exit_)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(100):
        outcome = hv.handle(exit_)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert machine.bus.log == [] and hv.injected == []
    assert outcome.events == () and outcome.diff is None and outcome.elements == 4096
    assert hv.counters["emulate"] == 101 and grown < 64 * 1024
    assert machine.memory.read(0x10000, 4) == b"\xff" * 4  # all ones, as a master abort


def test_recording_on_keeps_events_diffs_and_faults():
    machine = machine_with(b"\xec\xec", rdx=0x1234)
    hv = Hypervisor(machine, "svm", "fast")
    outcome = hv.step()
    assert [e.device for e in outcome.events] == ["unclaimed"]
    assert outcome.diff.register("rip") == (CODE_AT, CODE_AT + 1)
    hv.recording = False  # the one switch: it also silences the bus
    hv.step()
    assert len(machine.bus.log) == 1 and machine.bus.recording is False


def test_faults_are_counted_but_not_kept_with_recording_off():
    machine = machine_with(b"\xec", rdx=0x40)
    machine.bus.attach(range(0x40, 0x41), Refusing())
    hv = Hypervisor(machine, "vmx", "fast", recording=False)
    for _ in range(3):
        assert hv.step().fault.vector == "#GP"
    assert hv.counters["faults"] == 3 and hv.injected == []


# ---------------------------------------------------------------- one dispatcher


@pytest.mark.parametrize("recording", [True, False])
@pytest.mark.parametrize("timed", [True, False])
@pytest.mark.parametrize("path", ["fast", "emulate", "seed2010"])
def test_every_way_through_builds_the_same_outcome(path, timed, recording):
    """There is no second copy of the fast path for untimed, unrecorded runs: the outcome
    differs only by what recording and timing add."""
    machine = machine_with(b"\xed", rdx=0x40, rax=0xDEAD_BEEF_0000_1111)
    machine.bus.attach(range(0x40, 0x44), Scripted([0x1234_5678] * 2))
    outcome = Hypervisor(machine, "svm", path, recording=recording, timed=timed).step()
    assert (outcome.path, outcome.done, outcome.elements, outcome.completed) == (
        "emulate" if path == "emulate" else "fast", True, 1, True)  # fmt: skip
    assert outcome.access.port == 0x40 and outcome.fault is None
    assert (outcome.stages is not None) == timed and (outcome.diff is not None) == recording
    # SDM: a 32-bit IN zero-extends; the 2010 patch (seed2010) kept RAX[63:32]
    high = 0xDEAD_BEEF_0000_0000 if path == "seed2010" else 0
    assert machine.cpu.rax == high | 0x1234_5678 and machine.cpu.rip == CODE_AT + 1


@pytest.mark.parametrize("path", ["fast", "emulate"])
@pytest.mark.parametrize("code", [b"\xed", b"\xef", b"\xe4\x60", b"\xf3\x66\x6d"])
def test_immediate_completion_equals_request_then_complete(path, code):
    """A device-model access answered at once (the short way) leaves the machine, the
    counters and the outcome as a request followed by ``complete()`` does."""
    results = []
    for immediate in (True, False):
        machine = machine_with(code, rax=0x1122_3344_5566_7788, rdx=0x60, rcx=3, rdi=0x9000)
        device = Scripted([0xA1B2, 0xC3D4, 0xE5F6, 0x0718], location="device-model")
        machine.bus.attach(range(0x60, 0x61), device)
        hv = Hypervisor(machine, "vmx", path, recording=False, complete_immediately=immediate)
        outcome = hv.step()
        if not immediate:
            assert not outcome.completed and outcome.request is not None
            assert hv.counters[outcome.path] == 0
            outcome = hv.complete()
        results.append((register_values(machine.cpu), bytes(machine.memory.data[0x9000:0x9010]),
                        device.log, dict(hv.counters), outcome._replace(stages=None)))  # fmt: skip
    assert results[0] == results[1]
    assert results[0][3]["device-model"] == 1


def test_seed2010_is_a_path_like_the_others():
    """Its handler returns a PathResult; the Hypervisor counts its device-model round trip and
    the re-emulation at completion (defect 4) from it."""
    machine = Machine.pc(64)
    machine.memory.write(CODE_AT, b"\xec")  # in al, dx from the UART LSR, in the device model
    machine.cpu.rip, machine.cpu.rdx = CODE_AT, 0x3FD
    hv = Hypervisor(machine, "svm", "seed2010")
    outcome = hv.step()
    assert outcome.reemulated and outcome.request.device == "uart"
    assert outcome.instruction is not None  # the completion decoded the bytes again
    assert hv.counters["device-model"] == hv.counters["reemulations"] == 1
    assert machine.cpu.rax & 0xFF == 0x60  # LSR idles at THRE | TEMT


@pytest.mark.parametrize("code", [b"\xf3\x6c", b"\xf3\x6e"], ids=["rep-insb", "rep-outsb"])
def test_a_rep_with_count_0_touches_no_memory(code):
    """With RCX = 0 a REP string instruction does nothing but move RIP (SDM, REP): no element,
    so no memory access and no fault even if RSI/RDI point nowhere."""
    machine = machine_with(code)
    machine.cpu.rcx, machine.cpu.rdx = 0, 0x60
    machine.cpu.rsi = machine.cpu.rdi = 0x7FFF_FFFF_0000  # far outside guest memory
    machine.bus.attach(range(0x60, 0x61), device := Scripted([1]))
    outcome = Hypervisor(machine, "svm", "emulate").step()
    assert outcome.fault is None and outcome.done and outcome.elements == 0
    assert machine.cpu.rip == CODE_AT + 2 and device.reads == device.writes == []


@pytest.mark.parametrize("path", ["fast", "emulate"])
@pytest.mark.parametrize(
    ("code", "write"), [(b"\xf3\x6c", True), (b"\xf3\x6e", False)], ids=["rep-insb", "rep-outsb"]
)
def test_a_page_fault_carries_cr2_and_the_write_bit(code, write, path):
    """#PF error code (SDM Vol. 3A §4.7): bit 0 P = 0 for a not-present page, bit 1 W/R = 1 for
    a write (INS stores to ES:[RDI]) and 0 for a read (OUTS loads from DS:[RSI]); CR2 holds
    the faulting linear address. RIP stays on the instruction."""
    machine = machine_with(code)
    machine.cpu.rcx, machine.cpu.rdx, machine.cpu.rsi, machine.cpu.rdi = 2, 0x60, 0x9000, 0x9000
    machine.bus.attach(range(0x60, 0x61), device := Scripted([1, 2]))
    machine.memory.set_present(0x9000, False)
    outcome = Hypervisor(machine, "vmx", path).step()
    fault = outcome.fault
    assert (fault.vector, fault.error_code, fault.address) == ("#PF", 2 if write else 0, 0x9000)
    assert fault.rip == machine.cpu.rip == CODE_AT
    assert device.reads == device.writes == []



# ---------------------------------------------------------------- real-mode segments on unicorn


@pytest.mark.parametrize("path", ["fast", "emulate", "seed2010"])
def test_a_real_mode_guest_rep_insb_lands_at_es_times_16_plus_di(path):
    """mov ax, 0x1000; mov es, ax; mov di, 0x10; mov dx, 0x3f8; mov cx, 3; rep insb; hlt.
    Real mode: linear = ES × 16 + DI = 0x10010 (SDM Vol. 1 §3.3.6), not DI alone."""
    code = bytes.fromhex("b80010 8ec0 bf1000 baf803 b90300 f36c f4")
    prog = Program("es_insb", 16, 0x7C00, 0x7000, code, "rep insb to ES:DI.", 0xAA, {})
    guest = Guest(prog, "svm", path, uart_input=b"abc")
    result = guest.run()
    assert result.halted and result.exits >= 1
    memory = guest.machine.memory
    assert memory.read(0x10010, 3) == b"abc"
    assert memory.read(0x10, 3) == bytes(3)


def test_kept_results_and_requests_follow_the_device_and_the_access():
    """The fast path keeps the result of a done access, and a data-less request is kept per
    access and device: a new device on the port must get its own name, and a refusal must
    still come back as trouble, not as the kept success."""
    from hvmio_lab.outcome import IoRequest

    machine = machine_with(b"\xec", rdx=0x60)  # in al, dx
    record = intercept(machine, "svm")
    first = Scripted(location="device-model", name="first", then=0x11)
    machine.bus.attach(range(0x60, 0x61), first)
    hv = Hypervisor(machine, "svm", "fast", recording=False)
    for _ in range(2):
        machine.cpu.rip = CODE_AT
        out = hv.handle(record)
        assert out.request == IoRequest(record.access(), None, "first") and out.done
    other = machine_with(b"\xec", rdx=0x60)
    other.bus.attach(range(0x60, 0x61), Refusing(location="device-model", name="second"))
    hv2 = Hypervisor(other, "svm", "fast", recording=False)
    out = hv2.handle(record)  # the same record, hence the same access object
    assert out.request.device == "second"
    assert not out.done and out.fault is not None and other.cpu.rip == CODE_AT
    assert hv.counters["fast"] == 2 and hv2.counters["faults"] == 1


def test_the_emulators_kept_results_follow_the_instruction_and_the_elements_done():
    """The emulator keeps the result of an exit that went through, as the fast path does. Two
    instructions with the same access (``in eax, dx`` and ``cs in eax, dx``: a segment prefix
    changes nothing but the length) must each report their own instruction and step RIP by
    their own length (SDM: RIP + length); a ``rep insw`` must report the elements it did this
    exit (256, then 3), not the last exit's count."""
    machine = Machine.pc(64)
    machine.memory.write(0x1000, b"\xed")
    machine.memory.write(0x2000, b"\x2e\xed")
    hv = Hypervisor(machine, "svm", "emulate", recording=False)
    for rip, length in ((0x1000, 1), (0x2000, 2), (0x1000, 1), (0x2000, 2)):
        machine.cpu.rip, machine.cpu.rdx = rip, 0x1F48
        outcome = hv.handle(intercept(machine, "svm"))
        assert outcome.done and outcome.instruction.length == length
        assert outcome.instruction.code == machine.memory.read(rip, length)
        assert machine.cpu.rip == rip + length
    assert hv.counters["emulate"] == 4

    bus = machine.bus  # READ SECTORS, 2 sectors from LBA 0, on the ATA disk
    for port, value in ((0x1F6, 0xE0), (0x1F2, 2), (0x1F3, 0), (0x1F4, 0), (0x1F5, 0),
                        (0x1F7, 0x20)):  # fmt: skip
        bus.write(port, 1, value)
    machine.memory.write(0x3000, b"\xf3\x66\x6d")  # rep insw
    for count in (256, 3):
        while bus.read(0x1F7, 1) & 0x80:  # BSY
            pass
        machine.cpu.rip, machine.cpu.rcx, machine.cpu.rdx, machine.cpu.rdi = (
            0x3000, count, 0x1F0, 0x10000)
        outcome = hv.handle(intercept(machine, "svm"))
        assert outcome.elements == count and outcome.done and machine.cpu.rcx == 0


@pytest.mark.parametrize("vendor", ["svm", "vmx"])
def test_an_unrecorded_outcome_names_the_record_it_handled(vendor):
    """Two sites reading one port give equal accesses (the same kept object) and the same
    kept result; the Outcome handed back must still name the record of this exit, with its
    own RIP, and the guest resume after this instruction (SDM: RIP + length)."""
    machine = Machine.pc(64)
    sites = (0x1000, 0x2000, 0x1000, 0x2000)
    for rip in set(sites):
        machine.memory.write(rip, b"\xed")  # in eax, dx
    hv = Hypervisor(machine, vendor, "fast", recording=False)
    for rip in sites:
        machine.cpu.rip, machine.cpu.rdx = rip, 0x1F48
        record = intercept(machine, vendor)
        outcome = hv.handle(record)
        assert outcome.exit is record and outcome.exit.rip == rip
        assert outcome.done and machine.cpu.rip == rip + 1
    assert hv.counters["fast"] == len(sites)


def test_a_record_made_by_hand_is_checked_before_anything_happens():
    """The dispatcher reads the access a silicon-built record carries; one made by hand is
    decoded and checked first (AMD APM Vol. 2, Table 15-31: SZ8/SZ16/SZ32 one-hot;
    EXITINFO2 is the next RIP, so EXITINFO2 − RIP is the 1..15-byte length)."""
    from hvmio_lab.errors import ExitInfoError
    from hvmio_lab.exits import SvmIoExit

    in_eax_dx = 0x1F48 << 16 | 1 << 9 | 1 << 6 | 1  # port 0x1F48, A64, SZ32, IN
    machine = machine_with(b"\xed", rdx=0x1F48, rax=0x1234_5678_9ABC_DEF0)
    hv = Hypervisor(machine, "svm", "fast", recording=False)
    for exitinfo1, exitinfo2, field in ((in_eax_dx | 1 << 4, CODE_AT + 1, "SZ"),
                                        (in_eax_dx, CODE_AT, "EXITINFO2")):  # fmt: skip
        with pytest.raises(ExitInfoError, match=field):
            hv.handle(SvmIoExit(exitinfo1, exitinfo2, CODE_AT))
        assert machine.cpu.rip == CODE_AT and machine.cpu.rax == 0x1234_5678_9ABC_DEF0
    assert sum(hv.counters.values()) == 0
    outcome = hv.handle(SvmIoExit(in_eax_dx, CODE_AT + 1, CODE_AT))
    assert outcome.done and outcome.access.port == 0x1F48 and outcome.access.size == 4
    assert machine.cpu.rip == CODE_AT + 1 and machine.cpu.rax >> 32 == 0  # 32-bit IN zero-extends
