"""Reading KVM traces: every spelling of kvm_exit/kvm_pio/kvm_entry, written from the kernel's
own printf format strings (arch/x86/kvm/trace.h over the years, as issue 15 lists them) and
the tracers' prefixes, then read back. The expected accesses are worked out here from the
manuals' bit positions (APM Vol. 2 §15.10.2 Figure 15-2; SDM Vol. 3C exit qualification for
I/O instructions), never taken from the parser.
"""

from __future__ import annotations

import io
import re

import pytest

from hvmio_lab import HvmioError, traces
from hvmio_lab.traces import TraceLineError, VendorNeeded

# -- the format strings, as the kernel and the tracers print them -----------------------------

KVM_EXIT_FIRST = "reason %s rip 0x%lx"
KVM_EXIT_INFO = "reason %s rip 0x%lx info %llx %llx"
KVM_EXIT_VCPU = "vcpu %u reason %s rip 0x%lx info %llx %llx"  # 2019
KVM_EXIT_FLAGS = "vcpu %u reason %s%s%s rip 0x%lx info %llx %llx"  # 2020: VMX reason flags
KVM_EXIT_MODERN = (
    "vcpu %u reason %s%s%s rip 0x%lx info1 0x%016llx info2 0x%016llx "
    "intr_info 0x%08x error_code 0x%08x"
)  # mid-2020, 5.10 has it
KVM_EXIT_REQUESTS = KVM_EXIT_MODERN + " requests 0x%016llx"  # a proposed trailing field
NESTED_OLD = (
    "rip: 0x%016llx reason: %s ext_inf1: 0x%016llx ext_inf2: 0x%016llx "
    "ext_int: 0x%08x ext_int_err: 0x%08x"
)
NESTED_ISSUE = "rip 0x%lx reason %s info1 0x%llx info2 0x%llx int_info 0x%08x int_info_err 0x%08x"
KVM_PIO_OLD = "pio_%s at 0x%x size %d count %d"
KVM_PIO_VAL = "pio_%s at 0x%x size %d count %d val 0x%x %s"
KVM_ENTRY_OLD = "vcpu %u"
KVM_ENTRY_RIP = "vcpu %u, rip 0x%lx"
KVM_USERSPACE_EXIT = "reason %s (%d)"

TRACE_PIPE = "%16s-%-7d [%03d] %5s %12.6f: %s: "  # tracefs trace / trace_pipe
TRACE_CMD = "%16s-%-5d [%03d] %12.6f: %-20s"  # trace-cmd report pads the event name
PERF_SCRIPT = "%16s %6d [%03d] %12.6f: kvm:%s: "  # perf script


def printf(fmt: str, *args) -> str:
    """C printf for the conversions these formats use (drop the l/ll length modifiers)."""
    return re.sub(r"%(-?\d*)l{0,2}([xdus])", lambda m: "%" + m[1] + m[2].replace("u", "d"),
                  fmt) % args  # fmt: skip


def pipe(event: str, payload: str, t: float = 100.0, task="qemu-system-x86", pid=4242,
         cpu=1) -> str:  # fmt: skip
    return printf(TRACE_PIPE, task, pid, cpu, "d..2.", t, event) + payload


# -- the exits, built from the manuals' bit positions --------------------------------------

# SVM EXITINFO1: TYPE bit 0 (1 = IN), STR bit 2, REP bit 3, SZ8/16/32 bits 4-6, A16/32/64
# bits 7-9, SEG bits 12:10, PORT bits 31:16.
SVM_IN_LSR = 0x3FD << 16 | 1 << 7 | 1 << 4 | 1  # in al, dx (16-bit code)
SVM_REP_OUTSW = 0x1F0 << 16 | 3 << 10 | 1 << 8 | 1 << 5 | 1 << 3 | 1 << 2  # rep outsw, DS
# VMX exit qualification: size − 1 bits 2:0, direction bit 3 (1 = IN), string bit 4, REP bit
# 5, operand encoding bit 6 (1 = immediate), port bits 31:16.
VMX_OUT_THR = 0x3F8 << 16  # out dx, al
VMX_IN_PMTIMER = 0xB008 << 16 | 1 << 3 | 3  # in eax, dx
VMX_OUT_POST_IMM = 0x80 << 16 | 1 << 6  # out 0x80, al
VMX_REP_INSW = 0x1F0 << 16 | 1 << 5 | 1 << 4 | 1 << 3 | 1  # rep insw


def one(text: str, vendor=None):
    trace = traces.read(text, vendor=vendor)
    records = list(trace)
    assert len(records) == 1, (records, trace.report)
    return records[0], trace.report


def modern(reason, rip, info1, info2=0, vcpu=0, flags=("", "")):
    return printf(KVM_EXIT_MODERN, vcpu, reason, *flags, rip, info1, info2, 0, 0)


# -- every kvm_exit spelling -----------------------------------------------------------------


def test_modern_svm_line_decodes_exitinfo1_and_next_rip():
    r, report = one(pipe("kvm_exit", modern("io", 0x7C0E, SVM_IN_LSR, 0x7C0F, vcpu=3)))
    assert (r.vendor, r.vcpu, r.rip, r.time, r.cpu) == ("svm", 3, 0x7C0E, 100.0, 1)
    a = r.access
    assert (a.port, a.size, a.is_in, a.string, a.rep, a.address_size) == (
        0x3FD, 1, True, False, False, 16)  # fmt: skip
    assert report.io_exits == 1 and report.error_count == 0


def test_modern_vmx_line_decodes_the_exit_qualification():
    r, _ = one(pipe("kvm_exit", modern("IO_INSTRUCTION", 0xFFFFFFFF81001234, VMX_IN_PMTIMER)))
    a = r.access
    assert r.vendor == "vmx" and r.rip == 0xFFFFFFFF81001234
    assert (a.port, a.size, a.is_in, a.string, a.immediate) == (0xB008, 4, True, False, False)


def test_vmx_immediate_operand_and_rep_string():
    r, _ = one(pipe("kvm_exit", modern("IO_INSTRUCTION", 0x1000, VMX_OUT_POST_IMM)))
    assert (r.access.port, r.access.is_in, r.access.immediate) == (0x80, False, True)
    r, _ = one(pipe("kvm_exit", modern("IO_INSTRUCTION", 0x1000, VMX_REP_INSW)))
    assert (r.access.size, r.access.string, r.access.rep, r.access.is_in) == (2, True, True, True)


def test_svm_rep_outs_carries_its_segment_and_address_size():
    r, _ = one(pipe("kvm_exit", modern("io", 0x9000, SVM_REP_OUTSW, 0x9003)))
    a = r.access
    assert (a.string, a.rep, a.size, a.is_in, a.address_size, a.segment) == (
        True, True, 2, False, 32, "DS")  # fmt: skip


@pytest.mark.parametrize("reason", ["io", "IOIO", "EXIT_IOIO"])
def test_every_svm_reason_spelling_proves_svm(reason):
    r, _ = one(pipe("kvm_exit", modern(reason, 0x7C0E, SVM_IN_LSR, 0x7C0F)))
    assert r.vendor == "svm" and r.access.port == 0x3FD


@pytest.mark.parametrize(
    ("fmt", "args"),
    [
        (KVM_EXIT_INFO, ("IO_INSTRUCTION", 0x1000, VMX_OUT_THR, 0)),
        (KVM_EXIT_VCPU, (2, "IO_INSTRUCTION", 0x1000, VMX_OUT_THR, 0)),
        (KVM_EXIT_FLAGS, (2, "IO_INSTRUCTION", "", "", 0x1000, VMX_OUT_THR, 0)),
        (KVM_EXIT_MODERN, (2, "IO_INSTRUCTION", "", "", 0x1000, VMX_OUT_THR, 0, 0, 0)),
        (KVM_EXIT_REQUESTS, (2, "IO_INSTRUCTION", "", "", 0x1000, VMX_OUT_THR, 0, 0, 0, 0x400)),
    ],
    ids=["info", "vcpu-info", "flags", "modern", "requests-trailing"],
)
def test_each_generation_with_info_gives_the_same_access(fmt, args):
    r, report = one(pipe("kvm_exit", printf(fmt, *args)))
    assert (r.access.port, r.access.size, r.access.is_in) == (0x3F8, 1, False)
    assert r.rip == 0x1000 and report.error_count == 0


def test_first_spelling_has_no_info_and_takes_the_port_from_kvm_pio():
    text = "\n".join([
        pipe("kvm_exit", printf(KVM_EXIT_FIRST, "IO_INSTRUCTION", 0x1000)),
        pipe("kvm_pio", printf(KVM_PIO_OLD, "write", 0x3F8, 1, 1)),
    ])  # fmt: skip
    r, _ = one(text)
    assert r.access is None and r.port == 0x3F8 and r.pio.value is None
    assert r.spelling.startswith("reason/rip")


def test_reason_flags_are_read_and_a_failed_entry_is_not_an_io_exit():
    flagged = printf(KVM_EXIT_FLAGS, 0, "INVALID_STATE", " ", "FAILED_VMENTRY", 0xFFF0, 0, 0)
    trace = traces.read(pipe("kvm_exit", flagged))
    assert list(trace) == [] and trace.report.skipped["other exits"] == 1
    assert trace.report.error_count == 0


def test_other_exits_and_other_lines_are_counted_and_skipped():
    text = "\n".join([
        "# tracer: nop",
        pipe("kvm_exit", modern("HLT", 0x1000, 0)),
        pipe("kvm_exit", modern("msr", 0x1000, 0, 0)),
        pipe("kvm_inj_virq", "irq 48"),
        pipe("kvm_exit", modern("io", 0x7C0E, SVM_IN_LSR, 0x7C0F)),
    ])  # fmt: skip
    trace = traces.read(text)
    assert len(list(trace)) == 1
    assert trace.report.skipped["other exits"] == 2
    assert trace.report.skipped["other lines"] == 2 and trace.report.lines == 5


# -- prefixes: trace-cmd report, perf script, bare payloads -----------------------------------


def test_trace_cmd_report_prefix_with_plugin_spelling():
    line = printf(TRACE_CMD, "qemu-system-x86", 4012, 3, 2310.123456, "kvm_exit:") + printf(
        KVM_EXIT_INFO, "IOIO", 0x7C0E, SVM_IN_LSR, 0x7C0F)  # fmt: skip
    r, _ = one(line)
    assert (r.vendor, r.time, r.cpu, r.access.port) == ("svm", 2310.123456, 3, 0x3FD)
    assert r.task.startswith("qemu-system-x86")


def test_perf_script_prefix():
    line = printf(PERF_SCRIPT, "CPU 0/KVM", 5000, 0, 77.5, "kvm_exit") + modern(
        "IO_INSTRUCTION", 0x1000, VMX_OUT_THR)  # fmt: skip
    pio = printf(PERF_SCRIPT, "CPU 0/KVM", 5000, 0, 77.500001, "kvm_pio") + printf(
        KVM_PIO_VAL, "write", 0x3F8, 1, 1, 0x41, "")  # fmt: skip
    r, _ = one(line + "\n" + pio)
    assert (r.time, r.access.port, r.pio.value) == (77.5, 0x3F8, 0x41)


def test_a_pasted_bare_payload_reads_too():
    r, _ = one("kvm_exit: " + modern("io", 0x7C0E, SVM_IN_LSR, 0x7C0F))
    assert r.time is None and r.access.port == 0x3FD


# -- kvm_pio, kvm_entry, kvm_userspace_exit, nested --------------------------------------------


def test_kvm_pio_with_val_and_the_ellipsis_for_counts_above_one():
    text = "\n".join([
        pipe("kvm_exit", modern("IO_INSTRUCTION", 0x1000, VMX_REP_INSW), t=1.0),
        pipe("kvm_userspace_exit", printf(KVM_USERSPACE_EXIT, "KVM_EXIT_IO", 2), t=1.000002),
        pipe("kvm_pio", printf(KVM_PIO_VAL, "read", 0x1F0, 2, 256, 0x4000, "(...)"), t=1.00001),
        pipe("kvm_entry", printf(KVM_ENTRY_RIP, 0, 0x1002), t=1.000015),
    ])  # fmt: skip
    r, _ = one(text)
    assert r.pio == traces.PioLine(True, 0x1F0, 2, 256, 0x4000, True)
    assert r.userspace is True
    assert r.exit_to_entry == pytest.approx(15e-6)


def test_kvm_pio_of_one_element_and_the_old_entry_line():
    text = "\n".join([
        pipe("kvm_exit", modern("io", 0x7C0E, SVM_IN_LSR, 0x7C0F), t=5.0),
        pipe("kvm_pio", printf(KVM_PIO_VAL, "read", 0x3FD, 1, 1, 0x60, ""), t=5.000001),
        pipe("kvm_entry", printf(KVM_ENTRY_OLD, 0), t=5.000003),
    ])  # fmt: skip
    r, _ = one(text)
    assert r.pio == traces.PioLine(True, 0x3FD, 1, 1, 0x60, False)
    assert r.userspace is None and r.exit_to_entry == pytest.approx(3e-6)


def test_kvm_pio_pairs_by_thread_not_by_line_order():
    text = "\n".join([
        pipe("kvm_exit", modern("io", 0x7C0E, SVM_IN_LSR, 0x7C0F, vcpu=0), pid=10),
        pipe("kvm_exit", modern("IO_INSTRUCTION", 0x1000, VMX_OUT_THR, vcpu=1), pid=11),
        pipe("kvm_pio", printf(KVM_PIO_VAL, "write", 0x3F8, 1, 1, 0x41, ""), pid=11),
        pipe("kvm_pio", printf(KVM_PIO_VAL, "read", 0x3FD, 1, 1, 0x60, ""), pid=10),
    ])  # fmt: skip
    records = {r.vcpu: r for r in traces.read(text)}
    assert records[0].pio.port == 0x3FD and records[1].pio.port == 0x3F8


@pytest.mark.parametrize("fmt", [NESTED_OLD, NESTED_ISSUE], ids=["old", "issue-spelling"])
def test_nested_vmexit_alone_is_an_exit_of_the_l2_guest(fmt):
    payload = printf(fmt, 0x7C0E, "io", SVM_IN_LSR, 0x7C0F, 0, 0)
    r, _ = one(pipe("kvm_nested_vmexit", payload))
    assert r.nested and r.vendor == "svm" and r.access.port == 0x3FD


def test_nested_vmexit_after_its_kvm_exit_is_the_same_exit_not_two():
    text = "\n".join([
        pipe("kvm_exit", modern("IO_INSTRUCTION", 0x1000, VMX_OUT_THR)),
        pipe("kvm_nested_vmexit", modern("IO_INSTRUCTION", 0x1000, VMX_OUT_THR)),
    ])  # fmt: skip
    r, report = one(text)
    assert r.nested and report.io_exits == 1


# -- vendor: proven by the spelling, else asked for --------------------------------------------


def test_a_bare_exit_code_needs_vendor_and_then_decodes():
    line = pipe("kvm_exit", modern("30", 0x1000, VMX_OUT_THR))  # VMX basic exit reason 30
    with pytest.raises(VendorNeeded, match="vendor="):
        list(traces.read(line))
    r, _ = one(line, vendor="vmx")
    assert r.vendor == "vmx" and r.access.port == 0x3F8
    svm_code = pipe("kvm_exit", modern("0x7b", 0x7C0E, SVM_IN_LSR, 0x7C0F))  # VMEXIT_IOIO
    assert one(svm_code, vendor="svm")[0].access.port == 0x3FD
    assert list(traces.read(line, vendor="svm")) == []  # 30 on SVM is not an I/O exit


def test_a_vendor_that_contradicts_the_line_is_reported():
    trace = traces.read(pipe("kvm_exit", modern("io", 0x7C0E, SVM_IN_LSR, 0x7C0F)), vendor="vmx")
    assert list(trace) == []
    assert "SVM" in str(trace.report.errors[0])


def test_an_unknown_vendor_argument_is_refused():
    with pytest.raises(HvmioError, match="vendor"):
        traces.read("", vendor="arm")


# -- bad input: garbage, truncation, invalid records, non-UTF-8 -------------------------------


def test_malformed_lines_are_reported_by_number_and_the_rest_is_read():
    good = pipe("kvm_exit", modern("io", 0x7C0E, SVM_IN_LSR, 0x7C0F))
    truncated = good[: good.index("info1") + 12]
    text = "\n".join([
        good,
        truncated,  # line 2: cut inside info1
        pipe("kvm_pio", "pio_read at 0x3fd size 3 count 1"),  # line 3: size 3 cannot be
        pipe("kvm_exit", "vcpu 0 reason io"),  # line 4: no rip
        "\x00\x01 garbage kvm_exit: \x7f",  # line 5: not a tracer's line
        pipe("kvm_exit", modern("io", 0x7C0E, 0x3FD << 16 | 0b011 << 4, 0x7C0F)),  # 6: SZ
        good,
    ])  # fmt: skip
    trace = traces.read(text)
    records = list(trace)
    assert [r.line for r in records] == [1, 7]
    numbers = {e.number: e.why for e in trace.report.errors}
    assert sorted(numbers) == [2, 3, 4, 6]
    assert "cut short" in numbers[2] or "truncated" in numbers[2]
    assert "size 3" in numbers[3]
    assert "SZ" in numbers[6] and "EXITINFO1" in numbers[6]
    assert trace.report.error_count == 4 and "line 2" in str(trace.report)


def test_svm_next_rip_before_rip_is_refused_with_the_reason():
    trace = traces.read(pipe("kvm_exit", modern("io", 0x7C0E, SVM_IN_LSR, 0x7C0E)))
    assert list(trace) == []
    assert "EXITINFO2" in trace.report.errors[0].why


def test_non_utf8_bytes_in_a_binary_file():
    good = pipe("kvm_exit", modern("io", 0x7C0E, SVM_IN_LSR, 0x7C0F)).encode()
    blob = good.replace(b"qemu", b"q\xffmu") + b"\n" + b"\xfe\xfa kvm_exit: \xc3\x28\n" + good
    trace = traces.read(io.BytesIO(blob))
    records = list(trace)
    assert len(records) == 2 and records[0].task.startswith("q\ufffdmu")
    assert trace.report.skipped["other lines"] == 1


def test_a_path_a_text_file_and_a_string_read_alike(tmp_path):
    text = pipe("kvm_exit", modern("io", 0x7C0E, SVM_IN_LSR, 0x7C0F)) + "\n"
    path = tmp_path / "t.trace"
    path.write_text(text)
    from_path = list(traces.read(path)) + list(traces.read(str(path)))
    with path.open() as f:
        from_file = list(traces.read(f))
    assert from_path[0] == from_path[1] == from_file[0] == one(text)[0]
    with pytest.raises(HvmioError, match="no trace file"):
        traces.read(tmp_path / "missing").exits()


# -- perf kvm stat report ---------------------------------------------------------------------

PERF_HEADER = "Analyze events for all VMs, all VCPUs:"
PERF_COLUMNS = "%20s %10s %9s %9s %11s %11s %16s"
PERF_ROW = " %10llu %8.2f%% %8.2f%% %9.2fus %9.2fus %9.2fus ( +-%7.2f%% )"  # after KEY:DIR
PERF_ROW_OLD = " %10llu %8.2f%% %8.2f%% %9.2fus ( +-%7.2f%% )"  # older perf: no Min/Max
PERF_TOTAL = "Total Samples:%d, Total events handled time:%.2fus."


def test_perf_kvm_stat_report_with_and_without_min_max():
    text = "\n".join([
        PERF_HEADER, "",
        printf(PERF_COLUMNS, "IO Port Access", "Samples", "Samples%", "Time%", "Min Time",
               "Max Time", "Avg time"),
        "0x3f8:POUT" + printf(PERF_ROW, 120, 60.0, 55.5, 1.5, 20.25, 3.1, 2.0),
        "0x3fd:PIN" + printf(PERF_ROW_OLD, 80, 40.0, 44.5, 2.75, 1.0),
        "", printf(PERF_TOTAL, 200, 612.5),
    ])  # fmt: skip
    report = traces.read_report(text)
    assert report.scope == "all VMs, all VCPUs"
    out, inp = report.rows
    assert (out.port, out.is_in, out.samples, out.min_us, out.max_us, out.avg_us) == (
        0x3F8, False, 120, 1.5, 20.25, 3.1)  # fmt: skip
    assert (inp.port, inp.is_in, inp.min_us, inp.avg_us) == (0x3FD, True, None, 2.75)
    assert (report.total_samples, report.total_us) == (200, 612.5)
    trace = traces.read(text)
    assert list(trace) == [] and trace.report.skipped["other lines"] == 7
    assert trace.report.perf_report and "read_report" in str(trace.report)


def test_a_text_without_rows_is_not_a_report():
    with pytest.raises(TraceLineError, match="PIN/POUT"):
        traces.read_report("Analyze events for all VMs, all VCPUs:\n")
