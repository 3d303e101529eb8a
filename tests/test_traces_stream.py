"""Traces at scale and in both directions: a 50 MB file streamed in flat memory, the one-match
fast path agreeing with the general parsers, a guest run written as a trace and read back,
and the statistics (per port, fast-path share, rate, exit-to-entry) over a known trace.
"""

from __future__ import annotations

import tracemalloc

import pytest

from hvmio_lab import Guest, timing, traces

PIPE = "%16s-%-7d [%03d] d..2. %12.6f: "


def exit_line(t, pid, reason, rip, info1, info2=0, vcpu=0):
    return (PIPE % ("qemu-system-x86", pid, 0, t) + f"kvm_exit: vcpu {vcpu} reason {reason} "
            f"rip {rip:#x} info1 0x{info1:016x} info2 0x{info2:016x} intr_info 0x{0:08x} "
            f"error_code 0x{0:08x}")  # fmt: skip


def pio_line(t, pid, is_in, port, size, count, val):
    more = " (...)" if count > 1 else ""
    return PIPE % ("qemu-system-x86", pid, 0, t) + (
        f"kvm_pio: pio_{'read' if is_in else 'write'} at {port:#x} size {size} count {count} "
        f"val {val:#x}{more}")  # fmt: skip


def entry_line(t, pid, vcpu=0):
    return PIPE % ("qemu-system-x86", pid, 0, t) + f"kvm_entry: vcpu {vcpu}, rip 0x1000"


# The PM-timer poll: `in eax, dx` from 0xb008, VMX exit qualification size−1 = 3, IN = bit 3.
PMTIMER_Q = 0xB008 << 16 | 1 << 3 | 3
# `rep insw` from 0x1f0: size−1 = 1, IN, string (bit 4), REP (bit 5).
INSW_Q = 0x1F0 << 16 | 1 << 5 | 1 << 4 | 1 << 3 | 1


def block(t0: float, pid: int = 7) -> list[str]:
    """One millisecond of a guest: 3 PM-timer reads, one REP INSW, each completed and entered."""
    lines = []
    for k in range(3):
        t = t0 + k * 2e-4
        lines += [exit_line(t, pid, "IO_INSTRUCTION", 0x1000, PMTIMER_Q),
                  pio_line(t + 1e-6, pid, True, 0xB008, 4, 1, 0x1234),
                  entry_line(t + 2e-6, pid)]  # fmt: skip
    t = t0 + 8e-4
    lines += [exit_line(t, pid, "IO_INSTRUCTION", 0x2000, INSW_Q),
              PIPE % ("qemu-system-x86", pid, 0, t + 1e-6)
              + "kvm_userspace_exit: reason KVM_EXIT_IO (2)",
              pio_line(t + 5e-6, pid, True, 0x1F0, 2, 256, 0x4000),
              entry_line(t + 6e-6, pid)]  # fmt: skip
    return lines


# -- the fast path and the general parsers agree ----------------------------------------------


@pytest.mark.parametrize("line", block(1.0), ids=lambda s: s.split(": ")[1][:12])
def test_the_one_match_path_reads_a_line_as_the_general_parsers_do(line):
    """The same line, with its prefix (the one-match path) and pasted bare (the parsers)."""
    payload_from = line.index("kvm_")
    with_prefix = traces.read([exit_line(0.5, 7, "IO_INSTRUCTION", 0x1000, PMTIMER_Q), line])
    bare = traces.read(["kvm_exit: " + exit_line(0.5, 7, "IO_INSTRUCTION", 0x1000,
                                                 PMTIMER_Q).split("kvm_exit: ")[1],
                        line[payload_from:]])  # fmt: skip
    a, b = list(with_prefix), list(bare)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert (x.access, x.rip, x.info1, x.info2, x.vendor, x.pio, x.userspace, x.spelling) == (
            y.access,
            y.rip,
            y.info1,
            y.info2,
            y.vendor,
            y.pio,
            y.userspace,
            y.spelling,
        )


# -- statistics over a known trace --------------------------------------------------------------


def test_stats_per_port_share_rate_and_exit_to_entry():
    lines = [line for ms in range(10) for line in block(2.0 + ms * 1e-3)]
    stats = traces.summarize(traces.read(lines))
    assert stats.exits == 40
    rows = stats.rows()
    assert (rows[0].port, rows[0].is_in, rows[0].size, rows[0].exits) == (0xB008, True, 4, 30)
    assert (rows[1].port, rows[1].size, rows[1].exits, rows[1].string) == (0x1F0, 2, 10, 10)
    assert stats.fast_path_share == pytest.approx(30 / 40)
    assert (stats.string, stats.rep, stats.userspace) == (10, 10, 10)
    # 40 exits from t=2.0 to the last at 2.0 + 9 ms + 0.8 ms
    assert stats.rate == pytest.approx(39 / 9.8e-3)
    assert stats.mean_exit_to_entry == pytest.approx((30 * 2e-6 + 10 * 6e-6) / 40)
    assert (stats.entry_min, stats.entry_max) == (pytest.approx(2e-6), pytest.approx(6e-6))
    table = stats.table()
    assert "0x0b008" in table and "75.0%" in table and "PM timer" in table


def test_the_prediction_uses_the_traced_mix_and_says_its_assumptions():
    lines = [line for ms in range(10) for line in block(2.0 + ms * 1e-3)]
    stats = traces.summarize(traces.read(lines))
    prediction, assumptions = stats.prediction("amd-k8-2010")
    profile = timing.load_profile("amd-k8-2010")
    mix = prediction.mix
    assert mix.eligible == pytest.approx(0.75)
    assert mix.device_model_share == pytest.approx(0.25)
    # guest work: the traced period in cycles, less the emulator's intercept for this mix
    period = profile.clock_hz / stats.rate
    bare = timing.predict(profile, timing.Mix.of(0.75, 0.25)).intercept_cycles["emulate"]
    assert mix.guest_cycles == pytest.approx(period - bare)
    assert prediction.cycles["fast"] < prediction.cycles["emulate"]
    text = " ".join(assumptions)
    assert "kvm_userspace_exit" in text and "model" in text


# -- a guest run as a trace, and back ----------------------------------------------------------


@pytest.mark.parametrize("vendor", ["svm", "vmx"])
@pytest.mark.parametrize("program", ["uart_hello", "ata_read"])
def test_a_guest_run_written_as_a_trace_reads_back_as_the_same_exits(program, vendor):
    guest = Guest(program, vendor=vendor, recording=True)
    assert guest.run().halted
    text = "\n".join(traces.trace_lines(guest.outcomes, about=program))
    assert traces.MODEL_NOTE in text
    trace = traces.read(text)
    records = list(trace)
    assert trace.report.error_count == 0 and len(records) == len(guest.outcomes)
    for record, outcome in zip(records, guest.outcomes, strict=True):
        assert record.rip == outcome.exit.rip
        expected = outcome.exit.access()
        if vendor == "svm":
            assert record.access == expected
        else:  # a trace has no VM-exit instruction-information: INS/OUTS lose only that
            assert record.access.agrees_with(expected)
            assert record.access._replace(address_size=None, segment=None) == expected._replace(
                address_size=None, segment=None)  # fmt: skip
        assert record.pio.port == outcome.access.port
        assert record.pio.count == len(outcome.events)
        assert record.userspace == (True if outcome.request is not None else None)


def test_write_to_a_path_counts_the_exits(tmp_path):
    guest = Guest("uart_hello", recording=True)
    guest.run()
    path = tmp_path / "uart.trace"
    assert traces.write(guest.outcomes, path, about="uart_hello") == len(guest.outcomes)
    assert [r.rip for r in traces.read(path)] == [o.exit.rip for o in guest.outcomes]


# -- 50 MB, streamed --------------------------------------------------------------------------


def test_a_50_mb_file_streams_in_flat_memory(tmp_path):
    """All 50 MB are read; the last fifth under tracemalloc (which slows Python several-fold):
    a reader that kept anything per line would grow there by megabytes."""
    one_second = [line for ms in range(200) for line in block(10.0 + ms * 1e-3)]
    chunk = "\n".join(one_second) + "\n"
    path = tmp_path / "big.trace"
    with path.open("w") as f:
        while f.tell() < 50_000_000:
            f.write(chunk)
    size = path.stat().st_size
    lines = size // (len(chunk) // len(one_second))
    traced_from = lines * 4 // 5

    def watched(records):
        tracing = False
        for r in records:
            if not tracing and r.line > traced_from:
                tracemalloc.start()
                tracing = True
            yield r

    try:
        stats = traces.summarize(watched(traces.read(path)))
        assert tracemalloc.is_tracing()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stats.exits == pytest.approx(lines * 4 / 13, rel=0.01)
    assert peak < 500_000, f"peak {peak:,} bytes over the last {size // 5:,} bytes"
