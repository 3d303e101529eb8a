"""The register diagram: built from the layout table, no pyplot state, values in the cells."""

import matplotlib
import pytest
from matplotlib.figure import Figure

from hvmio_lab import EXIT_QUALIFICATION, EXITINFO1, INSTRUCTION_INFO, ExitInfoError
from hvmio_lab.plots import GREY, field_colour, register_diagram, register_diagrams, tint


def texts(fig: Figure) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_no_pyplot_figures_are_left_behind():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    fig = register_diagram(EXITINFO1)
    assert isinstance(fig, Figure)
    assert plt.get_fignums() == before
    assert matplotlib.get_backend()  # nothing switched


def test_fields_and_bit_numbers_are_labelled():
    words = texts(register_diagram(EXITINFO1))
    for name in ("TYPE", "STR", "REP", "SZ", "A", "SEG", "PORT", "SZ8", "SZ16", "SZ32", "A64"):
        assert name in words, name
    for edge in ("0", "31", "16", "63", "32", "12", "10"):
        assert edge in words, edge
    ax = register_diagram(EXITINFO1).axes[0]
    inside = [t.get_text() for t in ax.texts if t.get_position()[1] == 0.5]
    assert inside == ["//"]  # without a value, no bit values: only the compressed 63:32 mark


def test_fields_are_drawn_msb_on_the_left():
    fig = register_diagram(EXIT_QUALIFICATION)
    ax = fig.axes[0]
    x = {t.get_text(): t.get_position()[0] for t in ax.texts}
    assert x["port"] < x["operand encoding"] < x["REP"] < x["string"] < x["direction"] < x["size"]


def test_value_bits_appear_inside_cells():
    # 0x600048: in al, 0x60. Bits 31:0 = 0000 0000 0110 0000 0000 0000 0100 1000.
    ax = register_diagram(EXIT_QUALIFICATION, 0x600048).axes[0]
    cells = sorted(
        (t.get_position()[0], t.get_text())
        for t in ax.texts
        if t.get_position()[1] == 0.5 and t.get_text() in ("0", "1")
    )
    assert "".join(bit for _, bit in cells) == f"{0x600048:032b}"


def test_compressed_high_half_shows_its_value():
    words = texts(register_diagram(EXITINFO1, 0x1F480241 | 5 << 32))
    assert "0x5" in words


def test_the_axes_argument_is_used():
    fig = Figure()
    ax = fig.add_subplot()
    assert register_diagram(INSTRUCTION_INFO, 0, ax=ax) is fig
    assert ax.texts


def test_invalid_field_is_outlined_in_red_and_valid_is_not():
    def red_edges(value):
        ax = register_diagram(EXITINFO1, value).axes[0]
        return sum(1 for p in ax.patches if p.get_edgecolor()[:3] == (0xD0 / 255, 0, 0))

    assert red_edges(0x1F480241) == 0
    assert red_edges(0x1F480261) == 1  # SZ16 + SZ32


def test_value_must_fit_the_layout():
    with pytest.raises(ExitInfoError):
        register_diagram(INSTRUCTION_INFO, 1 << 32)


def test_colours_reserved_grey_and_distinct_per_field():
    colours = {f.name: field_colour(EXITINFO1, f) for f in EXITINFO1.fields}
    assert colours["reserved"] == GREY
    named = [c for n, c in colours.items() if n != "reserved"]
    assert len(set(named)) == len(named)
    assert tint("#000000", 1.0) == "#ffffff" and tint("#123456", 0.0) == "#123456"


def test_figure_repr_is_deterministic():
    assert repr(register_diagram(EXITINFO1)) == repr(register_diagram(EXITINFO1))


def test_stacked_diagrams_keep_their_order():
    fig = register_diagrams((EXITINFO1, 0x600211), (EXIT_QUALIFICATION, 0x600048))
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles == [EXITINFO1.title, EXIT_QUALIFICATION.title]
