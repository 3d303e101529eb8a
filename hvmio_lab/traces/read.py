"""Read a KVM trace into I/O-exit records, streaming: one pass, memory flat however long.

``read(source, vendor=None)`` takes a path, an open file (text or binary) or pasted text and
returns a ``Trace``: iterate it for one ``TraceExit`` per I/O exit; its ``report`` counts
what was skipped and keeps the malformed lines (line number and why) without stopping.

Pairing: ``kvm_pio`` is logged when the access completes, so it follows its ``kvm_exit`` on
the same thread (one thread runs one vCPU); ``kvm_entry`` ends the exit. An exit is held back
until then, one per thread at most, which is what keeps memory flat.
"""

from __future__ import annotations

import gzip
import io
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import NamedTuple

from ..errors import HvmioError
from ..exits import U64, IoAccess, SvmIoExit, access_from_qualification
from ..hypervisor import VENDORS
from .lines import (
    EXIT_SPELLINGS,
    IO_EXIT_CODES,
    LINE,
    LINE_EXIT,
    LINE_PIO,
    MODEL_NOTE,
    VENDOR_OF,
    PioLine,
    TraceLineError,
    VendorNeeded,
    exit_code,
    exit_vendor,
    is_io_userspace_exit,
    parse_entry,
    parse_exit,
    parse_pio,
    split_event,
)

KEPT_ERRORS = 100  # a report keeps the first errors in full and counts the rest


class TraceExit(NamedTuple):
    """One I/O exit from a trace, decoded through the same tables as every other record.

    ``access`` comes from info1 (VMX: the exit qualification; SVM: EXITINFO1, with EXITINFO2
    = next RIP); it is None only for the first spelling, which printed no info at all.
    """

    line: int
    time: float | None
    vcpu: int | None
    cpu: int | None
    task: str | None
    vendor: str
    reason: str
    rip: int
    info1: int | None
    info2: int | None
    access: IoAccess | None
    spelling: str
    pio: PioLine | None = None
    entry_time: float | None = None
    userspace: bool | None = None  # a kvm_userspace_exit KVM_EXIT_IO followed: device model
    nested: bool = False  # also (or only) seen as kvm_nested_vmexit: an exit from an L2 guest

    @property
    def exit_to_entry(self) -> float | None:
        """Seconds from this exit to the vCPU's next ``kvm_entry``, when both are traced."""
        if self.time is None or self.entry_time is None:
            return None
        return self.entry_time - self.time

    @property
    def port(self) -> int | None:
        return self.access.port if self.access else (self.pio.port if self.pio else None)


@dataclass
class TraceReport:
    """What a read saw besides the I/O exits: counts per skipped event, and the bad lines."""

    lines: int = 0
    io_exits: int = 0
    skipped: Counter = field(default_factory=Counter)  # "other exits", "other lines", ...
    errors: list[TraceLineError] = field(default_factory=list)
    error_count: int = 0
    # kvm_pio lines with no kvm_exit before them, per (port, is_in, size): accesses KVM's
    # instruction emulator completed with no I/O exit traced (PVM emulates them all)
    pio_without_exit: Counter = field(default_factory=Counter)
    perf_report: bool = False  # the text looks like `perf kvm stat report`: see read_report
    from_model: bool = False  # written by traces.write: its times are the model's clock

    def add_error(self, error: TraceLineError) -> None:
        self.error_count += 1
        if len(self.errors) < KEPT_ERRORS:
            self.errors.append(error)

    def __str__(self) -> str:
        parts = [f"{self.lines:,} lines, {self.io_exits:,} I/O exits"]
        parts += [f"{n:,} {what}" for what, n in sorted(self.skipped.items())]
        if self.pio_without_exit:
            n = sum(self.pio_without_exit.values())
            parts.append(f"{n:,} kvm_pio without a kvm_exit")
        if self.error_count:
            parts.append(f"{self.error_count:,} malformed")
        text = "; ".join(parts)
        for e in self.errors[:5]:
            text += f"\n  {e}"
        if self.error_count > 5:
            text += f"\n  ... and {self.error_count - 5:,} more (report.errors keeps the first)"
        if self.perf_report:
            text += ("\n  this looks like a `perf kvm stat report`: read it with "
                     "traces.read_report()")  # fmt: skip
        return text


def _lines(source) -> Iterator[str]:
    """The text lines of a path, an open file (text or binary) or pasted text; bytes that are
    not UTF-8 become U+FFFD, so a bad byte spoils only the field it sits in."""
    if isinstance(source, bytes | bytearray):
        source = bytes(source).decode("utf-8", errors="replace")
    if isinstance(source, str) and ("\n" in source or not source.strip() or ": " in source):
        yield from source.splitlines()
        return
    if isinstance(source, str | os.PathLike | Traversable):
        path = Path(source) if isinstance(source, str) else source
        if not path.is_file():
            raise HvmioError(f"no trace file {str(path)!r} (paste the text itself, or a path)")
        if path.name.endswith(".gz"):
            with gzip.open(path.open("rb"), "rt", encoding="utf-8", errors="replace") as f:
                yield from f
            return
        with path.open(encoding="utf-8", errors="replace", newline=None) as f:
            yield from f  # lines keep their "\n": every parser strips or stops before it
        return
    if isinstance(source, io.TextIOBase) or hasattr(source, "encoding"):
        yield from source
        return
    if hasattr(source, "read"):
        yield from io.TextIOWrapper(source, encoding="utf-8", errors="replace", newline=None)
        return
    if isinstance(source, Iterable):  # a list of lines
        for line in source:
            yield line if isinstance(line, str) else bytes(line).decode("utf-8", "replace")
        return
    raise HvmioError(f"cannot read a trace from {type(source).__name__}: give a path, an open "
                     "file or the text")  # fmt: skip


@lru_cache(maxsize=4096)
def _svm_access(info1: int, length: int) -> IoAccess:
    """The record the line holds, rebased to RIP 0 (EXITINFO2 − RIP kept), so that one cache
    entry serves every exit of the same instruction: access() checks the length too."""
    return SvmIoExit(info1, length, 0).access()


def decode(info1: int, info2: int, rip: int, vendor: str, number: int) -> IoAccess:
    """The ``IoAccess`` of an I/O exit's info fields, through ``exits``' tables."""
    try:
        if vendor == "svm":
            return _svm_access(info1, (info2 - rip) & U64)
        return access_from_qualification(info1)  # VMX info2 is not an instruction length
    except HvmioError as e:
        name = "EXITINFO1" if vendor == "svm" else "exit qualification"
        raise TraceLineError(number, f"info1 {info1:#x} is not a valid {name}: {e}") from e


MODERN = EXIT_SPELLINGS[0][0]
match_line = LINE.match
_new = tuple.__new__
_PARSERS = {
    "kvm_exit": parse_exit,
    "kvm_nested_vmexit": parse_exit,
    "kvm_pio": parse_pio,
    "kvm_entry": parse_entry,
    "kvm_userspace_exit": lambda payload, number: is_io_userspace_exit(payload),
}


class _Held:
    """An exit waiting for its completion and its next entry (one per thread)."""

    __slots__ = ("entry", "fields", "nested", "pio", "port", "rip_info", "userspace")

    def __init__(self, fields: tuple, port: int | None, rip_info: tuple, nested: bool):
        self.fields, self.port, self.rip_info, self.nested = fields, port, rip_info, nested
        self.pio = self.entry = self.userspace = None

    def record(self) -> TraceExit:
        fields = (*self.fields, self.pio, self.entry, self.userspace, self.nested)
        return _new(TraceExit, fields)  # the fields are known good: skip NamedTuple's __new__


class Trace:
    """An iterable of ``TraceExit``; ``report`` fills in as it is iterated."""

    def __init__(self, source, vendor: str | None = None):
        if vendor is not None and vendor not in VENDORS:
            raise HvmioError(f"vendor must be 'svm' or 'vmx', got {vendor!r}")
        self.source, self.vendor = source, vendor
        self.report = TraceReport()

    def __iter__(self) -> Iterator[TraceExit]:
        self.report = report = TraceReport()
        skipped = report.skipped
        pending: dict[str | None, _Held] = {}  # per thread: the exit not yet entered again
        vendor_arg = self.vendor
        number = entries = 0  # kvm_entry lines: counted here, the commonest line of all
        for number, text in enumerate(_lines(self.source), 1):
            try:
                m = match_line(text)
                kind = m and m.lastgroup
                if kind == "ENTRY":  # the commonest lines first, handled in place
                    held = pending.pop(m["task"].strip() or None, None)
                    entries += 1
                    if held is not None:
                        held.entry = float(m["time"])
                        yield held.record()
                    continue
                if kind == "PIO":
                    key, direction, port, size, count, val, more = m.group(*LINE_PIO)
                    event, key = "kvm_pio", key.strip() or None
                    pio_fields = (direction == "read", int(port, 16), int(size), int(count),
                                  val and int(val, 16), bool(more))  # fmt: skip
                    parsed = _new(PioLine, pio_fields)
                elif kind == "EXIT":  # its fields straight into locals: no ExitLine to build
                    key, cpu, time, vcpu, reason, rip, info1, info2, _ = m.group(*LINE_EXIT)
                    event, key, cpu, time = "kvm_exit", key.strip() or None, int(cpu), float(time)
                    vcpu, rip, info1, info2 = (
                        int(vcpu),
                        int(rip, 16),
                        int(info1, 16),
                        int(info2, 16),
                    )
                    spelling, parsed = MODERN, None
                elif kind == "other":
                    skipped["other lines"] += 1
                    continue
                elif kind == "payload":
                    event = m["event"]
                    key, cpu, time = m["task"].strip() or None, int(m["cpu"]), float(m["time"])
                    parsed = _PARSERS[event](m["payload"], number)
                else:
                    if text[:1] == "#" and text.rstrip() == MODEL_NOTE:
                        report.from_model = True
                    if text[:1] == "#" or (split := split_event(text)) is None:
                        if "Analyze events for" in text or ":POUT " in text or ":PIN " in text:
                            report.perf_report = True
                        skipped["other lines"] += 1
                        continue
                    event, prefix, payload = split
                    key, cpu, time = prefix
                    parsed = _PARSERS[event](payload, number)
                if event == "kvm_pio":
                    held = pending.get(key)
                    if held is not None and held.pio is None and held.port in (None, parsed.port):
                        held.pio = parsed
                    else:
                        report.pio_without_exit[parsed.port, parsed.is_in, parsed.size] += 1
                    continue
                if event == "kvm_entry":
                    held = pending.pop(key, None)
                    if held is not None:
                        held.entry = time
                        yield held.record()
                    skipped["kvm_entry"] += 1
                    continue
                if event == "kvm_userspace_exit":
                    held = pending.get(key)
                    if held is not None and parsed:
                        held.userspace = True
                    skipped["kvm_userspace_exit"] += 1
                    continue
                if parsed is not None:  # an ExitLine from the parsers
                    spelling, vcpu, reason, _, rip, info1, info2, _ = parsed
                vendor = VENDOR_OF.get(reason)
                if (vendor is None and reason[:1].isdigit()) or vendor_arg not in (None, vendor):
                    vendor = self._vendor(reason, vendor_arg, number, text)
                nested = event == "kvm_nested_vmexit"
                if vendor is None:
                    skipped["nested exits (not I/O)" if nested else "other exits"] += 1
                    held = pending.pop(key, None)
                    if held is not None:  # the vCPU ran again, untraced: the I/O exit is over
                        yield held.record()
                    continue
                held = pending.get(key)
                if nested and held is not None and held.rip_info == (rip, info1):
                    held.nested = True  # one exit, logged twice
                    continue
                access = None if info1 is None else decode(info1, info2, rip, vendor, number)
            except TraceLineError as e:
                report.add_error(e)
                continue
            held = pending.pop(key, None)
            if held is not None:
                yield held.record()
            report.io_exits += 1
            pending[key] = _Held(
                (number, time, vcpu, cpu, key, vendor, reason, rip, info1, info2, access, spelling),
                access.port if access is not None else None, (rip, info1), nested,
            )  # fmt: skip
        report.lines = number
        if entries:
            skipped["kvm_entry"] += entries
        for held in pending.values():
            yield held.record()

    @staticmethod
    def _vendor(reason: str, given: str | None, number: int, text: str) -> str | None:
        """The vendor of an I/O exit (None: not an I/O exit). The spelling wins where it
        proves the vendor; a bare exit code needs ``vendor=``."""
        proven = exit_vendor(reason)
        if proven is not None:
            if given is not None and given != proven:
                raise TraceLineError(number, f"reason {reason!r} is a {proven.upper()} "
                                     f"exit, but vendor={given!r} was given")  # fmt: skip
            return proven
        code = exit_code(reason)
        if code is None or code not in IO_EXIT_CODES.values():
            return None
        if given is None:
            raise VendorNeeded(
                f"line {number}: reason {reason} is a bare exit code, which is the I/O "
                "exit on one vendor and something else on the other; pass vendor='svm' or "
                f"vendor='vmx' to read this trace: {text.strip()[:100]!r}"
            )
        return given if IO_EXIT_CODES[given] == code else None

    def exits(self) -> list[TraceExit]:
        return list(self)


def read(source, vendor: str | None = None) -> Trace:
    """The I/O exits of a KVM trace (``trace_pipe``, tracefs ``trace``, ``trace-cmd report``
    or ``perf script`` output), from a path, an open file, or the pasted text."""
    return Trace(source, vendor)
