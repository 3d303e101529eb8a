"""What a trace's I/O exits add up to: per port, the fast path's share, rate, exit-to-entry.

``summarize(records)`` takes one pass and keeps counters only (memory flat on any trace).
``TraceStats.prediction()`` prices the mix with the cost model (``timing.predict``) and lists
the assumptions it had to make, since a trace cannot say everything the model needs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from .. import timing
from .read import TraceExit, TraceReport

# Well-known PC ports, to name the rows of a table (a label only: the trace says the number).
PORT_NAMES = {
    0x20: "PIC master", 0x21: "PIC master", 0xA0: "PIC slave", 0xA1: "PIC slave",
    0x40: "PIT", 0x41: "PIT", 0x42: "PIT", 0x43: "PIT", 0x60: "i8042", 0x64: "i8042",
    0x61: "port B (PIT 2 gate, NMI)", 0x70: "RTC/CMOS index", 0x71: "RTC/CMOS data",
    0x80: "POST / delay", 0x92: "A20 (port 92)", 0x1F0: "ATA data", 0x1F1: "ATA error/features",
    0x1F2: "ATA sector count", 0x1F3: "ATA LBA 7:0", 0x1F4: "ATA LBA 15:8",
    0x1F5: "ATA LBA 23:16", 0x1F6: "ATA drive/head", 0x1F7: "ATA status/command",
    0x3F6: "ATA alt status/control", 0x3F8: "COM1 UART", 0x3FD: "COM1 LSR", 0x402: "SeaBIOS debug",
    0x4D0: "ELCR", 0x4D1: "ELCR", 0x510: "fw_cfg selector", 0x511: "fw_cfg data",
    0xCF8: "PCI config address", 0xCFC: "PCI config data", 0x1F48: "PM timer (Xen V0)",
    0xB008: "PM timer (PIIX4 / Xen V1)", 0x1234: "unassigned (kvm-unit-tests)",
}  # fmt: skip


class PortRow(NamedTuple):
    port: int
    is_in: bool
    size: int
    exits: int
    string: int  # INS/OUTS exits: the 2010 fast path hands these to the emulator

    @property
    def name(self) -> str:
        return PORT_NAMES.get(self.port, "")


@dataclass
class TraceStats:
    """Counters over a trace's I/O exits."""

    exits: int = 0
    decoded: int = 0  # exits whose info1 decoded to an IoAccess
    by_access: Counter = field(default_factory=Counter)  # (port, is_in, size) → exits
    string_by_access: Counter = field(default_factory=Counter)
    string: int = 0
    rep: int = 0
    userspace: int = 0  # followed by kvm_userspace_exit KVM_EXIT_IO
    nested: int = 0
    per_second: Counter = field(default_factory=Counter)  # whole second of the trace → exits
    first_time: float | None = None
    last_time: float | None = None
    entry_count: int = 0
    entry_total: float = 0.0
    entry_min: float | None = None
    entry_max: float | None = None
    vendors: Counter = field(default_factory=Counter)
    model_clock: bool = False  # the trace came from the model: its times are not a machine's

    # -- derived ---------------------------------------------------------------------------

    def rows(self) -> list[PortRow]:
        """Per (port, direction, size), most exits first."""
        return sorted(
            (PortRow(p, i, s, n, self.string_by_access[(p, i, s)])
             for (p, i, s), n in self.by_access.items()),
            key=lambda row: (-row.exits, row.port, not row.is_in, row.size),
        )  # fmt: skip

    @property
    def fast_path_share(self) -> float:
        """The share of decoded exits the 2010 fast path takes: every non-string IN/OUT."""
        return 1 - self.string / self.decoded if self.decoded else 0.0

    @property
    def duration(self) -> float:
        if self.first_time is None or self.last_time is None:
            return 0.0
        return self.last_time - self.first_time

    @property
    def rate(self) -> float | None:
        """Exits per second over the traced span (None without timestamps or span)."""
        return (self.exits - 1) / self.duration if self.duration > 0 else None

    @property
    def mean_exit_to_entry(self) -> float | None:
        return self.entry_total / self.entry_count if self.entry_count else None

    def mix(self, profile: timing.Profile) -> tuple[timing.Mix, list[str]]:
        """The cost model's ``Mix`` for this trace, and the assumptions behind it."""
        assumptions = []
        known = self.decoded or 1
        string = self.string / known
        if self.userspace:
            dm = self.userspace / self.exits
            assumptions.append(f"device-model share {dm:.1%}: the exits followed by "
                               "kvm_userspace_exit KVM_EXIT_IO")  # fmt: skip
        else:
            dm = 0.0
            assumptions.append("device-model share 0: the trace has no kvm_userspace_exit "
                               "events, so every exit is taken as handled in the "
                               "kernel")  # fmt: skip
        assumptions.append(f"string share {string:.1%} taken as independent of the device "
                           "model share")  # fmt: skip
        base = timing.Mix.of(eligible=1 - string, device_model=dm)
        rate = None if self.model_clock else self.rate
        if self.model_clock:
            work = 0.0
            assumptions.append("the trace comes from the model, whose clock is virtual (a "
                               "fixed step per exit): with no real time between exits the "
                               "guest's own work is taken as 0, so the figures are the "
                               "intercept time alone")  # fmt: skip
        elif rate:
            period = profile.clock_hz / rate
            work = max(period - timing.predict(profile, base).intercept_cycles["emulate"], 0.0)
            assumptions.append(f"guest work between exits {work:,.0f} cycles: the traced rate "
                               f"{rate:,.0f} exits/s at the profile's {profile.clock_hz / 1e9:.1f}"
                               " GHz, less the emulator's intercept time")  # fmt: skip
        else:
            work = 0.0
            assumptions.append("no timestamps: the guest's own work between exits is taken as "
                               "0, so the figures are the intercept time alone")  # fmt: skip
        assumptions.append(f"cycle costs per stage from the profile {profile.name!r}, a model "
                           "(see its describe())")  # fmt: skip
        return timing.Mix.of(1 - string, dm, work), assumptions

    def prediction(self, profile: timing.Profile | str = timing.DEFAULT_PROFILE):
        """(``timing.Prediction``, assumptions) for this trace's mix on ``profile``."""
        profile = timing.load_profile(profile) if isinstance(profile, str) else profile
        mix, assumptions = self.mix(profile)
        return timing.predict(profile, mix), assumptions

    def table(self, limit: int = 20) -> str:
        """The per-port table and the fast-path share, as ``hvmio-lab trace`` prints them."""
        if not self.exits:
            return ("no I/O exits: no kvm_exit line with an I/O reason (IO_INSTRUCTION, io, "
                    "IOIO, EXIT_IOIO)")  # fmt: skip
        lines = [f"{'port':>7} {'dir':<4}{'size':>4} {'exits':>10} {'share':>7} {'string':>8}"
                 "  device"]  # fmt: skip
        for row in self.rows()[:limit]:
            share = row.exits / self.exits if self.exits else 0
            direction = "IN" if row.is_in else "OUT"
            lines.append(f"{row.port:#07x} {direction:<4}{row.size:>4} {row.exits:>10,} "
                         f"{share:>7.1%} {row.string:>8,}  {row.name}")  # fmt: skip
        hidden = len(self.by_access) - limit
        if hidden > 0:
            lines.append(f"... {hidden} more (port, direction, size) rows")
        lines.append("")
        vendors = ", ".join(f"{v} {n:,}" for v, n in sorted(self.vendors.items()))
        lines.append(f"I/O exits: {self.exits:,} ({vendors})")
        if self.decoded:
            lines.append(f"fast-path share: {self.fast_path_share:.1%} of {self.decoded:,} "
                         f"decoded exits are non-string IN/OUT; string/REP {self.string:,} "
                         f"({self.rep:,} with REP) go to the emulator")  # fmt: skip
        if self.model_clock:
            lines.append(
                "times: the model's virtual clock (a fixed step per exit), not a machine's"
            )
        elif self.rate:
            lines.append(f"rate: {self.rate:,.0f} exits/s over {self.duration * 1e3:,.3f} ms")
        if self.entry_count:
            lines.append(f"exit→entry: mean {self.mean_exit_to_entry * 1e6:.2f} µs "
                         f"(min {self.entry_min * 1e6:.2f}, max {self.entry_max * 1e6:.2f}) "
                         f"over {self.entry_count:,} exits")  # fmt: skip
        return "\n".join(lines)


def pio_table(report: TraceReport, limit: int = 20) -> str:
    """The ``kvm_pio`` lines that had no ``kvm_exit``, per port: accesses the kernel's
    emulator completed with no I/O exit traced (every one, on PVM)."""
    rows = sorted(report.pio_without_exit.items(), key=lambda kv: (-kv[1], kv[0]))
    total = sum(report.pio_without_exit.values())
    lines = [f"{'port':>7} {'dir':<4}{'size':>4} {'kvm_pio':>10} {'share':>7}  device"]
    for (port, is_in, size), n in rows[:limit]:
        lines.append(f"{port:#07x} {'IN' if is_in else 'OUT':<4}{size:>4} {n:>10,} "
                     f"{n / total:>7.1%}  {PORT_NAMES.get(port, '')}")  # fmt: skip
    return "\n".join(lines)


def summarize(records: Iterable[TraceExit]) -> TraceStats:
    """One pass over the records. The loop keeps its counts in locals and counts each distinct
    access once, folding them into per-port rows at the end: this runs once per exit."""
    stats = TraceStats()
    accesses: Counter = Counter()
    per_second = stats.per_second
    exits = svm = userspace = nested = entries = 0
    entry_total, entry_min, entry_max, first, last = 0.0, None, None, None, None
    for r in records:
        exits += 1
        _, time, _, _, _, vendor, _, _, _, _, access, _, pio, entry, to_dm, l2 = r
        svm += vendor == "svm"
        if access is not None:
            accesses[access] += 1
        elif pio is not None:  # the first spelling had no info: the completion says
            stats.by_access[pio.port, pio.is_in, pio.size] += 1
        userspace += to_dm is True
        nested += l2
        if time is not None:
            if first is None:
                first = time
            last = time
            per_second[int(time - first)] += 1
            if entry is not None:
                gap = entry - time
                entries += 1
                entry_total += gap
                entry_min = gap if entry_min is None or gap < entry_min else entry_min
                entry_max = gap if entry_max is None or gap > entry_max else entry_max
    for access, n in accesses.items():
        key = (access.port, access.is_in, access.size)
        stats.by_access[key] += n
        stats.decoded += n
        stats.rep += n * access.rep
        if access.string:
            stats.string += n
            stats.string_by_access[key] += n
    stats.exits, stats.userspace, stats.nested = exits, userspace, nested
    stats.vendors.update({v: n for v, n in (("svm", svm), ("vmx", exits - svm)) if n})
    stats.first_time, stats.last_time = first, last
    stats.entry_count, stats.entry_total = entries, entry_total
    stats.entry_min, stats.entry_max = entry_min, entry_max
    report = getattr(records, "report", None)  # a Trace says, once read, where it came from
    stats.model_clock = bool(report and report.from_model)
    return stats
