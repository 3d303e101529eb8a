"""Chapter 02, SVM EXITINFO1: exercises and seeded decoding practice.

Facts (IO_EXITS.md §2, AMD APM Vol. 2 §15.10.2): TYPE bit 0 (1 = IN), STR bit 2, REP bit 3,
SZ8/SZ16/SZ32 bits 4–6 one-hot, A16/A32/A64 bits 7–9 one-hot, SEG bits 12:10, PORT bits 31:16,
bits 1, 15:13 and 63:32 reserved; EXITINFO2 is the next RIP.
"""

from __future__ import annotations

import random

from ..errors import ExitInfoError
from ..exits import SvmIoExit
from ..fields import EXIT_QUALIFICATION, EXITINFO1, SEGMENTS
from .common import (
    Ask,
    Practice,
    Question,
    Verdict,
    as_int,
    as_word,
    decode_practice,
    exercise,
    record_question,
    right,
    wrong,
)

# -- 02.1: encode in eax, dx from port 0x1F48 in 64-bit mode ------------------------------------

IN_EAX_DX_1F48 = (0x1F48 << 16) | (1 << 9) | (1 << 6) | 1  # PORT, A64, SZ32, TYPE = IN

_SOLUTION_02_1 = """
Build it field by field from the table (APM Vol. 2 §15.10.2):
  TYPE  bit 0      = 1            IN                          0x00000001
  SZ    bits 6:4   = 0b100        SZ32: EAX is 4 bytes        0x00000040
  A     bits 9:7   = 0b100        A64: 64-bit mode addresses  0x00000200
  STR, REP, SEG    = 0            not a string instruction
  PORT  bits 31:16 = 0x1F48       the PM timer in Xen's layout 0x1F480000
                                                              ----------
  EXITINFO1                                                   0x1F480241

In code: EXITINFO1.encode(TYPE=1, SZ=4, A=4, PORT=0x1F48) == 0x1F480241.
"""


@exercise(
    "02_1",
    "Encode `in eax, dx` with DX = 0x1F48, executed in 64-bit mode, as EXITINFO1.",
    _SOLUTION_02_1,
    hint="Start from the table: one field at a time, then OR them together.",
    ask=[Ask("EXITINFO1", placeholder="e.g. 0x12340000")],
)
def ex_02_1(answer) -> Verdict:
    value = as_int(answer, "EXITINFO1")
    if value == IN_EAX_DX_1F48:
        return right("TYPE = IN, SZ32, A64 and PORT 0x1F48 in bits 31:16: 0x1F480241.")
    if _vmx_in_eax_dx(value):
        return wrong(
            "That is the VMX exit qualification (size − 1 in bits 2:0, direction in bit 3). "
            "EXITINFO1 has TYPE in bit 0 and the one-hot SZ bits 6:4."
        )
    if value & 0xFFFF == 0x1F48 or value == 0x1F48:
        return wrong("PORT is bits 31:16 of EXITINFO1: shift the port left by 16.")
    try:
        f = EXITINFO1.decode(value)
    except ExitInfoError as e:
        return wrong(_refusal_hint(value, e))
    if not f["TYPE"]:
        return wrong("That is an OUT: TYPE (bit 0) is 1 for IN.")
    if f["PORT"] != 0x1F48:
        return wrong(f"PORT (bits 31:16) holds {f['PORT']:#x}; the port is 0x1F48.")
    if f["SZ"] != 4:
        return wrong(
            f"EAX is 4 bytes, so SZ32 (bit 6) alone; your SZ bits say {f['SZ']} byte(s). "
            "Read as a number, bits 6:4 are the byte count."
        )
    if f["A"] != 4:
        return wrong(
            "In 64-bit mode the default address size is 64 bits: A64 (bit 9). The 32 in "
            "`eax` is the operand size (SZ32), a different field."
        )
    if f["STR"] or f["REP"]:
        return wrong("`in eax, dx` is not a string instruction and has no REP: STR and REP are 0.")
    return right(
        f"(Your SEG is {SEGMENTS[f['SEG']]}: SEG matters only for string I/O, so 0x1F480241 "
        "with SEG = 0 is the usual answer.)"
    )


def _vmx_in_eax_dx(value: int) -> bool:
    try:
        f = EXIT_QUALIFICATION.decode(value)
    except ExitInfoError:
        return False
    return f["direction"] == 1 and f["size"] == 3 and f["port"] == 0x1F48


def _refusal_hint(value: int, error: ExitInfoError) -> str:
    sz, a = EXITINFO1.field("SZ").extract(value), EXITINFO1.field("A").extract(value)
    if sz not in (1, 2, 4):
        return (
            f"The decoder refuses it: {error}. SZ8/SZ16/SZ32 are one-hot: exactly one of "
            "bits 4, 5, 6. For EAX that is SZ32, bit 6 (0x40)."
        )
    if a not in (1, 2, 4):
        return (
            f"The decoder refuses it: {error}. A16/A32/A64 are one-hot too: in 64-bit mode "
            "set A64, bit 9 (0x200)."
        )
    return f"The decoder refuses it: {error}. Check the table for which bits must stay 0."


# -- 02.2: two SZ bits set ------------------------------------------------------------------


_SOLUTION_02_2 = """
0x1F480261: bits 6:4 are 0b110, so SZ16 and SZ32 are both set. SZ8/SZ16/SZ32 are one-hot
(APM Vol. 2 §15.10.2): a real CPU sets exactly one of them. Everything else is legal (TYPE = IN,
A64, PORT 0x1F48, reserved bits clear).

The 2010 seed reads the size as `bytes = (exitinfo1 >> 4) & 0x07`. That works only because the
field is one-hot: 0b001, 0b010 and 0b100 are 1, 2 and 4. On this value it gives 6 bytes, an
access no instruction can make. This is why a decoder must refuse the value rather than guess
(IO_EXITS.md §3: under SEV-ES the guest itself supplies EXITINFO1).

    EXITINFO1.decode(0x1F480261)
    ExitInfoError: EXITINFO1 SZ (bits 6:4) must be one-hot, got 0b110
"""

_SZ_NAMES = {"sz", "size", "operand size", "sz16", "sz32", "sz16 sz32", "sz32 sz16", "6:4",
             "bits 6:4", "sz 6:4", "sz bits"}


@exercise(
    "02_2",
    "EXITINFO1 = 0x1F480261. Which field is malformed, and how many bytes would the seed's "
    "`(exitinfo1 >> 4) & 7` say the access moves? Answer (field, bytes).",
    _SOLUTION_02_2,
    hint="Write out bits 9:0 in binary and compare each field with the table.",
    ask=[Ask("field", placeholder="its name in the manual"), Ask("bytes")],
)
def ex_02_2(field, nbytes) -> Verdict:
    name = " ".join(w for w in as_word(field, "the field").split() if w != "field")
    count = as_int(nbytes, "The byte count")
    if name not in _SZ_NAMES:
        if name in ("a", "a64", "address size", "a 9:7", "bits 9:7"):
            return wrong("A (bits 9:7) is 0b100: A64 alone, which is one-hot and fine. Look at "
                         "bits 6:4.")
        if name.startswith(("type", "port", "rep", "str", "seg", "reserved")):
            return wrong(f"{field} is legal here. Write bits 6:4 in binary: how many are set?")
        return wrong("Name the field as the manual does (TYPE, STR, REP, SZ, A, SEG, PORT). "
                     "Look at bits 6:4.")
    if count == 6:
        return right("SZ = 0b110 is not one-hot, and the shortcut would move 6 bytes.")
    if count in (2, 4):
        return wrong(f"The shortcut does not pick one bit: (0x1F480261 >> 4) & 7 is 0b110, not "
                     f"{count}.")
    if count == 48:
        return wrong("The question asks for bytes: the seed's `bytes` variable is 0b110.")
    return wrong("Compute (0x1F480261 >> 4) & 7 by hand: 0x1F480261 >> 4 ends in ...0x26.")


# -- 02.3: EXITINFO2 gives the instruction length and where the guest resumes ------------------

OUT_80_AL = (0x80 << 16) | (1 << 9) | (1 << 4)  # PORT 0x80, A64, SZ8, TYPE = OUT
RIP_02_3, EXITINFO2_02_3 = 0x7C10, 0x7C12

_SOLUTION_02_3 = """
EXITINFO1 = 0x00800210: TYPE = 0 (OUT), SZ8 (1 byte), A64, PORT 0x80: `out 0x80, al`, the
POST port. EXITINFO2 is the RIP of the *next* instruction (APM; IO_EXITS.md §2), so

    instruction length = EXITINFO2 − RIP = 0x7C12 − 0x7C10 = 2     (E6 80: opcode + imm8)
    the guest resumes at EXITINFO2      = 0x7C12

The CPU does not move RIP on an exit: the hypervisor writes RIP = EXITINFO2 once the access
has completed. The seed does exactly this: `__update_guest_eip(regs, vmcb->exitinfo2 -
vmcb->rip)`. The operand size (1 byte) has nothing to do with the instruction length.
"""


@exercise(
    "02_3",
    "An IOIO exit has EXITINFO1 = 0x00800210, RIP = 0x7C10, EXITINFO2 = 0x7C12. How long is the "
    "instruction, and at what RIP does the guest resume? Answer (length, rip).",
    _SOLUTION_02_3,
    hint="EXITINFO2 is not part of EXITINFO1: look up what it holds for IOIO.",
    ask=[Ask("length", placeholder="bytes"), Ask("RIP", placeholder="e.g. 0x7c00")],
)
def ex_02_3(length, rip) -> Verdict:
    n, resume = as_int(length, "The length"), as_int(rip, "The RIP")
    exit_ = SvmIoExit(OUT_80_AL, EXITINFO2_02_3, RIP_02_3)
    if n != exit_.instruction_length:
        if n == 1:
            return wrong("1 byte is the operand size (SZ8). The instruction length is "
                         "EXITINFO2 − RIP.")
        return wrong("The instruction length is EXITINFO2 − RIP.")
    if resume == RIP_02_3:
        return wrong("Resuming at RIP would run the OUT again, and exit again: the hypervisor "
                     "must advance RIP.")
    if resume != exit_.next_rip:
        return wrong("The guest resumes at the next instruction, whose RIP the CPU stored in "
                     "EXITINFO2.")
    return right("Length 2 (E6 80), resume at EXITINFO2 = 0x7C12.")


# -- seeded practice: decode N EXITINFO1 values ------------------------------------------------

PORTS = (0x60, 0x64, 0x70, 0x71, 0x80, 0x1F0, 0x1F7, 0x3F8, 0x3FD, 0xCF8, 0xCFC, 0x1F48,
         0xB008, 0x5658)

HINTS_SVM = {
    "direction": "Direction: TYPE is bit 0, 1 = IN and 0 = OUT.",
    "size": "Size: SZ8/SZ16/SZ32 are bits 4, 5, 6, one-hot; bits 6:4 read as a number are "
            "the byte count (1, 2 or 4), so 8, 16 or 32 bits.",
    "string": "String: STR is bit 2 (INS/OUTS).",
    "rep": "REP is bit 3.",
    "port": "Port: PORT is bits 31:16, (value >> 16) & 0xFFFF.",
    "invalid": "Check the rules before decoding: reserved bits 1, 15:13 and 63:32 must be 0, "
               "SZ and A must be one-hot, SEG must be 0..5 (ES..GS).",
    "valid": "Every field here is legal: reserved bits clear, SZ and A one-hot, SEG ≤ 5. "
             "Decode it.",
}

HOW = ("Decode each EXITINFO1. Answer like 'IN 32-bit port 0x1f48' or 'rep OUTS 8-bit port "
       "0x3f8' (as str(IoAccess) prints), or 'invalid SZ' naming the bad field.\n"
       "p.check(1, 'IN 32-bit port 0x1f48') marks one answer; p.reveal(1) shows one worked answer.")


def random_svm_access(rng: random.Random):
    """A random valid EXITINFO1 and the fields it was built from."""
    string = rng.random() < 0.25
    is_in = rng.randint(0, 1)
    fields = {
        "TYPE": is_in,
        "STR": int(string),
        "REP": int(string and rng.random() < 0.6),
        "SZ": rng.choice((1, 2, 4)),
        "A": rng.choice((1, 2, 4)) if rng.random() < 0.5 else 4,
        # INS always writes ES:rDI (no override), so only an OUTS names another segment.
        "SEG": rng.randint(0, 5) if string and not is_in else 0,
        "PORT": rng.choice(PORTS) if rng.random() < 0.8 else rng.randrange(0x10000),
    }
    return EXITINFO1.encode(**fields)


def _corrupt_svm(value: int, rng: random.Random) -> tuple[int, str]:
    kind = rng.choice(("SZ", "A", "SEG", "reserved"))
    if kind == "SZ":
        return (value & ~0x70) | (rng.choice((0, 3, 5, 6, 7)) << 4), "SZ"
    if kind == "A":
        return (value & ~0x380) | (rng.choice((0, 3, 5, 6, 7)) << 7), "A"
    if kind == "SEG":
        return (value & ~0x1C00) | (rng.choice((6, 7)) << 10), "SEG"
    return value | (1 << rng.choice((1, 13, 14, 15, 32, 40, 63))), "reserved"


def _svm_question(value: int, expected) -> Question:
    def worked() -> str:
        f = EXITINFO1.decode(value)
        return (f"TYPE={f['TYPE']} ({'IN' if f['TYPE'] else 'OUT'}), SZ={f['SZ']:#05b} "
                f"({f['SZ']} byte{'s' if f['SZ'] > 1 else ''}), STR={f['STR']}, "
                f"REP={f['REP']}, PORT={f['PORT']:#x}")  # fmt: skip

    return record_question(f"EXITINFO1 = {value:#x}", expected,
                           lambda: EXITINFO1.decode(value), worked, HINTS_SVM)  # fmt: skip


def practice_02(seed: int = 1, n: int = 5, invalid: float = 0.2) -> Practice:
    """``n`` EXITINFO1 values to decode; about ``invalid`` of them break a rule.
    The same ``seed`` always gives the same questions."""
    return decode_practice("practice_02", "Practice 02: decode EXITINFO1", seed, n, invalid,
                           random_svm_access, _corrupt_svm, _svm_question,
                           lambda v: SvmIoExit(v, 1, 0).access(), HOW,
                           HINTS_SVM["invalid"])  # fmt: skip
