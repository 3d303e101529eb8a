"""Decode the bytes at CS:RIP as IN, OUT, INS or OUTS, with their prefixes.

This is the first half of what a hypervisor's emulator does when the exit record is not
trusted (or, before 2010 in Xen, for every port-I/O exit): read the instruction and work
out the access from the bytes alone. Only the twelve I/O opcodes are decoded; anything else
is refused, as Xen's emulator limited to port I/O refuses it.

Rules, with their sources (Intel SDM Vol. 2 §2.1–2.2, Appendix A; AMD APM Vol. 3 §1.2):

- Legacy prefixes may come in any order and repeat; a repeated 66 or 67 still toggles once.
- 66 toggles the operand size between 16 and 32 bits (default 16 in 16-bit mode, 32
  otherwise); the byte forms (E4 E6 EC EE 6C 6E) are 1 byte whatever the prefixes.
- 67 toggles the address size: 16↔32 in 16- and 32-bit modes, 64→32 in 64-bit mode.
- F3 (REP) and F2 (REPNE) both repeat INS/OUTS: the SDM (Vol. 2 §2.1.1) lists both as repeat
  prefixes of string and I/O instructions (AMD documents F2 only with CMPS/SCAS), neither tests
  ZF for these, and unicorn 2.1.4 runs ``F2 6C`` RCX times while capstone 5 prints it as
  ``repne insb``. On IN/OUT a repeat prefix is reserved; this decoder ignores it (a choice).
- Segment overrides (26 2E 36 3E 64 65): with several, the result is architecturally
  unpredictable; this decoder lets the last one win, as decoders do. They matter to OUTS only (its
  source is DS:(R/E)SI by default); INS always writes ES:(R/E)DI. In 64-bit mode ES, CS, SS
  and DS overrides are "null prefixes" that take no part in the multiple-prefix rules (AMD
  APM Vol. 3 §1.2.4), so they neither select a segment nor cancel an earlier FS or GS: on a
  real CPU ``64 26 …`` uses FS (DynamoRIO issue 6003). iced and Bochs agree; capstone 5.0
  and unicorn 2.1 let the later prefix win (capstone PR 2819, unicorn issue 1781).
- REX (40–4F) exists only in 64-bit mode, and only when it immediately precedes the opcode
  (SDM §2.2.1); elsewhere it is ignored. REX.W asks for a 64-bit operand size, which beats
  66 (SDM §2.2.1.2), and the I/O operands are of type *z*, "doubleword for 32- or 64-bit
  operand size" (SDM Appendix A.2.2): so ``66 48 ED`` is ``in eax, dx``. In 16- and 32-bit
  mode 40–4F are INC/DEC, not prefixes.
- LOCK (F0) on an I/O instruction raises #UD; more than 15 bytes raise #GP.
"""

from __future__ import annotations

from typing import NamedTuple

from .errors import HvmioError, InvalidInstruction
from .exits import MAX_INSTRUCTION_LENGTH, IoAccess
from .fields import NULL_SEGMENTS_64
from .kept import keep

MODES = (16, 32, 64)
_new = tuple.__new__  # a named tuple from all its fields, without the keyword handling

# Prefix kinds
_OSIZE, _ASIZE, _REP, _REPNE, _SEG, _LOCK, _REX = range(7)

_LEGACY = {
    0x66: (_OSIZE, None),
    0x67: (_ASIZE, None),
    0xF3: (_REP, "rep"),
    0xF2: (_REPNE, "repne"),
    0xF0: (_LOCK, "lock"),
    0x26: (_SEG, "ES"),
    0x2E: (_SEG, "CS"),
    0x36: (_SEG, "SS"),
    0x3E: (_SEG, "DS"),
    0x64: (_SEG, "FS"),
    0x65: (_SEG, "GS"),
}


class Opcode(NamedTuple):
    mnemonic: str  # "in", "out", "ins", "outs"
    is_in: bool
    string: bool
    immediate: bool  # port in an imm8 after the opcode
    byte_form: bool  # operand size fixed at 1 byte
    form: str  # the manual's operand form, for display


OPCODES: dict[int, Opcode] = {
    0xE4: Opcode("in", True, False, True, True, "IN AL, imm8"),
    0xE5: Opcode("in", True, False, True, False, "IN eAX, imm8"),
    0xE6: Opcode("out", False, False, True, True, "OUT imm8, AL"),
    0xE7: Opcode("out", False, False, True, False, "OUT imm8, eAX"),
    0xEC: Opcode("in", True, False, False, True, "IN AL, DX"),
    0xED: Opcode("in", True, False, False, False, "IN eAX, DX"),
    0xEE: Opcode("out", False, False, False, True, "OUT DX, AL"),
    0xEF: Opcode("out", False, False, False, False, "OUT DX, eAX"),
    0x6C: Opcode("ins", True, True, False, True, "INSB: ES:[rDI] ← port DX"),
    0x6D: Opcode("ins", True, True, False, False, "INSW/INSD: ES:[rDI] ← port DX"),
    0x6E: Opcode("outs", False, True, False, True, "OUTSB: port DX ← DS:[rSI]"),
    0x6F: Opcode("outs", False, True, False, False, "OUTSW/OUTSD: port DX ← DS:[rSI]"),
}


def _prefix_table(mode: int) -> dict[int, tuple[int, str]]:
    """byte → (kind, display name) for one mode: names like ``o16``/``a32`` depend on it."""
    table = {}
    for byte, (kind, name) in _LEGACY.items():
        if kind == _OSIZE:
            name = "o32" if mode == 16 else "o16"
        elif kind == _ASIZE:
            name = "a16" if mode == 32 else "a32"
        elif kind == _SEG:
            name = name.lower()
        table[byte] = (kind, name)
    if mode == 64:
        for byte in range(0x40, 0x50):
            bits = "".join(c for c, bit in zip("wrxb", (8, 4, 2, 1), strict=True) if byte & bit)
            table[byte] = (_REX, "rex." + bits if bits else "rex")
    return table


_PREFIXES = {mode: _prefix_table(mode) for mode in MODES}
# The same, and OPCODES, as 256-entry tuples (None: not a prefix, not an I/O opcode): the
# decoder looks one up per byte, and a tuple index costs a fraction of a dict's get.
_PREFIX_AT = {mode: tuple(map(table.get, range(256))) for mode, table in _PREFIXES.items()}
_OPCODE_AT = tuple(map(OPCODES.get, range(256)))
_TOGGLED_ASIZE = {16: 32, 32: 16, 64: 32}
_SUFFIX = {1: "b", 2: "w", 4: "d"}
_PTR = {1: "byte", 2: "word", 4: "dword"}
_AREG = {1: "al", 2: "ax", 4: "eax"}
_INDEX = {16: "", 32: "e", 64: "r"}


class FetchedBytes(bytes):
    """Instruction bytes whose fetch stopped early, with the error the next byte would raise.

    ``emulator.fetch`` returns one when a not-present page (or the end of memory) cut it
    short. Whether that matters is the decoder's call: if it needs a byte that was not
    fetched it raises ``stop``, the #PF the CPU's instruction fetch would have taken.
    """

    stop: HvmioError | None = None


class TruncatedInstruction(InvalidInstruction):
    """The bytes stop before the instruction does; ``offset`` is the first missing byte.

    A separate class so the emulator can tell "the fetch stopped at a not-present page"
    (a #PF on the instruction fetch) from bytes that are simply wrong.
    """

    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.offset = offset


class Decided(NamedTuple):
    """Which byte decided what, as ``decode_instruction`` applied the rules: ``explain``
    formats this record instead of working the rules out a second time. An offset is -1
    where no prefix decided it."""

    segment_at: int  # the segment override in effect (for OUTS it picks the source)
    osize_at: int  # the first 66 (a repeat toggles nothing more)
    asize_at: int  # the first 67
    rex_at: int  # the REX right before the opcode, the only one that counts
    size_by: str  # what set the operand size: "byte form", "REX.W", "66" or "default"
    repeat_at: int  # the last F2/F3 (the one capstone names; both repeat INS/OUTS alike)


# (port, the fields below from ``size`` to ``port``) → the validated IoAccess they describe
_ACCESSES: dict[tuple, IoAccess] = {}


_NO_PREFIX = {by: Decided(-1, -1, -1, -1, by, -1) for by in ("byte form", "default")}


class IoInstruction(NamedTuple):
    """One decoded I/O instruction: everything the emulator needs, nothing it must trust.

    An immutable named tuple: the emulator decodes one per exit, uncached, so it must be
    cheap to build.
    """

    length: int
    mnemonic: str
    size: int
    is_in: bool
    string: bool
    rep: bool
    address_size: int
    segment: str | None  # effective segment of the memory operand; None for IN/OUT
    immediate: bool
    port: int | None  # the imm8, or None when the port is in DX
    prefixes: tuple[str, ...]  # display names, in the order the bytes came
    code: bytes = b""  # the instruction's bytes
    mode: int = 64
    decided: Decided | None = None

    def access(self, dx: int) -> IoAccess:
        """The vendor-neutral access, with the port from the imm8 or from DX (validated as
        every IoAccess is, once per distinct access: the emulator asks for one every exit,
        and checking the fields costs more than decoding them)."""
        form = self[2:10]  # size, is_in, string, rep, address_size, segment, immediate, port
        port = form[7] if form[6] else dx & 0xFFFF
        key = (port, form)
        access = _ACCESSES.get(key)
        # a hit must match in type too, as True == 1 and 32.0 == 32 (a hand-built instruction)
        if (access is None or access[1] is not form[0] or access[2] is not form[1]
                or access[3] is not form[2] or access[4] is not form[3]
                or access[5] is not form[4] or access[7] is not form[6]):  # fmt: skip
            access = keep(_ACCESSES, key, IoAccess(port, *form[:6], form[6]))
        return access

    @property
    def text(self) -> str:
        """Intel syntax in capstone 5's spelling, with two choices of our own: the memory
        operand always names its segment (capstone leaves a default one out outside 16-bit
        mode) and the imm8 port is always hex (capstone writes 0–9 in decimal). Where
        capstone 5 misdecodes (REX.W with 66, null segment prefixes in 64-bit mode; see
        tests/test_decoder.py) the text follows the manuals, as the decode does."""
        size = self.size
        if not self.string:
            port = f"{self.port:#x}" if self.immediate else "dx"
            reg = _AREG[size]
            return f"in {reg}, {port}" if self.is_in else f"out {port}, {reg}"
        rep = ""
        if self.rep:
            repeat_at = self.decided.repeat_at if self.decided is not None else -1
            rep = "repne " if repeat_at >= 0 and self.code[repeat_at] == 0xF2 else "rep "
        index = _INDEX[self.address_size] + ("di" if self.is_in else "si")
        mem = f"{_PTR[size]} ptr {self.segment.lower()}:[{index}]"
        name = f"{rep}{self.mnemonic}{_SUFFIX[size]}"
        return f"{name} {mem}, dx" if self.is_in else f"{name} dx, {mem}"

    def __str__(self) -> str:
        return self.text


def _truncated(source: bytes, message: str, offset: int) -> HvmioError:
    """The bytes ran out: a fetch fault if the fetch stopped early, else a short instruction."""
    short = TruncatedInstruction(message, offset)
    stop = getattr(source, "stop", None)
    if stop is not None:
        stop.__cause__ = short
        return stop
    return short


def _too_long(code: bytes, offset: int) -> InvalidInstruction:
    if offset < len(code):
        what = f"byte {code[offset]:#04x} at offset {offset}"
    else:
        what = f"offset {offset}"
    return InvalidInstruction(
        f"{what} is past the {MAX_INSTRUCTION_LENGTH}-byte instruction limit (the CPU raises #GP)"
    )


def decode_instruction(code: bytes, mode: int) -> IoInstruction:
    """Decode the first instruction in ``code`` in a 16-, 32- or 64-bit code segment.

    Raises InvalidInstruction naming the byte and its offset, for LOCK, a non-I/O opcode,
    more than 15 bytes, or (TruncatedInstruction) bytes that end too soon. If ``code`` came
    from a fetch that a not-present page cut short, needing the missing bytes raises that
    PageFault instead.
    """
    try:
        prefixes = _PREFIX_AT[mode]
    except (KeyError, TypeError):
        raise ValueError(f"mode must be 16, 32 or 64, got {mode!r}") from None
    source = code
    if code.__class__ is not bytes:  # a FetchedBytes (its ``stop`` stays with ``source``)
        code = bytes(code)
    n = len(code)
    osize = asize = rep = False
    segment = None
    segment_at = osize_at = asize_at = repeat_at = -1
    rex, rex_at = 0, -2  # -2: no REX right before an opcode at offset 0
    names: list[str] = []
    i = 0
    end = n if n < MAX_INSTRUCTION_LENGTH else MAX_INSTRUCTION_LENGTH
    while i < end:
        byte = code[i]
        entry = prefixes[byte]
        if entry is None:
            break
        kind, name = entry
        names.append(name)
        if kind == _OSIZE:
            if not osize:
                osize, osize_at = True, i
        elif kind in (_REP, _REPNE):
            rep, repeat_at = True, i
        elif kind == _SEG:
            if mode != 64 or name in ("fs", "gs"):
                segment, segment_at = name.upper(), i
        elif kind == _ASIZE:
            if not asize:
                asize, asize_at = True, i
        elif kind == _REX:
            rex, rex_at = byte, i
        else:  # _LOCK, the one kind left
            raise InvalidInstruction(
                f"byte 0xf0 at offset {i} is LOCK, which raises #UD on IN/OUT/INS/OUTS"
            )
        i += 1
    else:  # no opcode within the bytes, or within the 15-byte limit
        if i >= MAX_INSTRUCTION_LENGTH:
            raise _too_long(code, i)
        raise _truncated(source, f"the bytes end at offset {i}, before the opcode", i)
    op = _OPCODE_AT[byte]
    if op is None:
        hint = " (INC/DEC outside 64-bit mode)" if 0x40 <= byte <= 0x4F else ""
        raise InvalidInstruction(f"byte {byte:#04x} at offset {i} is not an I/O opcode{hint}")
    mnemonic, is_in, string, immediate, byte_form, _ = op
    length = i + 1
    port = None
    if immediate:
        if length >= MAX_INSTRUCTION_LENGTH:
            raise _too_long(code, length)
        if length >= n:
            message = f"the bytes end at offset {length}, before the imm8 port of {mnemonic}"
            raise _truncated(source, message, length)
        port = code[length]
        length += 1
    if rex_at != i - 1:
        rex_at = -1  # a REX not right before the opcode is ignored
    if byte_form:
        size, size_by = 1, "byte form"
    elif rex_at >= 0 and rex & 0x8:
        size, size_by = 4, "REX.W"  # 64-bit operand size, which the z-sized operand caps at 32
    elif mode == 16:
        size, size_by = (4, "66") if osize else (2, "default")
    else:
        size, size_by = (2, "66") if osize else (4, "default")
    seg = ("ES" if is_in else segment or "DS") if string else None
    return _new(IoInstruction, (  # all fields, in order: one is decoded per emulated exit
        length,
        mnemonic,
        size,
        is_in,
        string,
        rep and string,
        _TOGGLED_ASIZE[mode] if asize else mode,  # a mode's default address size is its own
        seg,
        immediate,
        port,
        tuple(names) if names else (),
        code[:length],
        mode,
        _new(Decided, (segment_at, osize_at, asize_at, rex_at, size_by, repeat_at)) if i
        else _NO_PREFIX[size_by],  # the same record for every instruction without prefixes
    ))


class ByteRole(NamedTuple):
    """One byte of an instruction and what it does there, for the decode table."""

    offset: int
    byte: int
    role: str

    def __str__(self) -> str:
        return f"{self.offset:>2}  {self.byte:02X}  {self.role}"


def explain(insn: IoInstruction) -> tuple[ByteRole, ...]:
    """Say, byte by byte, what each prefix, the opcode and the imm8 do in this instruction:
    the words for the record ``decode_instruction`` kept of which byte decided what."""
    mode, code, decided = insn.mode, insn.code, insn.decided
    if decided is None:
        decided = decode_instruction(code, mode).decided
    table = _PREFIXES[mode]
    op_at = len(code) - 1 - (1 if insn.immediate else 0)
    op = OPCODES[code[op_at]]
    rows = []
    for i in range(op_at):
        byte = code[i]
        kind, name = table[byte]
        if kind == _OSIZE:
            change = "16 → 32" if mode == 16 else "32 → 16"
            if decided.size_by == "byte form":
                role = "operand-size override: no effect on a byte form"
            elif decided.size_by == "REX.W":
                role = "operand-size override: no effect, REX.W wins"
            elif i != decided.osize_at:
                role = "operand-size override again: toggles only once"
            else:
                role = f"operand-size override: {change} bits"
        elif kind == _ASIZE:
            change = {16: "16 → 32", 32: "32 → 16", 64: "64 → 32"}[mode]
            if i != decided.asize_at:
                role = "address-size override again: toggles only once"
            elif insn.string:
                role = f"address-size override: {change} bits for rSI/rDI/rCX"
            else:
                role = f"address-size override: {change} bits (no memory operand, so no effect)"
        elif kind in (_REP, _REPNE):
            if not insn.string:
                role = f"{name.upper()}: ignored on IN/OUT"
            elif kind == _REPNE:
                role = "REPNE: repeats INS/OUTS rCX times, exactly like REP"
            else:
                role = "REP: repeat rCX times"
        elif kind == _SEG:
            seg = name.upper()
            if i == decided.segment_at:
                if not insn.string:
                    role = f"{seg} override: no memory operand, so no effect"
                elif insn.is_in:
                    role = f"{seg} override: no effect, INS always writes ES"
                else:
                    role = f"{seg} override: OUTS reads {seg}:[rSI] instead of DS"
            elif mode == 64 and seg in NULL_SEGMENTS_64:
                role = f"{seg} override: ignored in 64-bit mode"
            else:
                role = f"{seg} override: a later segment prefix wins"
        else:  # REX
            if i != decided.rex_at:
                role = f"{name.upper()}: ignored, not right before the opcode"
            elif decided.size_by == "REX.W":
                role = "REX.W: 64-bit operand size, capped at 32 for I/O (66 loses)"
            else:
                role = f"{name.upper()}: no effect on I/O"
        rows.append(ByteRole(i, byte, role))
    form = op.form.replace("DS:", f"{insn.segment}:") if insn.mnemonic == "outs" else op.form
    rows.append(ByteRole(op_at, code[op_at], f"opcode: {form}"))
    if insn.immediate:
        rows.append(ByteRole(op_at + 1, code[op_at + 1], f"imm8: port {insn.port:#04x}"))
    return tuple(rows)


def describe(insn: IoInstruction) -> tuple[tuple[str, str], ...]:
    """The decoded fields as (name, value) pairs, for a table."""
    port = f"{insn.port:#04x} (imm8)" if insn.immediate else "DX"
    return (
        ("instruction", insn.text),
        ("length", f"{insn.length} byte{'s' if insn.length > 1 else ''}"),
        ("direction", "IN" if insn.is_in else "OUT"),
        ("size", f"{insn.size} byte{'s' if insn.size > 1 else ''}"),
        ("port", port),
        ("string", "yes" if insn.string else "no"),
        ("rep", "yes" if insn.rep else "no"),
        ("address size", f"{insn.address_size}-bit"),
        ("segment", insn.segment or "—"),
        ("prefixes", " ".join(insn.prefixes) or "—"),
    )


def parse_hex(text: str) -> bytes:
    """Bytes as a learner types them: ``66 67 F3 6D``, ``6667f36d``, ``0x66, 0x67`` or ``\\x66``.

    A byte written with its prefix (``0x6``, ``\\x6``) is one byte, so ``0x6, 0xc`` is 06 0C,
    never 6C; bare digits are read in pairs and must make whole bytes."""
    cleaned = text.lower().replace(",", " ").replace("\\x", " 0x")
    digits = []
    for token in cleaned.split():
        for i, part in enumerate(token.split("0x")):
            if i and len(part) == 1:  # 0x6: one byte, its high digit left out
                part = "0" + part
            elif i and len(part) > 2:
                raise InvalidInstruction(f"0x{part} is more than one byte: type bytes like F3 6C")
            digits.append(part)
    digits = "".join(digits)
    bad = next((c for c in digits if c not in "0123456789abcdef"), None)
    if bad is not None:
        raise InvalidInstruction(f"{bad!r} is not a hex digit: type bytes like F3 6C")
    if len(digits) % 2:
        raise InvalidInstruction(f"{len(digits)} hex digits is not a whole number of bytes")
    return bytes.fromhex(digits)


def decode_table(code: bytes, mode: int) -> str:
    """The decode as plain text: each byte's role, then the fields; or the refusal message."""
    shown = code.hex(" ").upper() or "(no bytes)"
    try:
        insn = decode_instruction(code, mode)
    except InvalidInstruction as e:
        return f"{shown} in {mode}-bit mode: refused: {e}"
    lines = [f"{shown} in {mode}-bit mode → {insn.text}"]
    lines += [f"  {row}" for row in explain(insn)]
    if insn.length < len(code):
        lines.append(f"  (bytes from offset {insn.length} on belong to the next instruction)")
    width = max(len(name) for name, _ in describe(insn))
    lines += [f"  {name:<{width}}  {value}" for name, value in describe(insn)[1:]]
    return "\n".join(lines)
