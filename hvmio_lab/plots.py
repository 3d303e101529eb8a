"""Matplotlib charts for the workbook: a module of small functions, one chart each.

Every function builds its own ``matplotlib.figure.Figure`` (never ``pyplot``), so no global
figure state leaks between calls or tests, and returns it. In a notebook, run
``%matplotlib inline`` once and end a cell with the returned figure to show it.
"""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

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
