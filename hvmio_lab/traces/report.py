"""``perf kvm stat report --event=ioport``: the per-port summary perf prints, read back.

Not one line per exit but one row per port and direction (``0x%llx:POUT`` / ``:PIN``), with
sample counts and handling times; older perf lacks the Min/Max columns.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .lines import TraceLineError
from .read import _lines

_ROW = re.compile(
    r"^\s*0x(?P<port>[0-9a-fA-F]+):(?P<dir>POUT|PIN)\s+(?P<samples>\d+)\s+(?P<spct>[\d.]+)%"
    r"\s+(?P<tpct>[\d.]+)%(?:\s+(?P<min>[\d.]+)us\s+(?P<max>[\d.]+)us)?\s+(?P<avg>[\d.]+)us"
    r"(?:\s*\(\s*\+-\s*(?P<dev>[\d.]+)%\s*\))?\s*$"
)
_TOTAL = re.compile(r"Total Samples:\s*(\d+),\s*Total events handled time:\s*([\d.]+)us")


class ReportRow(NamedTuple):
    port: int
    is_in: bool
    samples: int
    samples_pct: float
    time_pct: float
    min_us: float | None  # None: a perf too old to print Min/Max
    max_us: float | None
    avg_us: float


class PerfReport(NamedTuple):
    scope: str  # "all VMs, all VCPUs", ...
    rows: tuple[ReportRow, ...]
    total_samples: int | None
    total_us: float | None


def read_report(source) -> PerfReport:
    scope, rows, total = "", [], None
    for number, text in enumerate(_lines(source), 1):
        if text.startswith("Analyze events for"):
            scope = text.removeprefix("Analyze events for").strip().rstrip(":")
            continue
        m = _ROW.match(text)
        if m is not None:
            rows.append(ReportRow(
                int(m["port"], 16), m["dir"] == "PIN", int(m["samples"]), float(m["spct"]),
                float(m["tpct"]), None if m["min"] is None else float(m["min"]),
                None if m["max"] is None else float(m["max"]), float(m["avg"]),
            ))  # fmt: skip
            continue
        if ":POUT" in text or ":PIN" in text:
            raise TraceLineError(number, "perf kvm stat row not as 'PORT:PIN|POUT samples "
                                 "samples% time% [min max] avg'", text)  # fmt: skip
        t = _TOTAL.search(text)
        if t is not None:
            total = (int(t[1]), float(t[2]))
    if not rows:
        raise TraceLineError(0, "no 0x…:PIN/POUT rows: not a `perf kvm stat report "
                             "--event=ioport` output")  # fmt: skip
    return PerfReport(scope, tuple(rows), *(total or (None, None)))
