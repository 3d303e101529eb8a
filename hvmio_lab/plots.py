"""Matplotlib charts for the workbook: a module of small functions, one chart each.

Every function builds its own ``matplotlib.figure.Figure`` (never ``pyplot``), so no global
figure state leaks between calls or tests, and returns it. In a notebook, run
``%matplotlib inline`` once and end a cell with the returned figure to show it.
"""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter

from .fields import Field, Kind, Layout

# Colours for the fields of a layout, in order from bit 0 up; reserved and undefined fields
# are grey. The bit flipper uses the same colours, so a field looks the same everywhere.
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2", "#9d755d")
GREY = "#c8c8c8"
TINT = 0.72  # how far a "0" bit is washed towards white

# Runs of at least this many bits of a reserved/undefined field above bit 31 are drawn as one
# compressed block, as the manuals do for the upper half of a 64-bit field.
_COMPRESS_ABOVE = 32
_BLOCK_CELLS = 4


def is_filler(field: Field) -> bool:
    """Reserved or undefined: a field with no meaning of its own, drawn grey."""
    return field.kind in (Kind.RESERVED, Kind.UNDEFINED)


def field_colour(layout: Layout, field: Field) -> str:
    """The colour of ``field`` in ``layout`` (shared by the diagram and the bit flipper)."""
    if is_filler(field):
        return GREY
    meaningful = [f for f in layout.fields if not is_filler(f)]
    return PALETTE[meaningful.index(field) % len(PALETTE)]


def tint(colour: str, amount: float = TINT) -> str:
    """``colour`` washed towards white by ``amount`` (0 = unchanged, 1 = white)."""
    rgb = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * amount):02x}" for c in rgb)


def _cells(layout: Layout) -> list[tuple[Field, float, float]]:
    """Each field with its left edge and width in drawing cells, MSB on the left."""
    out, x = [], 0.0
    for f in reversed(layout.fields):
        compressed = is_filler(f) and f.lsb >= _COMPRESS_ABOVE - 1 and f.width >= _COMPRESS_ABOVE
        width = float(_BLOCK_CELLS if compressed else f.width)
        out.append((f, x, width))
        x += width
    return out


def _is_compressed(field: Field, width: float) -> bool:
    return width != field.width


def register_diagram(layout: Layout, value: int | None = None, ax: Axes | None = None) -> Figure:
    """Draw ``layout`` as the manuals draw a register: labelled field boxes, MSB on the left.

    Bit numbers are written above each field's edges and field names below it; with a
    ``value``, each bit's value is written inside its cell, set bits in the field's colour and
    clear bits in a pale tint of it (a compressed reserved block shows its value in hex).
    Fields whose bits break the layout's rules are outlined in red. Returns the figure.
    """
    if value is not None:
        layout.check_range(value)
    cells = _cells(layout)
    total = cells[-1][1] + cells[-1][2]
    # rotated names hang below the box: make room for the longest (about 0.1 cell a letter)
    bottom = 0.75 + max((0.1 * len(n) for n in _rotated_names(cells)), default=0.0)
    if ax is None:
        fig = Figure(figsize=(max(6.0, 0.34 * total), 0.55 * (1.55 + bottom) + 0.35))
        ax = fig.add_axes((0.01, 0.02, 0.98, 0.96 - 0.35 / fig.get_figheight()))
    else:
        fig = ax.figure
    ax.set_xlim(-0.3, total + 0.3)
    ax.set_ylim(-bottom, 1.55)
    ax.set_axis_off()
    ax.set_title(layout.title, fontsize=10, loc="left")

    rows = {row.bits: row for row in layout.describe(value)} if value is not None else {}
    for f, x, width in cells:
        colour = field_colour(layout, f)
        raw = f.extract(value) if value is not None else None
        bad = raw is not None and not rows[f.bit_range].ok
        compressed = _is_compressed(f, width)
        if compressed or value is None:
            ax.add_patch(Rectangle((x, 0), width, 1, facecolor=tint(colour, 0.45), lw=0))
        else:
            for i in range(f.width):
                bit = (raw >> (f.width - 1 - i)) & 1
                face = colour if bit else tint(colour)
                ax.add_patch(Rectangle((x + i, 0), 1, 1, facecolor=face, lw=0))
                ax.text(x + i + 0.5, 0.5, str(bit), ha="center", va="center", fontsize=9,
                        color="white" if bit and not is_filler(f) else "black",
                        fontweight="bold" if bit else "normal")
        if not compressed:  # thin separators between the bits of a field
            for i in range(1, f.width):
                ax.plot([x + i, x + i], [0, 0.22], color="black", lw=0.6)
                ax.plot([x + i, x + i], [0.78, 1], color="black", lw=0.6)
        else:
            ax.text(x + width / 2, 0.5, "//" if raw is None else f"{raw:#x}", ha="center",
                    va="center", fontsize=9, color="#b00000" if bad else "black")
        ax.add_patch(Rectangle((x, 0), width, 1, fill=False, lw=2.2 if bad else 1.2,
                               edgecolor="#d00000" if bad else "black"))
        # bit numbers above the field's edges
        if f.width == 1:
            ax.text(x + 0.5, 1.12, str(f.lsb), ha="center", va="bottom", fontsize=7)
        else:
            ax.text(x + 0.5, 1.12, str(f.msb), ha="center", va="bottom", fontsize=7)
            ax.text(x + width - 0.5, 1.12, str(f.lsb), ha="center", va="bottom", fontsize=7)
        # field names below; per-bit names (SZ8, SZ16, SZ32) under their bits
        name = _name(f, width)
        if f.bit_names:
            for i, bit_name in enumerate(reversed(f.bit_names)):
                ax.text(x + i + 0.5, -0.1, bit_name, ha="center", va="top", fontsize=6,
                        rotation=90)
            ax.text(x + width / 2, -0.72, name, ha="center", va="top", fontsize=8)
        elif _fits(name, width):
            ax.text(x + width / 2, -0.15, name, ha="center", va="top", fontsize=8)
        else:
            ax.text(x + width / 2, -0.1, name, ha="center", va="top", fontsize=7, rotation=90)
    return fig


def _name(field: Field, width: float) -> str:
    return "res." if is_filler(field) and width < 3 else field.name


def _fits(name: str, width: float) -> bool:
    """Whether ``name`` fits across ``width`` cells unrotated (about 0.6 cell a letter)."""
    return width >= 3 or 0.6 * len(name) <= width


def _rotated_names(cells: list[tuple[Field, float, float]]) -> list[str]:
    return [
        _name(f, w) for f, _, w in cells if not f.bit_names and not _fits(_name(f, w), w)
    ]


def register_diagrams(*pairs: tuple[Layout, int | None]) -> Figure:
    """Several registers stacked top to bottom in one figure, each drawn by
    ``register_diagram``: e.g. the same access as SVM and as VMX report it."""
    heights = [register_diagram(layout, value).get_figheight() for layout, value in pairs]
    width = max(register_diagram(layout, value).get_figwidth() for layout, value in pairs)
    fig = Figure(figsize=(width, sum(heights)))
    axes = fig.subplots(len(pairs), 1, squeeze=False,
                        gridspec_kw={"height_ratios": heights, "hspace": 0.35})[:, 0]
    for ax, (layout, value) in zip(axes, pairs, strict=True):
        register_diagram(layout, value, ax=ax)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.93, bottom=0.02)
    return fig


# -- timing (chapter 06): stage bars, per-exit distributions, Amdahl ----------------------------

# One colour per stage, measured and modelled alike; the saved stages (fetch, decode) are the
# warm colours so the slice the fast path removes stands out.
STAGE_COLOURS = {
    "exit": "#4c78a8", "exit_entry": "#4c78a8",
    "record_read": "#72b7b2",
    "fetch": "#f58518", "decode": "#e45756",
    "device": "#54a24b", "device_handler": "#54a24b",
    "device_model_round_trip": "#b279a2",
    "writeback": "#9d755d",
    "guest": GREY,
}  # fmt: skip


def _breakdown(data) -> tuple[dict, str]:
    """(label → stage → value, unit) from a measured ``Table``, a ``Prediction`` or a mapping."""
    from .timing import Prediction, Table

    if isinstance(data, Table):
        return data.stage_medians(), "ns"
    if isinstance(data, Prediction):
        return {path: dict(stages) for path, stages in data.stages.items()}, "cycles"
    return {label: dict(stages) for label, stages in data.items()}, ""


LEGIBLE_PT = 12  # the smallest text of a chart meant for a projector


def stage_bars(data, unit: str | None = None, title: str = "", ax: Axes | None = None) -> Figure:
    """Stacked bars, one per path, one segment per stage: where one exit's time goes.

    ``data`` is a measured ``timing.Table`` (median ns per stage), a ``timing.Prediction``
    (cycles) or a mapping ``{label: {stage: value}}``. The gap between the bars is exactly
    the fetch and decode segments: that is all the fast path saves. Text is at least
    ``LEGIBLE_PT`` points (12 px at the 72 dpi the timing panel renders at), for a projector.
    """
    breakdown, default_unit = _breakdown(data)
    unit = default_unit if unit is None else unit
    if ax is None:
        fig = Figure(figsize=(8.5, 2.4 + 0.5 * max(len(breakdown), 2)))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    stages = list(dict.fromkeys(st for stages in breakdown.values() for st in stages))
    labels = list(breakdown)
    left = [0.0] * len(labels)
    for stage in stages:
        widths = [breakdown[label].get(stage, 0) for label in labels]
        if not any(widths):
            continue
        ax.barh(labels, widths, left=left, label=stage.replace("_", " "),
                color=STAGE_COLOURS.get(stage, PALETTE[stages.index(stage) % len(PALETTE)]))
        left = [a + b for a, b in zip(left, widths, strict=True)]
    for y, total in enumerate(left):
        ax.text(total, y, f" {total:,.0f}", va="center", fontsize=LEGIBLE_PT)
    ax.invert_yaxis()
    ax.set_xlim(0, max(left, default=1) * 1.2 or 1)
    ax.tick_params(labelsize=LEGIBLE_PT)
    ax.set_xlabel(f"per exit ({unit})" if unit else "per exit", fontsize=LEGIBLE_PT)
    ax.set_title(title, fontsize=LEGIBLE_PT + 1, loc="left")
    if ax.get_legend_handles_labels()[0]:  # every stage at 0 draws no segment to name
        ax.legend(fontsize=LEGIBLE_PT, loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=3,
                  frameon=False)
    fig.tight_layout()
    return fig


def exit_time_distribution(table, ax: Axes | None = None, title: str = "") -> Figure:
    """Per-exit total time of each measured run, as step histograms on a log scale with the
    median marked: the spread is the machine's noise, the shift between runs is the paths'."""
    import numpy as np

    totals = table.exit_totals()
    if ax is None:
        fig = Figure(figsize=(7.5, 3.2))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    every = [ns / 1000 for run in totals.values() for ns in run]
    if not every:
        raise ValueError("the table holds no exits to draw")
    lo, hi = max(min(every), 1e-3), max(every)
    bins = np.geomspace(lo, hi * 1.0001 if hi > lo else lo * 2, 40)
    for i, ((vendor, path), run) in enumerate(totals.items()):
        colour = PALETTE[i % len(PALETTE)]
        us = [ns / 1000 for ns in run]
        ax.hist(us, bins=bins, histtype="step", lw=1.5, color=colour, label=f"{vendor}/{path}")
        ax.axvline(float(np.median(us)), color=colour, ls="--", lw=1)
    ax.set_xscale("log")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("time per exit (µs, log scale); dashed: median")
    ax.set_ylabel("exits")
    ax.set_title(title, fontsize=10, loc="left")
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def amdahl_chart(profile="amd-k8-2010", guest_cycles: float = 0.0,
                 device_model_shares=(0.0, 0.1, 0.5, 1.0), ax: Axes | None = None,
                 ymax: float = 1.6) -> Figure:
    """Predicted speedup of the fast path against the share of exits it can take (non-string),
    one line per share of exits that go to the device model (Amdahl's law).

    The y-axis runs from ×1 to at least ``ymax``, whatever the lines reach, so that two charts
    side by side share one scale: ×1.03 then looks flat and ×1.5 steep, as they are."""
    from .timing import Mix, load_profile, predict

    profile = load_profile(profile) if isinstance(profile, str) else profile
    if ax is None:
        fig = Figure(figsize=(7.5, 3.6))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    xs = [i / 50 for i in range(51)]
    for i, dm in enumerate(device_model_shares):
        ys = [predict(profile, Mix.of(x, dm, guest_cycles)).speedup for x in xs]
        ax.plot(xs, ys, color=PALETTE[i % len(PALETTE)], lw=1.8,
                label=f"{dm:.0%} of exits to the device model")
    best = predict(profile, Mix.of(1.0, 0.0, guest_cycles)).speedup
    ax.axhline(1.0, color="black", lw=0.6)
    ax.plot([1.0], [best], "o", color=PALETTE[0])
    low = best < 1.15  # near the ×1 line: write above the point, not across the axis
    ax.annotate(f"every exit fast, none to the device model: ×{best:.2f}", (1.0, best),
                xytext=(-10, 6 if low else -4), textcoords="offset points", ha="right",
                va="bottom" if low else "top", fontsize=8)
    ax.set_xlabel("share of exits that can take the fast path (non-string)")
    ax.set_ylabel("speedup (emulate / fast)")
    work = f", {guest_cycles:,.0f} guest cycles between exits" if guest_cycles else ""
    ax.set_title(f"Amdahl: {profile.title}{work}", fontsize=9, loc="left")
    ax.set_xlim(0, 1)
    ax.set_ylim(0.98, max(ymax, best * 1.05))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:.0%}"))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"×{y:.1f}"))
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    fig.tight_layout()
    return fig


def ratio_bars(bars, title: str = "", xlabel: str = "") -> Figure:
    """One horizontal bar per (label, fraction, kind): the same ratio from different sources,
    such as the seed's figure, a fitted model and a measurement. ``kind`` picks the colour
    and is printed after the value, so a fitted number never passes for a measured one."""
    colours = {"seed": PALETTE[0], "fitted model": PALETTE[1], "model": PALETTE[1],
               "measured": PALETTE[2]}
    fig = Figure(figsize=(8.5, 0.9 + 0.55 * max(len(bars), 2)))
    ax = fig.add_subplot()
    labels = [label for label, _, _ in bars]
    values = [value for _, value, _ in bars]
    ax.barh(labels, values, color=[colours.get(kind, GREY) for _, _, kind in bars])
    for y, (_, value, kind) in enumerate(bars):
        ax.text(value, y, f" {value:.1%} ({kind})", va="center", fontsize=10)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.3)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:.0%}"))
    ax.tick_params(labelsize=10)
    ax.set_xlabel(xlabel, fontsize=10)
    ax.set_title(title, fontsize=11, loc="left")
    fig.tight_layout()
    return fig


def trace_chart(stats, top: int = 12, title: str = "") -> Figure:
    """A trace's I/O exits (a ``traces.TraceStats``): per port and direction, split into what
    the 2010 fast path takes (non-string) and what it gives the emulator (string I/O); beside
    it the exits per second of the trace, when it has real timestamps over two seconds or
    more."""
    per_port: dict[tuple[int, bool], list[int]] = {}
    for row in stats.rows():
        counts = per_port.setdefault((row.port, row.is_in), [0, 0])
        counts[0] += row.exits - row.string
        counts[1] += row.string
    ranked = sorted(per_port.items(), key=lambda kv: -sum(kv[1]))[:top][::-1]
    timed = len(stats.per_second) >= 2 and not stats.model_clock  # a rate over 2 s or more
    fig = Figure(figsize=(13 if timed else 8, 1.2 + 0.42 * max(len(ranked), 3)))
    ax = fig.add_subplot(1, 2, 1) if timed else fig.add_subplot()
    labels = [f"{port:#06x} {'IN' if is_in else 'OUT'}" for (port, is_in), _ in ranked]
    fast = [c[0] for _, c in ranked]
    slow = [c[1] for _, c in ranked]
    ax.barh(labels, fast, color=PALETTE[2], label="fast path (IN/OUT)")
    ax.barh(labels, slow, left=fast, color=PALETTE[3], label="emulator (INS/OUTS)")
    ax.set_xlabel("exits", fontsize=LEGIBLE_PT)
    ax.set_title(title or f"I/O exits by port (top {len(ranked)})", fontsize=LEGIBLE_PT + 1,
                 loc="left")  # fmt: skip
    ax.legend(fontsize=LEGIBLE_PT - 1, frameon=False, loc="lower right")
    ax.tick_params(labelsize=LEGIBLE_PT - 1)
    if timed:
        rate = fig.add_subplot(1, 2, 2)
        seconds = sorted(stats.per_second)
        rate.bar(seconds, [stats.per_second[s] for s in seconds], color=PALETTE[0], width=0.8)
        rate.set_xlabel("second of the trace", fontsize=LEGIBLE_PT)
        rate.set_ylabel("I/O exits", fontsize=LEGIBLE_PT)
        rate.set_title("I/O exits per second", fontsize=LEGIBLE_PT + 1, loc="left")
        rate.tick_params(labelsize=LEGIBLE_PT - 1)
    fig.tight_layout()
    return fig
