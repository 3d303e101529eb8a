"""Exit records as the hardware hands them over, and the vendor-neutral access they describe.

``SvmIoExit`` and ``VmxIoExit`` hold raw register values, so a learner can build a malformed
record and watch it be refused; ``access()`` is where validation happens.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass, field
from functools import lru_cache
from typing import ClassVar

from .errors import ExitInfoError
from .fields import EXIT_QUALIFICATION, EXITINFO1, INSTRUCTION_INFO, SEGMENTS, Row

SIZES = (1, 2, 4)
ADDRESS_SIZES = (16, 32, 64)
U64 = (1 << 64) - 1
MAX_INSTRUCTION_LENGTH = 15  # SDM Vol. 2 §2.3.11: longer encodings raise #GP
_SEGMENT_OR_NONE = (None, *SEGMENTS)
_object_new, _set = object.__new__, object.__setattr__  # a frozen record, built field by field


_IoAccessFields = namedtuple(
    "IoAccess",
    "port size is_in string rep address_size segment immediate",
    defaults=(False, False, None, None, None),
)


class IoAccess(_IoAccessFields):
    """What the guest asked the I/O bus to do, whichever way it was worked out.

    ``address_size`` and ``immediate`` are None when the record does not carry them;
    ``segment`` is the effective segment of a string access, else None. An immutable named
    tuple rather than a frozen dataclass: one is built per decoded exit, and a tuple costs a
    third as much to build. It is validated all the same, however it is built.
    """

    __slots__ = ()

    def __new__(
        cls,
        port: int,
        size: int,
        is_in: bool,
        string: bool = False,
        rep: bool = False,
        address_size: int | None = None,
        segment: str | None = None,
        immediate: bool | None = None,
    ) -> IoAccess:
        if port.__class__ is not int or not 0 <= port <= 0xFFFF:
            raise ExitInfoError(f"IoAccess port must be 0..0xffff, got {port!r}")
        if size.__class__ is not int or size not in SIZES:  # True == 1 and 2.0 == 2: refused
            raise ExitInfoError(f"IoAccess size must be 1, 2 or 4 bytes, got {size!r}")
        if (is_in.__class__ is not bool or string.__class__ is not bool
                or rep.__class__ is not bool):  # fmt: skip
            _refuse_flags(is_in, string, rep, immediate)
        if immediate is not None and immediate.__class__ is not bool:
            _refuse_flags(is_in, string, rep, immediate)
        if address_size is not None and (address_size.__class__ is not int
                                         or address_size not in ADDRESS_SIZES):  # fmt: skip
            raise ExitInfoError(f"IoAccess address_size must be 16, 32 or 64, got {address_size!r}")
        if segment not in _SEGMENT_OR_NONE:
            raise ExitInfoError(f"IoAccess segment must be one of {SEGMENTS}, got {segment!r}")
        if segment is not None and segment != "ES" and is_in and string:
            raise ExitInfoError(
                f"IoAccess segment of an INS must be ES (INS always writes ES:(R/E)DI; no "
                f"override applies), got {segment!r}"
            )
        if immediate and (string or port > 0xFF):
            raise ExitInfoError(
                f"IoAccess with an imm8 port must be a non-string access to a port ≤ 0xff, "
                f"got string={string}, port {port:#x}"
            )
        fields = (port, size, is_in, string, rep, address_size, segment, immediate)
        return tuple.__new__(cls, fields)

    @classmethod
    def _make(cls, iterable) -> IoAccess:
        return cls(*iterable)  # so _replace validates too

    def agrees_with(self, other: IoAccess) -> bool:
        """Equal wherever both know: the fields a record does not carry (None) are not compared.

        This is the central invariant: the exit record and the instruction bytes describe the
        same access.
        """
        for name in self._fields:
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is not None and theirs is not None and mine != theirs:
                return False
        return True

    @property
    def mnemonic(self) -> str:
        return ("in" if self.is_in else "out") + ("s" if self.string else "")

    def __str__(self) -> str:
        rep = "rep " if self.rep else ""
        where = f"port {self.port:#06x}"
        return f"{rep}{self.mnemonic.upper()} {8 * self.size}-bit {where}"


def _refuse_flags(is_in: object, string: object, rep: object, immediate: object) -> None:
    """The flags are booleans: ``is_in='no'`` is truthy, so guessing would get it backwards."""
    for name, value in (("is_in", is_in), ("string", string), ("rep", rep)):
        if value.__class__ is not bool:
            raise ExitInfoError(f"IoAccess {name} must be True or False, got {value!r}")
    raise ExitInfoError(f"IoAccess immediate must be True, False or None, got {immediate!r}")


def _instruction_length(name: str, length: int) -> int:
    if not 1 <= length <= MAX_INSTRUCTION_LENGTH:
        raise ExitInfoError(f"{name} must be 1..15 bytes, got {length}")
    return length


def _check_u64(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U64:
        raise ExitInfoError(f"{name} must be a 64-bit unsigned integer, got {value!r}")


def access_from_exitinfo1(exitinfo1: int) -> IoAccess:
    """The access a bare SVM EXITINFO1 describes (no RIP, so no instruction length checked).

    What a bit flipper or a trace line has: the register alone, validated field by field.
    """
    if exitinfo1.__class__ is not int:  # before the cache, which takes 1.0 or True for 1
        EXITINFO1.check_range(exitinfo1)
    return _svm_access(exitinfo1)


def access_from_qualification(qualification: int, info: int | None = None) -> IoAccess:
    """The access a bare VMX exit qualification (and, for INS/OUTS, the VM-exit
    instruction-information) describes, without an instruction length to check."""
    if qualification.__class__ is not int:
        EXIT_QUALIFICATION.check_range(qualification)
    if info is not None:
        INSTRUCTION_INFO.check_range(info)
    return _vmx_access(qualification, info)


@lru_cache(maxsize=4096)
def _svm_access(exitinfo1: int) -> IoAccess:
    f = EXITINFO1.decode(exitinfo1)
    string, is_in = bool(f["STR"]), bool(f["TYPE"])
    # INS always writes ES:(R/E)DI, so SEG tells nothing about one (and is only reliable with
    # DecodeAssists, IO_EXITS.md §2): as the VMX decode ignores the segment bits of an INS
    segment = ("ES" if is_in else SEGMENTS[f["SEG"]]) if string else None
    return IoAccess(  # positional: this runs once per distinct record, so every µs counts
        f["PORT"],
        f["SZ"],  # one-hot SZ8/SZ16/SZ32 read as a number is the byte count
        is_in,
        string,
        bool(f["REP"]),
        16 << (f["A"] >> 1),  # one-hot A16/A32/A64 -> 16, 32, 64
        segment,
    )


@lru_cache(maxsize=4096)
def _vmx_access(qualification: int, instruction_info: int | None) -> IoAccess:
    f = EXIT_QUALIFICATION.decode(qualification)
    string, immediate, is_in = bool(f["string"]), bool(f["operand encoding"]), bool(f["direction"])
    if string and immediate:
        raise ExitInfoError(
            "exit qualification operand encoding (bit 6) must be 0 (DX) for a string access, got 1"
        )
    if immediate and f["port"] > 0xFF:
        raise ExitInfoError(
            f"exit qualification port (bits 31:16) must fit the imm8 of an immediate-operand "
            f"IN/OUT (bit 6 = 1), got {f['port']:#x}"
        )
    address_size = segment = None
    if string and instruction_info is not None:
        seg_field = INSTRUCTION_INFO.field("segment")
        if is_in:  # INS always writes ES:(R/E)DI; the manual leaves the segment bits undefined
            instruction_info &= ~seg_field.mask
        info = INSTRUCTION_INFO.decode(instruction_info)
        address_size = ADDRESS_SIZES[info["address size"]]
        segment = SEGMENTS[info["segment"]]
    return IoAccess(  # port, size, is_in, string, rep, address size, segment, immediate
        f["port"], f["size"] + 1, is_in, string, bool(f["REP"]), address_size, segment, immediate
    )


@dataclass(frozen=True)
class SvmIoExit:
    """VMEXIT_IOIO: EXITINFO1 describes the access, EXITINFO2 is the next instruction's RIP."""

    exitinfo1: int
    exitinfo2: int
    rip: int
    vendor: ClassVar[str] = "svm"
    next_rip: int = field(init=False, repr=False, compare=False)  # = EXITINFO2

    def __post_init__(self) -> None:
        for name in ("exitinfo1", "exitinfo2", "rip"):
            _check_u64(name.upper() if name != "rip" else "RIP", getattr(self, name))
        # where the guest resumes: an attribute, not a property, as every fast exit reads it
        object.__setattr__(self, "next_rip", self.exitinfo2)

    @classmethod
    def from_silicon(cls, exitinfo1: int, length: int, rip: int) -> SvmIoExit:
        """The record as the model's hardware builds it (``hardware.intercept``), from an
        EXITINFO1 it encoded itself and an instruction length it decoded (1..15): those are
        right by construction, so only RIP, which came from the vCPU, is checked. A record
        made by hand goes through every check instead; both give equal records."""
        exitinfo2 = rip + length
        if rip.__class__ is not int or rip < 0 or exitinfo2 > U64:
            return cls(exitinfo1, exitinfo2, rip)  # the checks name what is wrong
        record = _object_new(cls)
        _set(record, "__dict__", {"exitinfo1": exitinfo1, "exitinfo2": exitinfo2, "rip": rip,
                                  "next_rip": exitinfo2, "_access": _svm_access(exitinfo1)})
        return record

    @property
    def instruction_length(self) -> int:
        return _instruction_length("EXITINFO2 − RIP", (self.exitinfo2 - self.rip) & U64)

    def access(self) -> IoAccess:
        """The validated access; a record is immutable, so it is worked out once (kept as
        ``_access``, which the dispatcher reads without this call)."""
        try:
            return self._access  # type: ignore[attr-defined]
        except AttributeError:  # the first time for a record made by hand
            access = _svm_access(self.exitinfo1)
            _instruction_length("EXITINFO2 − RIP", (self.exitinfo2 - self.rip) & U64)
            object.__setattr__(self, "_access", access)
        return access

    def describe(self) -> tuple[Row, ...]:
        length = (self.exitinfo2 - self.rip) & U64
        ok = 1 <= length <= MAX_INSTRUCTION_LENGTH
        text = f"next RIP; length {length}" if ok else f"invalid: length {length} not in 1..15"
        return (
            *EXITINFO1.describe(self.exitinfo1),
            Row("63:0", "EXITINFO2", f"{self.exitinfo2:#x}", text, ok),
        )

    @classmethod
    def from_access(
        cls,
        access: IoAccess,
        rip: int,
        next_rip: int,
        address_size: int | None = None,
        segment: str | None = None,
    ) -> SvmIoExit:
        """Encode; ``address_size``/``segment`` fill in what a VMX-derived access may lack.

        OUTS reads DS:(R)SI unless overridden, so its segment is never guessed; INS always
        uses ES; a non-string access has no memory operand and reports SEG = 0.
        """
        _instruction_length("EXITINFO2 − RIP", (next_rip - rip) & U64)
        asize = address_size or access.address_size
        if asize not in ADDRESS_SIZES:
            raise ExitInfoError(
                f"EXITINFO1 A (bits 9:7) needs an address size of 16, 32 or 64, got {asize!r}"
            )
        seg = segment or access.segment
        if seg is None:
            if access.string and not access.is_in:
                raise ExitInfoError(
                    "EXITINFO1 SEG (bits 12:10) of an OUTS is unknown (DS unless overridden): "
                    "pass segment='DS' (or the override)"
                )
            seg = "ES"
        elif access.string and access.is_in and seg != "ES":
            raise ExitInfoError(
                f"EXITINFO1 SEG (bits 12:10) of an INS is ES: INS always writes ES:(R/E)DI "
                f"and no override applies, got segment={seg!r}"
            )
        exitinfo1 = EXITINFO1.encode(
            TYPE=access.is_in,
            STR=access.string,
            REP=access.rep,
            SZ=access.size,
            A=asize // 16 if asize < 64 else 4,
            SEG=SEGMENTS.index(seg) if seg in SEGMENTS else -1,
            PORT=access.port,
        )
        return cls(exitinfo1, next_rip, rip)

    def to_vmx(self, immediate: bool | None = None) -> VmxIoExit:
        """The same access as VMX would report it; ``immediate`` is what SVM does not say."""
        return VmxIoExit.from_access(self.access(), self.rip, self.instruction_length, immediate)


@dataclass(frozen=True)
class VmxIoExit:
    """EXIT_REASON_IO_INSTRUCTION: the exit qualification plus the VM-exit instruction length."""

    qualification: int
    instruction_length: int
    rip: int
    instruction_info: int | None = None  # INS/OUTS only, when IA32_VMX_BASIC bit 54 is set
    vendor: ClassVar[str] = "vmx"
    next_rip: int = field(init=False, repr=False, compare=False)  # RIP + length, mod 2^64

    def __post_init__(self) -> None:
        _check_u64("exit qualification", self.qualification)
        _check_u64("RIP", self.rip)
        if isinstance(self.instruction_length, bool) or not isinstance(
            self.instruction_length, int
        ):
            raise ExitInfoError(
                f"VM-exit instruction length must be an integer, got {self.instruction_length!r}"
            )
        if self.instruction_info is not None:
            INSTRUCTION_INFO.check_range(self.instruction_info)
        # where the guest resumes: an attribute, not a property, as every fast exit reads it
        object.__setattr__(self, "next_rip", (self.rip + self.instruction_length) & U64)

    def access(self) -> IoAccess:
        """The validated access; a record is immutable, so it is worked out once (kept as
        ``_access``, which the dispatcher reads without this call)."""
        try:
            return self._access  # type: ignore[attr-defined]
        except AttributeError:  # the first time for a record made by hand
            _instruction_length("VM-exit instruction length", self.instruction_length)
            access = _vmx_access(self.qualification, self.instruction_info)
            object.__setattr__(self, "_access", access)
        return access

    @classmethod
    def from_silicon(
        cls, qualification: int, length: int, rip: int, info: int | None = None
    ) -> VmxIoExit:
        """The record as the model's hardware builds it (see ``SvmIoExit.from_silicon``):
        the qualification and instruction-information it encoded and the length it decoded
        are right by construction; RIP, from the vCPU, is checked."""
        if rip.__class__ is not int or not 0 <= rip <= U64:
            return cls(qualification, length, rip, info)  # the checks name what is wrong
        record = _object_new(cls)
        _set(record, "__dict__", {"qualification": qualification, "instruction_length": length,
                                  "rip": rip, "instruction_info": info,
                                  "next_rip": (rip + length) & U64,
                                  "_access": _vmx_access(qualification, info)})
        return record

    def describe(self) -> tuple[Row, ...]:
        ok = 1 <= self.instruction_length <= MAX_INSTRUCTION_LENGTH
        text = "bytes to the next instruction" if ok else "invalid: not in 1..15"
        rows = (
            *EXIT_QUALIFICATION.describe(self.qualification),
            Row("31:0", "instruction length", str(self.instruction_length), text, ok),
        )
        if self.instruction_info is not None:
            rows += INSTRUCTION_INFO.describe(self.instruction_info)
        return rows

    @classmethod
    def from_access(
        cls,
        access: IoAccess,
        rip: int,
        instruction_length: int,
        immediate: bool | None = None,
    ) -> VmxIoExit:
        """Encode; ``immediate`` fills in the operand encoding an SVM-derived access lacks."""
        imm = access.immediate if immediate is None else immediate
        if imm is None:
            if not access.string:
                raise ExitInfoError(
                    "exit qualification operand encoding (bit 6) is unknown: "
                    "pass immediate=True or False"
                )
            imm = False
        qualification = EXIT_QUALIFICATION.encode(
            size=access.size - 1,
            direction=access.is_in,
            string=access.string,
            REP=access.rep,
            **{"operand encoding": imm},
            port=access.port,
        )
        info = None
        if access.string and access.address_size is not None:
            info = INSTRUCTION_INFO.encode(
                **{"address size": ADDRESS_SIZES.index(access.address_size)},
                segment=SEGMENTS.index(access.segment or "ES"),
            )
        exit_ = cls(qualification, instruction_length, rip, info)
        exit_.access()
        return exit_

    def to_svm(self, address_size: int | None = None, segment: str | None = None) -> SvmIoExit:
        """The same access as SVM would report it. What VMX leaves out must be given: the
        address size of IN/OUT, and of INS/OUTS without instruction-information, and the
        segment of such an OUTS."""
        return SvmIoExit.from_access(self.access(), self.rip, self.next_rip, address_size, segment)

