"""Chapter 04, the emulator: exercises and seeded decoding practice.

Facts (SDM Vol. 2 §2.1–2.2 and the IN/OUT/INS/OUTS/REP pages; IO_EXITS.md §3): 66 and 67
toggle the operand and address size away from the code segment's default; F3 (and F2) repeat
INS/OUTS (R/E)CX times; INS writes ES:(R/E)DI; pointers step ± the element size by DF, and
only the bits of the address size change.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from ..decoder import decode_instruction, decode_table
from .common import AnswerError, Ask, Practice, Question, Verdict, as_int, exercise, right, wrong

# -- reading a decode answer -----------------------------------------------------------------

_SIZE_OF = {"b": 1, "w": 2, "d": 4, "al": 1, "ax": 2, "eax": 4}
_DECODED_RE = re.compile(
    r"(?P<rep>rep\w*\s+)?(?:(?P<str>ins|outs)(?P<sfx>[bwd])|(?P<io>in|out)\s+(?P<ops>[\w, ]+))"
)


@dataclass(frozen=True)
class Decoded:
    """A learner's decode: ``rep insd a32``, ``outsb a16 fs``, ``in ax, 0x60``."""

    mnemonic: str
    size: int
    rep: bool
    address_size: int | None
    segment: str | None
    port: int | str | None = None  # an imm8, "dx", or None for string forms


def parse_decoded(text: Any) -> Decoded:
    if not isinstance(text, str):
        raise AnswerError(f"Answer as text such as 'rep insd a32' or 'in ax, dx'; got {text!r}.")
    s = " ".join(text.lower().replace(",", ", ").split())
    m = _DECODED_RE.match(s)
    if not m:
        raise AnswerError(
            f"Answer like 'rep insd a32', 'outsb a16 fs' or 'in ax, 0x60'; got {text!r}."
        )
    rest = s[m.end() :]
    asize = re.search(r"\ba(16|32|64)\b", rest)
    segment = re.search(r"\b(es|cs|ss|ds|fs|gs)\b", rest)
    if m["str"]:
        mnemonic, size = m["str"], _SIZE_OF[m["sfx"]]
    else:
        ops = [op for op in re.split(r"[ ,]+", m["ops"]) if op]
        regs = [op for op in ops if op in ("al", "ax", "eax")]
        ports = [op for op in ops if op not in regs]
        if not regs or len(ports) != 1:
            raise AnswerError(f"Write IN/OUT with both operands, e.g. 'in al, dx'; got {text!r}.")
        mnemonic, size = m["io"], _SIZE_OF[regs[0]]
        port = "dx" if ports[0] == "dx" else as_int(ports[0], "The port")
    return Decoded(
        mnemonic,
        size,
        bool(m["rep"]),
        int(asize[1]) if asize else None,
        segment[1].upper() if segment else None,
        None if m["str"] else port,
    )


def judge_decode(answer: Any, code: bytes, mode: int) -> Verdict:
    """Mark a decode of ``code`` in ``mode``, with a hint for each part that is off."""
    got = parse_decoded(answer)
    insn = decode_instruction(code, mode)
    hints = []
    if got.mnemonic != insn.mnemonic:
        hints.append(
            f"The opcode is {insn.code[insn.length - 1 - insn.immediate]:02X}: E4–E7 and EC–EF "
            "are IN/OUT, 6C/6D are INS, 6E/6F are OUTS."
        )
    elif got.size != insn.size:
        if insn.size == 1:
            hints.append("This is a byte form (E4 E6 EC EE 6C 6E): 1 byte whatever the prefixes.")
        else:
            default = 16 if mode == 16 else 32
            rex = " (and REX.W right before the opcode makes it 32)" if mode == 64 else ""
            hints.append(
                f"In {mode}-bit mode the default operand size is {default} bits; 66 toggles "
                f"it{rex}."
            )
    if not insn.string and got.mnemonic == insn.mnemonic:
        want = insn.port if insn.immediate else "dx"
        if got.port != want:
            hints.append(
                f"The port is {'the imm8 after the opcode' if insn.immediate else 'in DX'}: "
                "E4–E7 carry an imm8, EC–EF use DX."
            )
    if got.rep != insn.rep:
        if not insn.string:
            hints.append("REP does nothing to IN/OUT: only string instructions repeat.")
        elif insn.rep:
            hints.append("F3 and F2 both repeat INS/OUTS.")
        else:
            hints.append("There is no F3 or F2 prefix, so it runs once.")
    if insn.string and got.address_size != insn.address_size:
        if got.address_size is None:
            hints.append("Give the address size too, as a16, a32 or a64.")
        else:
            hints.append(
                f"The {mode}-bit default address size is {mode} bits; 67 toggles it "
                "(16 ↔ 32, or 64 → 32 in 64-bit mode)."
            )
    if insn.mnemonic == "outs" and got.segment not in (None, insn.segment):
        hints.append(
            "OUTS reads DS:[rSI] unless a segment prefix says otherwise; with two, this "
            "decoder takes the last (architecturally unpredictable), and in 64-bit mode only "
            "FS and GS count."
        )
    if hints:
        return wrong(" ".join(hints))
    return right(insn.text)


# -- 04.1: decode 66 67 F3 6D in 16-bit mode -------------------------------------------------

_SOLUTION_04_1 = """
66 67 F3 6D in a 16-bit code segment (SDM Vol. 2 §2.1.1, Appendix A):
  66  operand-size override: the 16-bit default becomes 32 bits     → dword elements
  67  address-size override: the 16-bit default becomes 32 bits     → EDI and ECX, not DI and CX
  F3  REP                                                           → repeat ECX times
  6D  INSW/INSD (the word-or-dword form of INS)                     → ES:[EDI] ← port DX

So: rep insd dword ptr es:[edi], dx  — 4-byte elements, a 32-bit address size.

The trap: 66 does not mean "16-bit". It means "the other operand size" — 32 bits in a
16-bit segment, 16 bits in a 32- or 64-bit one. 67 works the same way for addresses.
Check it: hvmio_lab.decode_instruction(bytes.fromhex("66 67 F3 6D"), 16).
"""


@exercise(
    "04_1",
    "Decode the bytes 66 67 F3 6D in 16-bit mode. Answer (instruction, address size in bits), "
    "e.g. ('rep insw', 16).",
    _SOLUTION_04_1,
    hint="Both 66 and 67 toggle away from the code segment's default. What is the default in "
    "a 16-bit segment?",
    ask=[Ask("instruction", placeholder="e.g. rep insw"),
         Ask("address size", {"16": "16-bit", "32": "32-bit", "64": "64-bit"})],
)
def ex_04_1(instruction, address_size) -> Verdict:
    got = parse_decoded(instruction)
    asize = as_int(address_size, "The address size")
    if got.mnemonic != "ins":
        return wrong("6D is INS (6C/6D read a port into memory; 6E/6F are OUTS).")
    if got.size == 1:
        return wrong("6D is the word/dword form; 6C is the byte form.")
    if got.size == 2:
        return wrong(
            "In a 16-bit code segment the default operand size is 16 bits and 66 "
            "toggles it, to 32: insd. (66 means 'the other size', not '16-bit'.)"
        )
    if not got.rep:
        return wrong("F3 is REP: the instruction repeats (E)CX times.")
    if asize == 16:
        return wrong(
            "67 toggles the address size too, 16 → 32: the instruction uses EDI and "
            "ECX, not DI and CX."
        )
    if asize == 64:
        return wrong("There are no 64-bit addresses outside 64-bit mode: 67 toggles 16 ↔ 32.")
    if asize != 32:
        return wrong(f"An address size is 16, 32 or 64 bits; got {asize}.")
    return right("rep insd dword ptr es:[edi], dx: dword elements at ES:EDI, ECX of them.")


# -- 04.2: DI and CX after rep insw with DF = 1 ----------------------------------------------

DI_04_2, CX_04_2 = 0xFFFA, 0

_SOLUTION_04_2 = """
16-bit mode, `rep insw` (F3 6D), DI = 0x0004, CX = 5, DF = 1:

  element   ES:DI written   DI after   CX after
     1        0x0004         0x0002       4
     2        0x0002         0x0000       3
     3        0x0000         0xFFFE       2      ← 0 − 2 wraps: the address size is 16 bits
     4        0xFFFE         0xFFFC       1
     5        0xFFFC         0xFFFA       0

DI = 0xFFFA, CX = 0. Three rules at work (SDM INS and REP; IO_EXITS.md §3):
- DF = 1 steps DI down, by the element size (2 bytes for insw);
- only the low 16 bits of EDI change, so DI wraps from 0x0000 to 0xFFFE;
- DI ends one step past the last element written, and REP stops when CX reaches 0.

Our emulator takes two exits for it: the 16-bit wrap ends the first batch after three
elements (RIP stays, CX = 2), the next exit finishes. The guest cannot tell.
"""


@exercise(
    "04_2",
    "16-bit mode, ES base 0: `rep insw` runs with DI = 0x0004, CX = 5 and DF = 1. "
    "What are DI and CX when it finishes? Answer (di, cx).",
    _SOLUTION_04_2,
    hint="Write out the five elements: where each one goes, and what DI is after it.",
    ask=[Ask("DI", placeholder="e.g. 0x0010"), Ask("CX")],
)
def ex_04_2(di, cx) -> Verdict:
    di = as_int(di, "DI")
    cx = as_int(cx, "CX")
    if cx != CX_04_2:
        return wrong(
            "REP runs until CX reaches 0. The emulator may split it over several "
            "exits (page or wrap batches), but the guest sees it finish with CX = 0."
        )
    if di == DI_04_2:
        return right("Down by 2 five times from 0x0004, wrapping at 16 bits: 0xFFFA.")
    if di == 0x000E:
        return wrong("DF = 1 steps DI down, not up.")
    if di < 0 or di > 0xFFFF:
        return wrong(
            "The address size is 16 bits, so only DI's low 16 bits change: 4 − 10 "
            "wraps to a 16-bit value."
        )
    if di == 0xFFFC:
        return wrong("0xFFFC is where the last element went; DI steps once more after it.")
    if di == 0xFFFF:
        return wrong("insw moves 2 bytes per element, so each step is 2, not 1.")
    return wrong("Five elements of 2 bytes, counting down from 0x0004, within 16 bits.")


# -- seeded practice: decode prefixed I/O instructions ----------------------------------------

_PREFIX_POOL = (0x66, 0x67, 0xF3, 0xF2, 0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65)
_OPCODES = (0xE4, 0xE5, 0xE6, 0xE7, 0xEC, 0xED, 0xEE, 0xEF, 0x6C, 0x6D, 0x6E, 0x6F)


def _question(rng: random.Random) -> tuple[bytes, int]:
    mode = rng.choice((16, 32, 64))
    opcode = rng.choice(_OPCODES[8:] if rng.random() < 0.5 else _OPCODES[:8])
    prefixes = rng.sample(_PREFIX_POOL, rng.randint(0, 3))
    if mode == 64 and rng.random() < 0.25:
        prefixes.append(rng.choice((0x40, 0x48)))
    code = bytes(prefixes) + bytes([opcode])
    if opcode in (0xE4, 0xE5, 0xE6, 0xE7):
        code += bytes([rng.choice((0x60, 0x64, 0x70, 0x80, 0x92))])
    return code, mode


def practice_04(seed: int = 4, n: int = 5) -> Practice:
    """Decode ``n`` seeded prefixed I/O instructions; the same seed, the same questions."""
    rng = random.Random(seed)
    questions = []
    for _ in range(n):
        code, mode = _question(rng)
        insn = decode_instruction(code, mode)
        answer = insn.text
        if insn.string:
            segment = f" {insn.segment.lower()}" if insn.mnemonic == "outs" else ""
            name = f"{'rep ' if insn.rep else ''}{insn.mnemonic}{'bwd'[insn.size // 2]}"
            answer = f"{name} a{insn.address_size}{segment}"
        questions.append(
            Question(
                prompt=f"{mode}-bit mode: {code.hex(' ').upper()}",
                answer=answer,
                worked=decode_table(code, mode).replace("\n", "\n     "),
                judge=lambda a, code=code, mode=mode: judge_decode(a, code, mode),
            )
        )
    return Practice(
        "Practice 04: decode these I/O instructions",
        seed,
        questions,
        hint_text="Read the prefixes first (66 operand size, 67 address size, F3/F2 "
        "repeat, segment overrides), then the opcode, against the mode's defaults.",
        how="Answer like 'in ax, 0x60', or for string forms 'rep insd a32' (add the segment "
        "for OUTS: 'outsb a16 fs').\np.check(1, 'in ax, 0x60') marks one answer; p.reveal(1) shows "
        "one worked answer.",
    )
