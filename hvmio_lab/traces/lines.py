"""One KVM trace line at a time: the tracer's prefix, then one parser per format spelling.

The kernel's ``kvm_exit`` tracepoint (arch/x86/kvm/trace.h) has printed five spellings over
the years; trace-cmd's kvm plugin and ``perf script`` print the same fields with their own
prefixes and, for SVM, their own reason names. The spellings are regular expressions here,
tried newest first (the 2019 ``vcpu %u`` and the 2020 reason flags are optional parts of
them), so a learner can see which generation a line is (``ExitLine.spelling``). ``LINE``, at
the end, reads the commonest lines whole in one match.
Nothing here decodes EXITINFO1 or the exit qualification: that is ``exits``' job.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ..errors import HvmioError

# The first line after "# tracer: nop" of a trace written by traces.write: the times in it are
# the model's virtual clock, so no rate is read from them.
MODEL_NOTE = "# written by hvmio_lab from the MODEL's exit records, not recorded on any KVM host"


class TraceLineError(HvmioError, ValueError):
    """A trace line that names a KVM event but cannot be read; says the line number and why."""

    def __init__(self, number: int, why: str, text: str = ""):
        self.number, self.why, self.text = number, why, text
        shown = text if len(text) <= 120 else text[:117] + "..."
        super().__init__(f"line {number}: {why}" + (f": {shown!r}" if shown else ""))


class VendorNeeded(HvmioError):
    """An I/O exit whose line does not say SVM or VMX, read without ``vendor=``."""


# -- the prefix: trace_pipe / tracefs ``trace``, trace-cmd report, perf script ---------------

# The event name, where a tracer puts it: "TASK-PID [CPU] FLAGS TIME: kvm_exit: " (tracefs,
# trace-cmd; flags optional), "COMM PID[/TID] [CPU] TIME: [PERIOD] kvm:kvm_exit: " (perf
# script), or nothing before it (a pasted payload). kvm_nested_vmexit_inject shares a stem,
# so the name must be whole. This is the general path, for the lines ``LINE`` does not match.
EVENTS = frozenset({"kvm_exit", "kvm_pio", "kvm_entry", "kvm_nested_vmexit",
                    "kvm_userspace_exit"})  # fmt: skip


class Prefix(NamedTuple):
    task: str | None  # "qemu-system-x86-1234", "CPU 0/KVM-1240": one thread runs one vCPU
    cpu: int | None  # the host CPU the event was logged on
    time: float | None  # seconds, as the tracer printed them


_NO_PREFIX = Prefix(None, None, None)


def split_event(line: str) -> tuple[str, Prefix, str] | None:
    """(event, prefix, payload) of a KVM event line, or None for any other line."""
    start = 0
    while True:
        i = line.find("kvm_", start)
        if i < 0:
            return None
        j = line.find(":", i)
        if j < 0:
            return None
        if (
            line[i:j] in EVENTS
            and line[j + 1 : j + 2] in (" ", "")
            and (i == 0 or line[i - 1] in " \t:")
        ):
            break
        start = i + 4
    head = line[:i].rstrip()
    if head.endswith("kvm:"):  # perf script: "kvm:kvm_exit"
        head = head[:-4].rstrip()
    payload = line[j + 1 :].strip()
    if not head:
        return line[i:j], _NO_PREFIX, payload  # a pasted payload: nothing before the event
    prefix = _split_prefix(head)
    if prefix is None:
        return None  # the event name inside some other text, not a tracer's line
    return line[i:j], prefix, payload


def _split_prefix(head: str) -> Prefix | None:
    """ "TASK-PID [CPU] FLAGS TIME:" (perf: "... TIME: PERIOD") → Prefix, or None."""
    left = head.rfind("[")
    right = head.find("]", left)
    if left < 0 or right < 0:
        return None
    stamp = head[right + 1 :].split()
    times = [t for t in stamp if t.endswith(":")]
    try:
        cpu = int(head[left + 1 : right])
        time = float(times[-1][:-1])
    except (ValueError, IndexError):
        return None
    return Prefix(head[:left].strip() or None, cpu, time)


# -- kvm_exit and kvm_nested_vmexit ----------------------------------------------------------

HEX = r"([0-9a-fA-F]+)"
_REASON = r"reason:? (?P<reason>\S+)(?P<flags>(?: \S+)*?)"
_VCPU = r"(?:vcpu (?P<vcpu>\d+),? )?"
# Newest first: the first that matches names the spelling.
EXIT_SPELLINGS = (
    (
        "info1/info2 (5.10+)",
        re.compile(
            rf"^{_VCPU}{_REASON} rip 0x(?P<rip>[0-9a-fA-F]+) info1 (?:0x)?(?P<info1>[0-9a-fA-F]+)"
            rf" info2 (?:0x)?(?P<info2>[0-9a-fA-F]+)"
            rf"(?: intr_info (?:0x)?{HEX} error_code (?:0x)?{HEX})?(?P<rest>(?: .*)?)$"
        ),
    ),
    (
        "info (before 5.10; trace-cmd plugin)",
        re.compile(
            rf"^{_VCPU}{_REASON} rip 0x(?P<rip>[0-9a-fA-F]+)"
            rf" info (?P<info1>[0-9a-fA-F]+) (?P<info2>[0-9a-fA-F]+)(?P<rest>(?: .*)?)$"
        ),
    ),
    (
        "nested (old kvm_nested_vmexit)",
        re.compile(
            r"^(?:vcpu (?P<vcpu>\d+),? )?rip:? 0x(?P<rip>[0-9a-fA-F]+) reason:? (?P<reason>\S+)"
            r"(?P<flags>) (?:ext_inf1|info1):? 0x(?P<info1>[0-9a-fA-F]+)"
            r" (?:ext_inf2|info2):? 0x(?P<info2>[0-9a-fA-F]+)(?P<rest>(?: .*)?)$"
        ),
    ),
    (
        "reason/rip (first)",
        re.compile(rf"^{_VCPU}{_REASON} rip 0x(?P<rip>[0-9a-fA-F]+)(?P<rest>(?: .*)?)$"),
    ),
)

# Reason spellings that prove the vendor: the kernel's own tables (svm "io", vmx
# "IO_INSTRUCTION"), trace-cmd's kvm plugin and older perf ("IOIO", "EXIT_IOIO").
VMX_IO_REASONS = frozenset({"IO_INSTRUCTION"})
SVM_IO_REASONS = frozenset({"io", "IOIO", "EXIT_IOIO"})
VENDOR_OF = {**dict.fromkeys(VMX_IO_REASONS, "vmx"), **dict.fromkeys(SVM_IO_REASONS, "svm")}
# A reason printed as a number (no symbol table): the exit code of each vendor's I/O exit.
IO_EXIT_CODES = {"vmx": 30, "svm": 0x7B}  # SDM Appendix C basic exit reason 30; APM VMEXIT_IOIO


class ExitLine(NamedTuple):
    """The fields of a ``kvm_exit`` (or ``kvm_nested_vmexit``) line, as printed."""

    spelling: str
    vcpu: int | None
    reason: str
    flags: tuple[str, ...]  # VMX exit-reason flags (FAILED_VMENTRY, ...)
    rip: int
    info1: int | None
    info2: int | None
    trailing: str  # fields a newer or patched kernel appends (requests 0x..., ...)


_WITH_INFO = ("vcpu", "reason", "flags", "rip", "info1", "info2", "rest")
_WITHOUT_INFO = ("vcpu", "reason", "flags", "rip", "rest")


def _spelling(payload: str) -> tuple[str, re.Pattern, re.Match] | None:
    for spelling, pattern in EXIT_SPELLINGS:
        m = pattern.match(payload)
        if m is not None:
            return spelling, pattern, m
    return None


def parse_exit(payload: str, number: int) -> ExitLine:
    found = _spelling(payload)
    if found is None:
        raise TraceLineError(number, "kvm_exit fields not in any known spelling (truncated?)",
                             payload)  # fmt: skip
    spelling, pattern, m = found
    if "info1" in pattern.groupindex:
        vcpu, reason, flags, rip, info1, info2, rest = m.group(*_WITH_INFO)
        info1, info2 = int(info1, 16), int(info2, 16)
    else:
        vcpu, reason, flags, rip, rest = m.group(*_WITHOUT_INFO)
        info1 = info2 = None
        if rest.startswith((" info", " ext_inf")):
            raise TraceLineError(number, "kvm_exit info fields are cut short or malformed",
                                 payload)  # fmt: skip
    return ExitLine(spelling, vcpu and int(vcpu), reason, tuple(flags.split()) if flags else (),
                    int(rip, 16), info1, info2, rest.strip())  # fmt: skip


def exit_vendor(reason: str) -> str | None:
    """ "svm" or "vmx" when the reason's spelling is an I/O exit that proves the vendor."""
    return VENDOR_OF.get(reason)


def exit_code(reason: str) -> int | None:
    """The reason as a number, when the tracer printed it as one (decimal or 0x hex)."""
    if not reason[:1].isdigit():  # a name: most lines, and no exception to pay for
        return None
    try:
        return int(reason, 0)
    except ValueError:
        return None


# -- kvm_pio, kvm_entry, kvm_userspace_exit -------------------------------------------------

_PIO = re.compile(
    r"^pio_(?P<dir>read|write) at 0x(?P<port>[0-9a-fA-F]+) size (?P<size>\d+)"
    r" count (?P<count>\d+)(?: val 0x(?P<val>[0-9a-fA-F]+))?(?P<more> ?\(\.\.\.\))?$"
)


class PioLine(NamedTuple):
    """A ``kvm_pio`` completion: logged when the access is done, after its ``kvm_exit``."""

    is_in: bool
    port: int
    size: int
    count: int
    value: int | None  # the first element's data, printed by kernels since 2017
    more: bool  # "(...)": count > 1 and only the first value shown


def parse_pio(payload: str, number: int) -> PioLine:
    m = _PIO.match(payload)
    if m is None:
        raise TraceLineError(number, "kvm_pio fields not as 'pio_read|pio_write at 0x%x size %d "
                             "count %d [val 0x%x]' (truncated?)", payload)  # fmt: skip
    port, size, count = int(m["port"], 16), int(m["size"]), int(m["count"])
    if port > 0xFFFF or size not in (1, 2, 4) or count < 1:
        raise TraceLineError(number, f"kvm_pio port {port:#x} size {size} count {count} cannot "
                             "be (port ≤ 0xffff, size 1/2/4, count ≥ 1)", payload)  # fmt: skip
    val = m["val"]
    return PioLine(m["dir"] == "read", port, size, count, None if val is None else int(val, 16),
                   bool(m["more"]))  # fmt: skip


_ENTRY = re.compile(r"^vcpu (\d+)\b")


def parse_entry(payload: str, number: int) -> int:
    """The vCPU of a ``kvm_entry`` line ("vcpu %u", later "vcpu %u, rip 0x%lx")."""
    m = _ENTRY.match(payload)
    if m is None:
        raise TraceLineError(number, "kvm_entry without 'vcpu %u'", payload)
    return int(m[1])


def is_io_userspace_exit(payload: str) -> bool:
    """``kvm_userspace_exit: reason KVM_EXIT_IO (2)``: the access went to the device model."""
    return payload.startswith("reason KVM_EXIT_IO ") or payload == "reason KVM_EXIT_IO"


# -- the whole line in one match ---------------------------------------------------------

# Most lines of a trace have a tracer's prefix and are a 5.10+ kvm_exit, a kvm_pio, a
# kvm_entry or some other event. One regular expression, written so that it never has to
# backtrack far, reads all of that at once, cheaper than splitting the line in Python. What
# it leaves in ``payload`` (older spellings, reason flags, nested exits) goes to the parsers
# above, and a line it does not match at all (a pasted payload, an odd prefix) to
# ``split_event``; tests/test_traces.py checks that both ways read a line alike.
_H = r"[0-9a-fA-F]"
LINE = re.compile(
    r"(?P<task>[^\[]*)\[(?P<cpu>\d+)\] +(?:\S+ +)?(?P<time>\d+\.\d+): +(?:\d+ +)?(?:kvm:)?(?:"
    rf"kvm_exit: +vcpu (?P<vcpu>\d+) reason (?P<reason>\w+) rip 0x(?P<rip>{_H}+)"
    rf" info1 0x(?P<info1>{_H}+) info2 0x(?P<info2>{_H}+) intr_info 0x{_H}+"
    rf" error_code 0x{_H}+(?P<rest>(?: .*)?)(?P<EXIT>)$"
    rf"|kvm_pio: +pio_(?P<dir>read|write) at 0x(?P<port>{_H}{{1,4}}) size (?P<size>[124])"
    rf" count (?P<count>[1-9][0-9]*)(?: val 0x(?P<val>{_H}+))?(?P<more> ?\(\.\.\.\))? *(?P<PIO>)$"
    rf"|kvm_entry: +vcpu [0-9]+(?:, rip 0x{_H}+(?: .*)?)?(?P<ENTRY>)$"
    r"|(?P<event>kvm_exit|kvm_pio|kvm_entry|kvm_nested_vmexit|kvm_userspace_exit):(?: +|$)"
    r"(?P<payload>.*)$"
    r"|(?P<other>[\w:]+):(?: |$))"
)
LINE_EXIT = ("task", "cpu", "time", "vcpu", "reason", "rip", "info1", "info2", "rest")
LINE_PIO = ("task", "dir", "port", "size", "count", "val", "more")
# m.lastgroup names the branch that matched: "EXIT", "PIO", "ENTRY", "payload" (an event for
# the parsers above) or "other" (an event this reader does not need)
