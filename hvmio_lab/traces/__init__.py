"""Exit traces: real KVM ``kvm_exit``/``kvm_pio`` lines read and decoded through the same
tables as every other exit record, ``perf kvm stat`` reports, and any guest run written out
in the same format (labelled as coming from the model).

    from hvmio_lab import traces
    trace = traces.read("my-vm.trace")          # a path, an open file or pasted text
    stats = traces.summarize(trace)
    print(stats.table()); print(trace.report)
"""

from .lines import EXIT_SPELLINGS, PioLine, TraceLineError, VendorNeeded
from .read import Trace, TraceExit, TraceReport, read
from .report import PerfReport, ReportRow, read_report
from .stats import PORT_NAMES, PortRow, TraceStats, pio_table, summarize
from .write import MODEL_NOTE, boot_trace, guest_trace, trace_lines, write

__all__ = [
    "EXIT_SPELLINGS",
    "MODEL_NOTE",
    "PORT_NAMES",
    "PerfReport",
    "PioLine",
    "PortRow",
    "ReportRow",
    "Trace",
    "TraceExit",
    "TraceLineError",
    "TraceReport",
    "TraceStats",
    "VendorNeeded",
    "boot_trace",
    "guest_trace",
    "pio_table",
    "read",
    "read_report",
    "summarize",
    "trace_lines",
    "write",
]
