"""The traces shipped in data/traces and the ``hvmio-lab trace`` command.

- samples.trace: written by hand from the format strings, one line per spelling;
- pvm-kvm-probe.trace: REAL, recorded from tracefs here while the probe ran on kvm_pvm;
- *.model.trace(.gz): guest runs written by traces.write, labelled as the model's.
"""

from __future__ import annotations

import io
import sys

import pytest

from hvmio_lab import resources, traces
from hvmio_lab.cli import main

TRACES = resources.data("traces")


def test_the_samples_cover_every_spelling_and_both_vendors():
    trace = traces.read(TRACES / "samples.trace")
    records = list(trace)
    spellings = {r.spelling for r in records}
    assert spellings == {s for s, _ in traces.EXIT_SPELLINGS}
    assert {r.vendor for r in records} == {"svm", "vmx"}
    assert trace.report.error_count == 0 and trace.report.skipped["other exits"] == 1
    by_spelling = {r.spelling: r for r in records}
    first = by_spelling["reason/rip (first)"]
    assert first.access is None and first.pio.port == 0x80  # the port only kvm_pio tells
    nested = by_spelling["nested (old kvm_nested_vmexit)"]
    assert nested.nested and nested.access.port == 0x80 and not nested.access.is_in
    by_port = {r.port: r for r in records if not r.nested}
    assert by_port[0x1F0].access.string and by_port[0x1F0].pio.count == 256
    assert by_port[0xB008].access.size == 4


def test_the_real_pvm_trace_has_no_io_exits_only_emulated_pio():
    """On PVM no kvm_exit fires for IN/OUT: the kernel's emulator logs kvm_pio and that is all."""
    trace = traces.read(TRACES / "pvm-kvm-probe.trace")
    assert list(trace) == []
    report = trace.report
    assert report.error_count == 0
    assert report.pio_without_exit[(0x4D0, True, 1)] == 200  # the in-kernel trial loop
    assert report.pio_without_exit[(0x1234, True, 1)] == 200  # the userspace trial loop
    assert report.skipped["kvm_userspace_exit"] >= 200
    assert "ELCR" in traces.pio_table(report)


@pytest.mark.parametrize(("name", "program", "vendor"),
                         [("uart_hello.model.trace", "uart_hello", "svm"),
                          ("ata_read.model.trace", "ata_read", "vmx")])  # fmt: skip
def test_the_shipped_program_traces_are_what_the_writer_writes_today(name, program, vendor):
    assert (TRACES / name).read_text() == traces.guest_trace(program, vendor)


def test_the_shipped_boot_trace_is_labelled_as_the_models_and_reads_clean():
    trace = traces.read(TRACES / "seabios-boot.model.trace.gz")
    stats = traces.summarize(trace)
    assert trace.report.from_model and trace.report.error_count == 0
    assert stats.exits > 1000 and stats.model_clock
    top = stats.rows()[0]
    assert (top.port, top.is_in) == (0x402, False)  # SeaBIOS's debug console, byte by byte
    assert "not a machine's" in stats.table()
    _, assumptions = stats.prediction()
    assert any("comes from the model" in a for a in assumptions)


# -- the command ------------------------------------------------------------------------------


def test_trace_command_prints_the_table_and_the_fast_path_share(capsys):
    assert main(["trace", str(TRACES / "samples.trace")]) == 0
    out = capsys.readouterr().out
    assert "0x003fd IN" in out and "fast-path share" in out and "cost model" in out


def test_trace_command_reads_stdin(capsys, monkeypatch):
    text = (TRACES / "samples.trace").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text)))
    assert main(["trace", "-"]) == 0
    assert "I/O exits: 6" in capsys.readouterr().out


def test_trace_command_on_the_pvm_trace_shows_the_emulated_accesses(capsys):
    assert main(["trace", str(TRACES / "pvm-kvm-probe.trace")]) == 0
    out = capsys.readouterr().out
    assert "no I/O exits" in out and "0x004d0 IN" in out and "PVM" in out


def test_trace_command_missing_file_is_one_line_and_status_2(tmp_path, capsys):
    assert main(["trace", str(tmp_path / "nope.trace")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no trace file" in err


def test_trace_command_bare_exit_codes_ask_for_the_vendor(tmp_path, capsys):
    path = tmp_path / "raw.trace"
    path.write_text("kvm_exit: vcpu 0 reason 30 rip 0x1000 info1 0x0000000003f80000 info2 0x0 "
                    "intr_info 0x0 error_code 0x0\n")  # fmt: skip
    assert main(["trace", str(path)]) == 2
    assert "vendor" in capsys.readouterr().err
    assert main(["trace", str(path), "--vendor", "vmx"]) == 0
    assert "0x003f8 OUT" in capsys.readouterr().out


def test_the_trace_chart_draws_each_port_split_by_path():
    from hvmio_lab import plots

    stats = traces.summarize(traces.read(TRACES / "samples.trace"))
    fig = plots.trace_chart(stats)
    assert len(fig.axes) == 1  # the sample spans microseconds: no rate panel
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    widths = {}
    for bar in ax.patches:
        label = labels[round(bar.get_y() + bar.get_height() / 2)]
        widths.setdefault(label, []).append(bar.get_width())
    assert widths["0x01f0 OUT"] == [0, 1]  # the one rep outsw: emulator, none fast
    assert widths["0x03fd IN"] == [1, 0]


def test_the_trace_chart_shows_the_rate_of_a_trace_over_seconds():
    from hvmio_lab import plots

    lines = [f"qemu-1 [000] 1{t:.6f}: kvm_exit: vcpu 0 reason IO_INSTRUCTION rip 0x1000 info1 "
             "0x0000000000800000 info2 0x0 intr_info 0x0 error_code 0x0"
             for t in (0.0, 0.5, 1.2, 3.9)]  # fmt: skip
    fig = plots.trace_chart(traces.summarize(traces.read(lines)))
    rate = fig.axes[1]
    assert [(round(b.get_x() + b.get_width() / 2), b.get_height()) for b in rate.patches] == [
        (0, 2), (1, 1), (3, 1)]  # fmt: skip
