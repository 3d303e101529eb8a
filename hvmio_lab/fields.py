"""Exit-record bit layouts, declared once as data.

Each layout is a table of fields copied from the manuals (AMD APM Vol. 2 §15.10.2; Intel SDM
Vol. 3C, "Exit Qualification for I/O Instructions" and "VM-Exit Instruction-Information Field").
Decoding, validation, encoding, the bitstring view and the ``describe`` rows are all derived
from the table, so no two of them can disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import NamedTuple

from bitstring import Bits

from .errors import ExitInfoError


class Kind(StrEnum):
    FLAG = "flag"
    NUMBER = "number"
    ONE_HOT = "one-hot"
    ENUM = "enumeration"
    RESERVED = "reserved"  # must be zero: a set bit is refused
    UNDEFINED = "undefined"  # the manual leaves it undefined: ignored on decode, 0 on encode


@dataclass(frozen=True)
class Field:
    """One field of a layout: bits msb..lsb, named as in the manual."""

    name: str
    msb: int
    lsb: int
    kind: Kind
    meaning: str
    values: tuple[tuple[int, str], ...] = ()  # legal values of a one-hot/enum field, or flag text
    bit_names: tuple[str, ...] = ()  # per-bit names, LSB first (SZ8, SZ16, SZ32)

    @property
    def width(self) -> int:
        return self.msb - self.lsb + 1

    @property
    def mask(self) -> int:
        """The field's bits in place within the register."""
        return ((1 << self.width) - 1) << self.lsb

    @property
    def bit_range(self) -> str:
        return str(self.lsb) if self.msb == self.lsb else f"{self.msb}:{self.lsb}"

    @cached_property
    def legal(self) -> frozenset[int] | None:
        """Values the field may hold, or None when any value fits."""
        if self.kind in (Kind.ONE_HOT, Kind.ENUM):
            return frozenset(v for v, _ in self.values)
        if self.kind is Kind.RESERVED:
            return frozenset({0})
        return None

    def extract(self, register: int) -> int:
        return (register >> self.lsb) & ((1 << self.width) - 1)

    def raw_text(self, raw: int) -> str:
        return f"{raw:#x}" if self.width > 4 else f"{raw:#0{self.width + 2}b}"

    def meaning_of(self, raw: int) -> str:
        """Human text for one raw value, with an explicit fallback for values the table lacks."""
        if self.kind in (Kind.RESERVED, Kind.UNDEFINED):
            return "must be 0" if self.kind is Kind.RESERVED and raw else self.meaning
        text = dict(self.values).get(raw)
        if text is not None:
            return text
        if self.kind is Kind.NUMBER:
            return f"{self.meaning}: {raw:#x}"
        return f"invalid ({self.problem(raw)})"

    def problem(self, raw: int) -> str:
        if self.kind is Kind.ONE_HOT:
            return f"must be one-hot, got {self.raw_text(raw)}"
        if self.kind is Kind.RESERVED:
            return f"must be 0, got {self.raw_text(raw)}"
        legal = ", ".join(str(v) for v in sorted(self.legal or ()))
        return f"must be one of {legal}, got {raw}"


class Row(NamedTuple):
    """One line of a field table, as the widgets, the CLI and the notebooks show it."""

    bits: str
    field: str
    raw: str
    meaning: str
    ok: bool


def format_rows(rows: Sequence[Row]) -> str:
    """A describe() table as aligned text; a field that breaks the rules is marked ✗."""
    table = [("bits", "field", "raw", "meaning")]
    table += [(r.bits, r.field, r.raw, r.meaning + ("" if r.ok else "  ✗")) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3]
        for row in table
    )


@dataclass(frozen=True)
class Layout:
    """A register described field by field; every view of it comes from ``fields``."""

    name: str
    title: str
    source: str
    width: int
    fields: tuple[Field, ...]

    def __post_init__(self) -> None:
        covered = 0
        for f in self.fields:
            if covered & f.mask:
                raise ValueError(f"{self.name}: field {f.name} overlaps another field")
            covered |= f.mask
        if covered != (1 << self.width) - 1:
            raise ValueError(f"{self.name}: fields do not cover bits {self.width - 1}:0")

    @cached_property
    def _checked(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.kind not in (Kind.RESERVED, Kind.UNDEFINED))

    @cached_property
    def _decoder(self):
        """The table compiled to straight-line Python, as namedtuple does: one shift per field."""
        reserved = sum(f.mask for f in self.fields if f.kind is Kind.RESERVED)
        lines = [
            "def decode(value):",
            f"    if value.__class__ is not int or value < 0 or value >> {self.width}:",
            "        layout.check_range(value)",
            f"    if value & {reserved:#x}:",
            "        layout._refuse(value)",
        ]
        for i, f in enumerate(self._checked):
            lines.append(f"    v{i} = (value >> {f.lsb}) & {(1 << f.width) - 1:#x}")
            if f.legal is not None:
                lines.append(f"    if v{i} not in {set(f.legal)!r}:")
                lines.append("        layout._refuse(value)")
        items = ", ".join(f"{f.name!r}: v{i}" for i, f in enumerate(self._checked))
        lines.append(f"    return {{{items}}}")
        namespace: dict = {"layout": self}
        exec("\n".join(lines), namespace)
        return namespace["decode"]

    def _refuse(self, value: int) -> None:
        """Raise ExitInfoError naming the bad field: reserved bits first, then from bit 0 up."""
        for f in sorted(self.fields, key=lambda f: f.kind is not Kind.RESERVED):
            raw = f.extract(value)
            if f.legal is not None and raw not in f.legal:
                raise ExitInfoError(f"{self.label(f)} {f.problem(raw)}")

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")

    def label(self, f: Field) -> str:
        if f.kind is Kind.RESERVED:
            return f"{self.name} reserved {'bit' if f.width == 1 else 'bits'} {f.bit_range}"
        return f"{self.name} {f.name} (bits {f.bit_range})"

    def check_range(self, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ExitInfoError(f"{self.name} must be an integer, got {value!r}")
        if not 0 <= value < 1 << self.width:
            raise ExitInfoError(f"{self.name} must fit in {self.width} bits, got {value:#x}")
        return value

    def decode(self, value: int) -> dict[str, int]:
        """Raw value of every meaningful field; raises ExitInfoError naming the first bad one."""
        return self._decoder(value)

    def encode(self, **values: int) -> int:
        """Build the register from raw field values; omitted fields are 0. Validated like decode."""
        names = {f.name: f for f in self._checked}
        value = 0
        for name, raw in values.items():
            f = names.get(name)
            if f is None:
                raise ExitInfoError(f"{self.name} has no field {name!r} to encode")
            if isinstance(raw, bool):
                raw = int(raw)
            if not isinstance(raw, int) or not 0 <= raw < 1 << f.width:
                raise ExitInfoError(f"{self.label(f)} must fit in {f.width} bits, got {raw!r}")
            value |= raw << f.lsb
        self.decode(value)
        return value

    def bits(self, value: int) -> Bits:
        """A bitstring view, MSB first, as the manuals draw registers."""
        return Bits(uint=self.check_range(value), length=self.width)

    def describe(self, value: int) -> tuple[Row, ...]:
        """One row per field, MSB first. Never raises on field contents: bad fields say why."""
        self.check_range(value)
        rows = []
        for f in reversed(self.fields):
            raw = f.extract(value)
            ok = f.legal is None or raw in f.legal
            rows.append(Row(f.bit_range, f.name, f.raw_text(raw), f.meaning_of(raw), ok))
        return tuple(rows)


SEGMENTS = ("ES", "CS", "SS", "DS", "FS", "GS")
# In 64-bit mode these four have base 0 (SDM Vol. 1 §3.4.2.1) and their override prefixes are
# null (AMD APM Vol. 3 §1.2.4): one fact, used by both the decoder and Machine.linear.
NULL_SEGMENTS_64 = frozenset(SEGMENTS[:4])
_SEG_VALUES = tuple(enumerate(SEGMENTS))

EXITINFO1 = Layout(
    name="EXITINFO1",
    title="AMD SVM EXITINFO1 for the IOIO intercept",
    source="AMD APM Vol. 2, §15.10.2, Figure 15-2",
    width=64,
    fields=(
        Field("TYPE", 0, 0, Kind.FLAG, "direction", ((0, "OUT"), (1, "IN"))),
        Field("reserved", 1, 1, Kind.RESERVED, "reserved"),
        Field("STR", 2, 2, Kind.FLAG, "string", ((0, "not string"), (1, "string (INS/OUTS)"))),
        Field("REP", 3, 3, Kind.FLAG, "REP prefix", ((0, "no REP"), (1, "REP prefix"))),
        Field(
            "SZ",
            6,
            4,
            Kind.ONE_HOT,
            "operand size",
            ((1, "8-bit (SZ8)"), (2, "16-bit (SZ16)"), (4, "32-bit (SZ32)")),
            ("SZ8", "SZ16", "SZ32"),
        ),
        Field(
            "A",
            9,
            7,
            Kind.ONE_HOT,
            "address size",
            ((1, "16-bit (A16)"), (2, "32-bit (A32)"), (4, "64-bit (A64)")),
            ("A16", "A32", "A64"),
        ),
        Field("SEG", 12, 10, Kind.ENUM, "effective segment (string I/O)", _SEG_VALUES),
        Field("reserved", 15, 13, Kind.RESERVED, "reserved"),
        Field("PORT", 31, 16, Kind.NUMBER, "port"),
        Field("reserved", 63, 32, Kind.RESERVED, "reserved"),
    ),
)

EXIT_QUALIFICATION = Layout(
    name="exit qualification",
    title="Intel VMX exit qualification for I/O instructions",
    source=(
        "Intel SDM Vol. 3C, 'Exit Qualification for I/O Instructions' "
        "(Table 27-5 in older editions)"
    ),
    width=64,
    fields=(
        Field(
            "size",
            2,
            0,
            Kind.ENUM,
            "size of access − 1",
            ((0, "1 byte"), (1, "2 bytes"), (3, "4 bytes")),
        ),
        Field("direction", 3, 3, Kind.FLAG, "direction", ((0, "OUT"), (1, "IN"))),
        Field("string", 4, 4, Kind.FLAG, "string", ((0, "not string"), (1, "string (INS/OUTS)"))),
        Field("REP", 5, 5, Kind.FLAG, "REP prefix", ((0, "no REP"), (1, "REP prefix"))),
        Field(
            "operand encoding",
            6,
            6,
            Kind.FLAG,
            "operand encoding",
            ((0, "port in DX"), (1, "immediate port")),
        ),
        Field("reserved", 15, 7, Kind.RESERVED, "reserved"),
        Field("port", 31, 16, Kind.NUMBER, "port"),
        Field("reserved", 63, 32, Kind.RESERVED, "reserved"),
    ),
)

INSTRUCTION_INFO = Layout(
    name="instruction-information",
    title="Intel VMX VM-exit instruction-information for INS/OUTS",
    source="Intel SDM Vol. 3C, 'VM-Exit Instruction-Information Field' (INS/OUTS)",
    width=32,
    fields=(
        Field("undefined", 6, 0, Kind.UNDEFINED, "undefined"),
        Field(
            "address size",
            9,
            7,
            Kind.ENUM,
            "address size",
            ((0, "16-bit"), (1, "32-bit"), (2, "64-bit")),
        ),
        Field("undefined", 14, 10, Kind.UNDEFINED, "undefined"),
        Field("segment", 17, 15, Kind.ENUM, "segment register (undefined for INS)", _SEG_VALUES),
        Field("undefined", 31, 18, Kind.UNDEFINED, "undefined"),
    ),
)

LAYOUTS = {layout.name: layout for layout in (EXITINFO1, EXIT_QUALIFICATION, INSTRUCTION_INFO)}
