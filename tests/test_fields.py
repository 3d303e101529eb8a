"""The declarative layouts (hvmio_lab.fields) against the manuals' tables.

Expected values here come from the tables in IO_EXITS.md §2 (AMD APM Vol. 2 §15.10.2; Intel
SDM Vol. 3C), written out independently of ``fields.py``: bit positions as shifts and masks,
legal values as sets. One round-trip helper, construct style, serves every layout.
"""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvmio_lab import EXIT_QUALIFICATION, EXITINFO1, INSTRUCTION_INFO, ExitInfoError
from hvmio_lab.fields import LAYOUTS, Kind, Layout

U64 = (1 << 64) - 1
PORTS = (0x0000, 0x0080, 0x1F48, 0xFFFF)


# -- the manuals' tables, written out by hand --------------------------------------------------


def svm_fields(x: int) -> dict[str, int]:
    """EXITINFO1 by shifts: TYPE 0, STR 2, REP 3, SZ 6:4, A 9:7, SEG 12:10, PORT 31:16."""
    return {
        "TYPE": x & 1,
        "STR": (x >> 2) & 1,
        "REP": (x >> 3) & 1,
        "SZ": (x >> 4) & 7,
        "A": (x >> 7) & 7,
        "SEG": (x >> 10) & 7,
        "PORT": (x >> 16) & 0xFFFF,
    }


def svm_valid(x: int) -> bool:
    """Reserved bits 1, 15:13, 63:32 clear; SZ and A one-hot; SEG 0 (ES) .. 5 (GS)."""
    f = svm_fields(x)
    return (
        x >> 32 == 0
        and not x & (1 << 1)
        and not x & (0b111 << 13)
        and f["SZ"] in (1, 2, 4)
        and f["A"] in (1, 2, 4)
        and f["SEG"] <= 5
    )


def vmx_fields(x: int) -> dict[str, int]:
    """Exit qualification: size−1 2:0, direction 3, string 4, REP 5, operand encoding 6,
    port 31:16."""
    return {
        "size": x & 7,
        "direction": (x >> 3) & 1,
        "string": (x >> 4) & 1,
        "REP": (x >> 5) & 1,
        "operand encoding": (x >> 6) & 1,
        "port": (x >> 16) & 0xFFFF,
    }


def vmx_valid(x: int) -> bool:
    """Reserved 15:7 and 63:32 clear; size − 1 is 0, 1 or 3 (2 is not used)."""
    return x >> 32 == 0 and not x & (0x1FF << 7) and x & 7 in (0, 1, 3)


def info_fields(x: int) -> dict[str, int]:
    """Instruction-information for INS/OUTS: address size 9:7, segment 17:15."""
    return {"address size": (x >> 7) & 7, "segment": (x >> 15) & 7}


def info_valid(x: int) -> bool:
    f = info_fields(x)
    return x >> 32 == 0 and f["address size"] <= 2 and f["segment"] <= 5


INFO_DEFINED = (0b111 << 7) | (0b111 << 15)

# 64-bit values, biased towards ones whose upper half is clear and whose low bits are legal
REGISTER_VALUES = st.one_of(
    st.integers(0, U64),
    st.integers(0, 0xFFFF_FFFF),
    st.builds(
        lambda port, low: port << 16 | low,
        st.integers(0, 0xFFFF),
        st.sampled_from([x for x in range(1 << 16) if svm_valid(x) or vmx_valid(x)]),
    ),
)

MANUAL = {
    EXITINFO1.name: (svm_fields, svm_valid),
    EXIT_QUALIFICATION.name: (vmx_fields, vmx_valid),
    INSTRUCTION_INFO.name: (info_fields, info_valid),
}


# -- one round-trip helper for every layout (construct's ``common``) -----------------------------


def round_trip(layout: Layout, value: int, defined_mask: int | None = None) -> dict[str, int]:
    """decode agrees with the manual's table, encode(decode(x)) gives x back (the bits the
    manual defines), and the bit view carries the same integer."""
    fields_of, _ = MANUAL[layout.name]
    decoded = layout.decode(value)
    assert decoded == fields_of(value), f"{layout.name} {value:#x}"
    expected = value if defined_mask is None else value & defined_mask
    assert layout.encode(**decoded) == expected, f"{layout.name} {value:#x}"
    view = layout.bits(value)
    assert len(view) == layout.width and view.uint == value
    return decoded


def sweep(layout: Layout, values) -> int:
    """Valid values (by the manual) round-trip; every other value is refused with
    ExitInfoError. Returns how many were valid."""
    _, valid = MANUAL[layout.name]
    mask = INFO_DEFINED if layout is INSTRUCTION_INFO else None
    n_valid, wrongly_accepted = 0, []
    for x in values:
        if valid(x):
            n_valid += 1
            round_trip(layout, x, mask)
            continue
        try:
            layout.decode(x)
        except ExitInfoError:
            continue
        wrongly_accepted.append(x)
    assert not wrongly_accepted, [hex(x) for x in wrongly_accepted[:10]]
    return n_valid


def low16_at(port: int, lows=range(1 << 16)):
    return (port << 16 | low for low in lows)


VALID_SVM_LOWS = [x for x in range(1 << 16) if svm_valid(x)]
VALID_VMX_LOWS = [x for x in range(1 << 16) if vmx_valid(x)]


def test_exitinfo1_round_trip_exhaustive_low16():
    # TYPE 2 × STR 2 × REP 2 × SZ 3 × A 3 × SEG 6 = 432 valid low halves
    assert len(VALID_SVM_LOWS) == 432
    for port in PORTS:
        assert sweep(EXITINFO1, low16_at(port, VALID_SVM_LOWS)) == 432
    assert sweep(EXITINFO1, low16_at(0x1F48)) == 432  # and all 65,536: the rest refused


def test_exit_qualification_round_trip_exhaustive_low16():
    # size 3 × direction 2 × string 2 × REP 2 × operand encoding 2 = 48
    assert len(VALID_VMX_LOWS) == 48
    for port in PORTS:
        assert sweep(EXIT_QUALIFICATION, low16_at(port, VALID_VMX_LOWS)) == 48
    assert sweep(EXIT_QUALIFICATION, low16_at(0x60)) == 48


def test_instruction_info_round_trip_exhaustive_defined_bits():
    # every value of bits 17:7 under a few patterns of the undefined bits around them;
    # address size 3 × segment 6 = 18 combinations x 2^5 (undefined bits 14:10) each
    noise = (0, 0x7F, 0x5A, (0x3FFF << 18) | 0x7F)
    values = (n | (mid << 7) for n in noise for mid in range(1 << 11))
    assert sweep(INSTRUCTION_INFO, values) == 18 * (1 << 5) * len(noise)


def test_instruction_info_undefined_bits_are_ignored_and_encoded_as_zero():
    x = (1 << 7) | (3 << 15)  # 32-bit, DS
    noisy = x | 0x7F | (0x1F << 10) | (0x3FFF << 18)
    assert INSTRUCTION_INFO.decode(noisy) == {"address size": 1, "segment": 3}
    assert INSTRUCTION_INFO.encode(**INSTRUCTION_INFO.decode(noisy)) == x


def test_every_layout_covers_its_width_once():
    for layout in LAYOUTS.values():
        covered = 0
        for f in layout.fields:
            assert covered & f.mask == 0
            covered |= f.mask
        assert covered == (1 << layout.width) - 1


def test_field_names_follow_the_manuals():
    assert [f.name for f in EXITINFO1.fields if f.kind is not Kind.RESERVED] == [
        "TYPE", "STR", "REP", "SZ", "A", "SEG", "PORT",
    ]  # fmt: skip
    assert EXITINFO1.field("SZ").bit_names == ("SZ8", "SZ16", "SZ32")
    assert EXITINFO1.field("A").bit_names == ("A16", "A32", "A64")
    assert (EXIT_QUALIFICATION.width, EXITINFO1.width, INSTRUCTION_INFO.width) == (64, 64, 32)


# -- encode refuses what decode refuses ------------------------------------------------------------


@pytest.mark.parametrize(
    ("layout", "fields", "name"),
    [
        (EXITINFO1, {"SZ": 3}, "SZ"),
        (EXITINFO1, {"SZ": 4, "A": 0}, "A"),
        (EXITINFO1, {"SZ": 4, "A": 4, "SEG": 6}, "SEG"),
        (EXITINFO1, {"SZ": 4, "A": 4, "PORT": 0x10000}, "PORT"),
        (EXITINFO1, {"SZ": 4, "A": 4, "reserved": 1}, "reserved"),
        (EXIT_QUALIFICATION, {"size": 2}, "size"),
        (EXIT_QUALIFICATION, {"size": 0, "port": -1}, "port"),
        (INSTRUCTION_INFO, {"address size": 3}, "address size"),
    ],
)
def test_encode_refuses_with_the_field_name(layout, fields, name):
    with pytest.raises(ExitInfoError, match=re.escape(name)):
        layout.encode(**fields)


# -- refusals name the field and the value ---------------------------------------------------------


def value_pattern(raw: int) -> str:
    """The bad value written any of the usual ways: binary, hex or decimal."""
    return rf"(?<![\w:])(0b0*{raw:b}|0x0*{raw:x}|{raw})(?![\w:])"


VALID_SVM = 0x1F480241  # in eax, dx; port 0x1F48; A64 (IO_EXITS §2 table, bit by bit)
VALID_VMX = 0x1F48000B  # in eax, dx; port 0x1F48

REFUSALS = [
    # (layout, value, field words the message must contain, the field's bad raw value)
    (EXITINFO1, VALID_SVM | 1 << 1, ("reserved", "1"), 1),
    (EXITINFO1, VALID_SVM | 0b101 << 13, ("reserved", "15:13"), 0b101),
    (EXITINFO1, VALID_SVM | 1 << 13, ("reserved", "15:13"), 1),
    (EXITINFO1, VALID_SVM | 1 << 32, ("reserved", "63:32"), 1),
    (EXITINFO1, VALID_SVM | 1 << 63, ("reserved", "63:32"), 1 << 31),
    (EXITINFO1, (VALID_SVM & ~0x70) | 0b110 << 4, ("SZ", "6:4"), 0b110),
    (EXITINFO1, (VALID_SVM & ~0x70) | 0b011 << 4, ("SZ", "6:4"), 0b011),
    (EXITINFO1, VALID_SVM & ~0x70, ("SZ", "6:4"), 0),
    (EXITINFO1, (VALID_SVM & ~0x380) | 0b101 << 7, ("A", "9:7"), 0b101),
    (EXITINFO1, VALID_SVM & ~0x380, ("A", "9:7"), 0),
    (EXITINFO1, VALID_SVM | 6 << 10, ("SEG", "12:10"), 6),
    (EXITINFO1, VALID_SVM | 7 << 10, ("SEG", "12:10"), 7),
    (EXIT_QUALIFICATION, VALID_VMX | 1 << 7, ("reserved", "15:7"), 1),
    (EXIT_QUALIFICATION, VALID_VMX | 1 << 15, ("reserved", "15:7"), 0x100),
    (EXIT_QUALIFICATION, VALID_VMX | 1 << 32, ("reserved", "63:32"), 1),
    (EXIT_QUALIFICATION, (VALID_VMX & ~7) | 2, ("size", "2:0"), 2),
    (EXIT_QUALIFICATION, (VALID_VMX & ~7) | 4, ("size", "2:0"), 4),
    (EXIT_QUALIFICATION, (VALID_VMX & ~7) | 5, ("size", "2:0"), 5),
    (EXIT_QUALIFICATION, (VALID_VMX & ~7) | 6, ("size", "2:0"), 6),
    (EXIT_QUALIFICATION, (VALID_VMX & ~7) | 7, ("size", "2:0"), 7),
    (INSTRUCTION_INFO, 3 << 7, ("address size", "9:7"), 3),
    (INSTRUCTION_INFO, 6 << 15, ("segment", "17:15"), 6),
]


@pytest.mark.parametrize(("layout", "value", "words", "raw"), REFUSALS)
def test_refusal_names_field_and_value(layout, value, words, raw):
    with pytest.raises(ExitInfoError) as info:
        layout.decode(value)
    message = str(info.value)
    assert layout.name in message
    for word in words:
        assert word in message, message
    tail = message.split(words[-1], 1)[1]  # the value comes after the field's name/range
    assert re.search(value_pattern(raw), tail), message


def test_reserved_bits_are_reported_before_other_problems():
    # SZ = 0 and bit 1 set: the reserved bit is named (a reserved bit says "not IOIO at all").
    with pytest.raises(ExitInfoError, match="reserved"):
        EXITINFO1.decode((VALID_SVM & ~0x70) | 1 << 1)


@pytest.mark.parametrize("bad", [-1, 1 << 64, 1.0, "0x1", None, True])
def test_out_of_range_or_non_integer_values_are_refused(bad):
    with pytest.raises(ExitInfoError):
        EXITINFO1.decode(bad)


# -- the bitstring view agrees with the integer decode ---------------------------------------------


@settings(deadline=None)
@given(st.sampled_from(list(LAYOUTS.values())), st.data())
def test_bits_view_agrees_with_integer_decode(layout, data):
    x = data.draw(st.integers(0, (1 << layout.width) - 1))
    view = layout.bits(x)
    w = layout.width
    assert len(view) == w
    for i in (0, w - 1, data.draw(st.integers(0, w - 1))):
        assert view[i] == bool((x >> (w - 1 - i)) & 1)  # MSB first, as the manuals draw
    assert [int(b) for b in view] == [(x >> (w - 1 - i)) & 1 for i in range(w)]
    fields_of, valid = MANUAL[layout.name]
    for f in layout.fields:
        assert view[w - 1 - f.msb : w - f.lsb].uint == (x >> f.lsb) & ((1 << f.width) - 1)
    if valid(x):
        for name, raw in layout.decode(x).items():
            f = layout.field(name)
            assert view[w - 1 - f.msb : w - f.lsb].uint == raw == fields_of(x)[name]


# -- describe rows ---------------------------------------------------------------------------------


def test_describe_rows_for_in_eax_dx():
    rows = {r.field: r for r in EXITINFO1.describe(VALID_SVM) if r.field != "reserved"}
    assert EXITINFO1.describe(VALID_SVM)[0].bits == "63:32"  # MSB first
    assert rows["TYPE"].meaning == "IN"
    assert "32" in rows["SZ"].meaning and "64" in rows["A"].meaning
    assert "1f48" in rows["PORT"].raw.lower()
    assert all(r.ok for r in EXITINFO1.describe(VALID_SVM))


@settings(deadline=None)
@given(REGISTER_VALUES)
def test_describe_never_raises_and_flags_exactly_the_bad_fields(x):
    rows = EXITINFO1.describe(x)
    assert len(rows) == len(EXITINFO1.fields)
    assert all(r.ok for r in rows) == svm_valid(x)
    rows = EXIT_QUALIFICATION.describe(x)
    assert all(r.ok for r in rows) == vmx_valid(x)


@settings(deadline=None)
@given(REGISTER_VALUES)
def test_decode_accepts_exactly_the_manuals_valid_values(x):
    for layout, valid in ((EXITINFO1, svm_valid), (EXIT_QUALIFICATION, vmx_valid)):
        if valid(x):
            round_trip(layout, x)
        else:
            with pytest.raises(ExitInfoError):
                layout.decode(x)
