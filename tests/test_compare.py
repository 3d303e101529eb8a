"""both_paths: one exit down two paths on twin machines, and what differs afterwards."""

import re

import pytest

from hvmio_lab import Machine
from hvmio_lab.compare import CODE_AT, both_paths, machine_differences
from hvmio_lab.hypervisor import Hypervisor

HIGH = 0xDEAD_BEEF_0000_0000


def advance(machine):
    machine.clock.advance(1_000_000)  # the PM timer now reads 3579


@pytest.mark.parametrize("vendor", ["svm", "vmx"])
def test_fast_and_emulate_leave_the_same_machine(vendor):
    c = both_paths(b"\xed", vendor=vendor, rax=HIGH, rdx=0x1F48, setup=advance)
    fast, emulate = c.outcomes
    assert (fast.path, emulate.path) == ("fast", "emulate")
    assert c.same_machine and c.differences == ()
    assert c.accesses_agree
    assert fast.instruction is None and emulate.instruction is not None
    for machine in c.machines:
        assert machine.cpu.rax == 3579 and machine.cpu.rip == CODE_AT + 1
    text = str(c)
    assert "not read" in text and "in eax, dx (ed)" in text
    assert "machines afterwards: the same; accesses agree: yes" in text
    assert "0xdeadbeef00000000 → 0xdfb" in text


def test_seed2010_against_fast_shows_the_missing_zero_extension():
    c = both_paths(b"\xed", paths=("seed2010", "fast"), rax=HIGH, rdx=0x1F48, setup=advance)
    assert not c.same_machine
    assert c.differences == ("rax: 0xdeadbeef00000dfb vs 0xdfb",)
    assert "DIFFERENT" in str(c)


def test_a_string_exit_takes_the_emulator_on_both_sides():
    def feed(machine):
        machine.bus.devices["uart"].feed(b"hi!")

    c = both_paths(b"\xf3\x6c", rdx=0x3F8, rcx=3, rdi=0x8000, setup=feed)
    assert [o.path for o in c.outcomes] == ["emulate", "emulate"]
    assert c.same_machine
    assert "memory 1" in str(c) and "68 69 21" in str(c)
    assert "request + completion" in str(c)  # the UART lives in the device model


def test_a_script_runs_several_exits():
    def two_exits(hv):
        hv.step()  # out dx, ax to the UART: refused
        cpu = hv.machine.cpu
        cpu.rip, cpu.rdx, cpu.rcx, cpu.rsi = CODE_AT + 2, 0x80, 2, 0x8000
        hv.machine.memory.write(0x8000, b"ok")
        return hv.step()

    c = both_paths(b"\x66\xef\xf3\x6e", paths=("seed2010", "fast"), rdx=0x3F8, script=two_exits)
    stale, fast = c.outcomes
    assert str(stale.access) == "OUT 16-bit port 0x03f8" and stale.fault is not None
    assert fast.fault is None and fast.done
    assert any(d.startswith("device access") for d in c.differences)
    assert c.machines[1].bus.devices["post"].codes == [ord("o"), ord("k")]


def test_faults_show_where_rip_stands():
    c = both_paths(b"\x66\xef", paths=("seed2010", "fast"), rdx=0x3F8)
    rows = {what: (a, b) for what, a, b in c.rows()}
    assert rows["fault injected"] == ("#GP at RIP 0x1002", "#GP at RIP 0x1000")
    assert "rip: 0x1002 vs 0x1000" in c.differences


def test_repr_is_short_and_has_no_addresses():
    c = both_paths(b"\xec", rdx=0x3FD)
    assert repr(c) == "<Comparison fast vs emulate: same machine>"
    assert not re.search(r"0x7f[0-9a-f]{8,}", str(c))


def test_stage_lines_list_each_stage_once():
    c = both_paths(b"\xed", rdx=0x1F48)
    lines = c.stage_lines()
    assert lines[0].split() == ["stage", "fast", "emulate"]
    names = [line.split()[0] for line in lines[1:-1]]
    assert names == ["exit", "fetch", "decode", "device", "writeback"]
    assert lines[-1].startswith("total ns")
    fetch = next(line for line in lines if line.startswith("fetch"))
    assert fetch.split()[1] == "—"  # the fast path never fetches


def test_bad_arguments():
    with pytest.raises(ValueError, match="no register named 'eax'"):
        both_paths(b"\xed", eax=1)
    with pytest.raises(ValueError, match="two paths"):
        both_paths(b"\xed", paths=("fast",))


def test_machine_differences_sees_memory_pages_clock_and_devices():
    a, b = Machine(64), Machine(64)
    assert machine_differences(a, b) == ()
    b.memory.write(0x2000, b"\x01\x02")
    b.memory.set_present(0x5000, False)
    b.clock.advance(5)
    b.bus.write(0x1234, 1, 7)  # unclaimed: logged, dropped
    diffs = machine_differences(a, b)
    assert "memory 0x2000+2: 00 00 vs 01 02" in diffs
    assert "not-present pages differ: {} vs {0x5000}" in diffs
    assert "clock: 0 ns vs 5 ns" in diffs
    assert any(d.startswith("device access 1: (none) vs OUT 0x1234/1") for d in diffs)
    assert machine_differences(Machine(32), Machine(64))[0] == "mode: 32 vs 64"


def test_exit_stage_does_not_include_the_recording_snapshot(monkeypatch):
    """Regression: the snapshot taken for the state diff (recording overhead, a copy of all
    guest memory) used to be charged to the "exit" stage, which should hold only the exit
    record's construction. A fake clock makes the snapshot cost one second."""
    import hvmio_lab.hypervisor as hypervisor_module
    import hvmio_lab.outcome as outcome_module

    now = [0]

    def clock():
        now[0] += 1
        return now[0]

    monkeypatch.setattr(hypervisor_module, "perf_counter_ns", clock)
    monkeypatch.setattr(outcome_module, "perf_counter_ns", clock)
    real_snapshot = Machine.snapshot

    def slow_snapshot(self):
        now[0] += 10**9
        return real_snapshot(self)

    monkeypatch.setattr(Machine, "snapshot", slow_snapshot)
    machine = Machine.pc(64)
    machine.memory.write(CODE_AT, b"\xed")
    machine.cpu.rip, machine.cpu.rdx = CODE_AT, 0x1F48
    outcome = Hypervisor(machine, "svm", "fast").step()
    assert outcome.stages["exit"] < 10**9
    assert outcome.total_ns < 10**9
    assert outcome.diff.register("rip") == (CODE_AT, CODE_AT + 1)  # the diff still works
