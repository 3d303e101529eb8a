"""Chapter 03, VMX exit qualification: exercises and seeded decoding practice.

Facts (IO_EXITS.md §2, Intel SDM Vol. 3C "Exit Qualification for I/O Instructions"): bits 2:0
size − 1 (0, 1, 3), bit 3 direction (1 = IN), bit 4 string, bit 5 REP, bit 6 operand encoding
(1 = immediate), bits 15:7 and 63:32 reserved, bits 31:16 port; the instruction length is a
separate VMCS field.
"""

from __future__ import annotations

import random

from ..errors import ExitInfoError
from ..exits import VmxIoExit
from ..fields import EXIT_QUALIFICATION, EXITINFO1
from .ch02 import PORTS
from .common import (
    Ask,
    Practice,
    Question,
    Verdict,
    as_choice,
    as_int,
    decode_practice,
    exercise,
    parse_instruction,
    record_question,
    right,
    wrong,
)

# -- 03.1: decode a real sample ------------------------------------------------------------


_SOLUTION_03_1 = """
0x5658000B, field by field (SDM Vol. 3C, "Exit Qualification for I/O Instructions"):
  bits 2:0   = 0b011   size − 1 = 3, so 4 bytes: EAX
  bit 3      = 1       IN
  bit 4      = 0       not a string instruction
  bit 5      = 0       no REP
  bit 6      = 0       port in DX (not an immediate)
  bits 31:16 = 0x5658  the port: VMware's backdoor port ('VX')

So the guest ran `in eax, dx` with DX = 0x5658. (It could not have been an immediate anyway:
an imm8 port is at most 0xFF.)
"""


@exercise(
    "03_1",
    "A VMX guest exits with qualification 0x5658000B. Which instruction did it run? "
    "Write it in Intel syntax, e.g. 'out dx, al'.",
    _SOLUTION_03_1,
    hint="Split 0xB into bits: 0b1011. Bits 2:0 are size − 1, bit 3 is the direction.",
    ask=[Ask("instruction", placeholder="e.g. out dx, al")],
)
def ex_03_1(answer) -> Verdict:
    got = parse_instruction(answer)
    if got.string:
        return wrong("Bit 4 (string) is 0: this is IN or OUT, not INS/OUTS.")
    if not got.is_in:
        return wrong("Bit 3 is 1, and in the VMX qualification 1 means IN (IO_EXITS.md §7.2: "
                     "polarity differs between interfaces).")
    if got.size != 4:
        return wrong(f"Bits 2:0 hold 0b011 = 3, and the field is size − 1: 4 bytes (EAX), not "
                     f"{got.size}. (Bareflank once read it as a byte count: IO_EXITS.md §7.1.)")
    if got.immediate:
        return wrong("Bit 6 (operand encoding) is 0: the port came from DX. And 0x5658 does not "
                     "fit an imm8.")
    return right("`in eax, dx` with DX = 0x5658, the VMware backdoor.")


# -- 03.2: encode out 0x80, al ---------------------------------------------------------------

OUT_80_AL = (0x80 << 16) | (1 << 6)  # port 0x80, immediate, OUT, size − 1 = 0

_SOLUTION_03_2 = """
`out 0x80, al` writes one byte to the POST port, the port given as an immediate byte:
  bits 2:0   = 0     size − 1 (1 byte)                0x00000000
  bit 3      = 0     OUT                              0x00000000
  bits 4, 5  = 0     not string, no REP
  bit 6      = 1     operand encoding: immediate      0x00000040
  bits 31:16 = 0x80  port                             0x00800000
                                                      ----------
  exit qualification                                  0x00800040

In code: EXIT_QUALIFICATION.encode(size=0, direction=0, **{"operand encoding": 1},
port=0x80) == 0x00800040.
"""


@exercise(
    "03_2",
    "Encode `out 0x80, al` as a VMX exit qualification.",
    _SOLUTION_03_2,
    hint="Five fields matter: size − 1, direction, operand encoding, and the port in 31:16.",
    ask=[Ask("qualification", placeholder="e.g. 0x12340000")],
)
def ex_03_2(answer) -> Verdict:
    value = as_int(answer, "The exit qualification")
    if value == OUT_80_AL:
        return right("size − 1 = 0, OUT, immediate, port 0x80: 0x00800040.")
    if value >> 16 == 0 and value & 0xFF80:
        return wrong("The port goes in bits 31:16 (0x80 << 16); bits 15:7 are reserved.")
    try:
        f = EXIT_QUALIFICATION.decode(value)
    except ExitInfoError as e:
        if _is_svm_out_80(value):
            return wrong("That is SVM's EXITINFO1 layout (TYPE, one-hot SZ, A). The VMX "
                         f"qualification is a different table. ({e})")
        return wrong(f"The decoder refuses it: {e}.")
    if f["port"] != 0x80:
        return wrong("The port goes in bits 31:16: 0x80 << 16.")
    if f["direction"]:
        return wrong("Bit 3 = 1 means IN; OUT is 0.")
    if f["size"] != 0:
        return wrong("Bits 2:0 hold size − 1: a 1-byte access (AL) is 0, not 1.")
    if f["string"] or f["REP"]:
        return wrong("`out 0x80, al` is not a string instruction: bits 4 and 5 are 0.")
    if not f["operand encoding"]:
        return wrong("The port is written in the instruction (an imm8), not taken from DX: set "
                     "operand encoding, bit 6.")
    return wrong(f"Compare your value {value:#x} with the table bit by bit.")


def _is_svm_out_80(value: int) -> bool:
    """Whether ``value`` is SVM's EXITINFO1 for an OUT to port 0x80."""
    try:
        f = EXITINFO1.decode(value)
    except ExitInfoError:
        return False
    return f["PORT"] == 0x80 and not f["TYPE"]


# -- 03.3: why size encoding 2 never appears ------------------------------------------------------

CHOICES_03_3 = {
    "a": "2 would mean a 3-byte access (the field holds size − 1), and IN/OUT move 1, 2 or 4 bytes",
    "b": "2 is reserved for string instructions, which report their size elsewhere",
    "c": "bit 1 is a reserved bit, like bit 1 of SVM's EXITINFO1",
    "d": "2 means 2 bytes, and 16-bit I/O is encoded as 1 instead",
}

_SOLUTION_03_3 = """
(a). Bits 2:0 are one number, the access size minus one (SDM; IO_EXITS.md §2): 0 = 1 byte,
1 = 2 bytes, 3 = 4 bytes. An encoding of 2 would be a 3-byte access, and no I/O instruction
moves 3 bytes, so the CPU never writes it (nor 4–7). The seed computes
`bytes = (exit_qualification & 0x07) + 1`, which would quietly turn a 2 into 3 bytes: our
decoder refuses it instead.

(b) is wrong: INS/OUTS use the same field. (c) is wrong: bit 1 is part of the number; 3 = 0b011
sets it. (d) is wrong: 1 *is* the 2-byte encoding, because the field holds size − 1.
"""


@exercise(
    "03_3",
    "Why can the size encoding 2 never appear in bits 2:0 of the exit qualification? "
    "Pick 'a', 'b', 'c' or 'd' from CHOICES_03_3.",
    _SOLUTION_03_3,
    hint="What size − 1 = 2 would mean in bytes, and does any IN/OUT move that many?",
    ask=[Ask("why", {k: f"({k}) {v}" for k, v in CHOICES_03_3.items()})],
)
def ex_03_3(answer) -> Verdict:
    choice = as_choice(answer, CHOICES_03_3, "CHOICES_03_3")
    if choice == "a":
        return right("size − 1 = 2 is 3 bytes, which no I/O instruction moves.")
    if choice == "b":
        return wrong("INS/OUTS report their size in the same bits 2:0 as IN/OUT.")
    if choice == "c":
        return wrong("Bits 2:0 are one number, not flags: 4-byte accesses are 0b011, which sets "
                     "bit 1.")
    return wrong("1 is the 2-byte encoding because the field holds size − 1. What would 2 be?")


# -- 03.4: translate an SVM sample to VMX ----------------------------------------------------------

PCI_ADDRESS_SVM = 0xCF80140  # out dx, eax to 0xCF8 (IO_EXITS sample, EXITINFO2 = RIP + 1)

_SOLUTION_03_4 = """
SVM: EXITINFO1 = 0x0CF80140 → TYPE = 0 (OUT), SZ32 (4 bytes), A32, PORT 0xCF8; EXITINFO2 − RIP
= 1. That is `out dx, eax` (one byte: EF), the PCI configuration address port.

VMX reports the same access as:
  bits 2:0 = 3 (size − 1 = 4 − 1), bit 3 = 0 (OUT), bits 4, 5 = 0, port 0xCF8 in 31:16;
  bit 6 (operand encoding): SVM does not say, but 0xCF8 > 0xFF cannot be an imm8, so DX: 0.
  → exit qualification 0x0CF80003, VM-exit instruction length 1 (the same instruction).

What did not survive the trip: the address size (A32). VMX has none for IN/OUT; it reports one
only for INS/OUTS, in the instruction-information field.

In code: SvmIoExit(0xCF80140, rip + 1, rip).to_vmx(immediate=False).
"""


@exercise(
    "03_4",
    "An SVM guest exits with EXITINFO1 = 0xCF80140 and EXITINFO2 = RIP + 1. What would VMX "
    "report for the same instruction? Answer (exit qualification, instruction length).",
    _SOLUTION_03_4,
    hint="Decode the SVM value first (chapter 02 has the SVM table), then encode it for VMX.",
    ask=[Ask("qualification", placeholder="e.g. 0x12340000"),
         Ask("length", placeholder="bytes")],
)
def ex_03_4(qualification, length) -> Verdict:
    value = as_int(qualification, "The exit qualification")
    n = as_int(length, "The instruction length")
    if value == PCI_ADDRESS_SVM:
        return wrong("That is the SVM value itself: re-encode the access in the VMX table.")
    try:
        f = EXIT_QUALIFICATION.decode(value)
    except ExitInfoError as e:
        return wrong(f"The decoder refuses it: {e}.")
    if f["port"] != 0xCF8:
        return wrong("The port (0xCF8) goes in bits 31:16.")
    if f["direction"]:
        return wrong("TYPE = 0 in EXITINFO1 is OUT, and VMX writes OUT as bit 3 = 0.")
    if f["size"] != 3:
        return wrong("SZ32 is 4 bytes, and VMX stores size − 1 in bits 2:0: 3.")
    if f["string"] or f["REP"]:
        return wrong("STR and REP are 0 in the SVM value, so bits 4 and 5 are 0.")
    if f["operand encoding"]:
        return wrong("SVM does not say DX or imm8, but 0xCF8 > 0xFF cannot be an imm8: DX, "
                     "bit 6 = 0.")
    if n != 1:
        return wrong("Same instruction, same length: EXITINFO2 − RIP = 1.")
    return right("0x0CF80003, length 1: `out dx, eax`. The A32 address size has no place in it.")


# -- seeded practice: decode N exit qualifications ----------------------------------------------

HINTS_VMX = {
    "direction": "Direction: bit 3, 1 = IN and 0 = OUT.",
    "size": "Size: bits 2:0 hold size − 1: 0 → 1 byte, 1 → 2 bytes, 3 → 4 bytes.",
    "string": "String: bit 4 (INS/OUTS).",
    "rep": "REP is bit 5.",
    "port": "Port: bits 31:16, (value >> 16) & 0xFFFF.",
    "invalid": "Check the rules before decoding: bits 15:7 and 63:32 are reserved, bits 2:0 "
               "may only be 0, 1 or 3, and a string access takes its port from DX (bit 6 = 0).",
    "valid": "Every field here is legal: reserved bits clear, size 0/1/3, no string access with "
             "an immediate. Decode it.",
}

HOW = ("Decode each exit qualification. Answer like 'IN 8-bit port 0x60' or 'rep INS 16-bit "
       "port 0x1f0' (as str(IoAccess) prints), or 'invalid size' naming the bad field.\n"
       "p.check(1, 'IN 8-bit port 0x60') marks one answer; p.reveal(1) shows one worked answer.")


def random_vmx_qualification(rng: random.Random) -> int:
    string = rng.random() < 0.25
    port = rng.choice(PORTS) if rng.random() < 0.8 else rng.randrange(0x10000)
    immediate = not string and port <= 0xFF and rng.random() < 0.6
    return EXIT_QUALIFICATION.encode(
        size=rng.choice((0, 1, 3)),
        direction=rng.randint(0, 1),
        string=int(string),
        REP=int(string and rng.random() < 0.6),
        **{"operand encoding": int(immediate)},
        port=port,
    )


def _corrupt_vmx(value: int, rng: random.Random) -> tuple[int, str]:
    kind = rng.choice(("size", "reserved", "operand encoding"))
    if kind == "size":
        return (value & ~0x7) | rng.choice((2, 4, 5, 6, 7)), "size"
    if kind == "reserved":
        return value | (1 << rng.choice((7, 8, 12, 15, 32, 47, 63))), "reserved"
    return value | 0x50, "operand encoding"  # string with an immediate port


def _vmx_question(value: int, expected) -> Question:
    def worked() -> str:
        f = EXIT_QUALIFICATION.decode(value)
        return (f"size − 1 = {f['size']} ({f['size'] + 1} byte{'s' if f['size'] else ''}), "
                f"direction={f['direction']} ({'IN' if f['direction'] else 'OUT'}), "
                f"string={f['string']}, REP={f['REP']}, "
                f"operand encoding={f['operand encoding']} "
                f"({'imm8' if f['operand encoding'] else 'DX'}), port={f['port']:#x}")  # fmt: skip

    return record_question(f"exit qualification = {value:#x}", expected,
                           lambda: VmxIoExit(value, 1, 0).access(), worked,
                           HINTS_VMX)  # fmt: skip


def practice_03(seed: int = 1, n: int = 5, invalid: float = 0.2) -> Practice:
    """``n`` exit qualifications to decode; about ``invalid`` of them break a rule.
    The same ``seed`` always gives the same questions."""
    return decode_practice("practice_03", "Practice 03: decode the VMX exit qualification", seed,
                           n, invalid, random_vmx_qualification, _corrupt_vmx, _vmx_question,
                           lambda v: VmxIoExit(v, 1, 0).access(), HOW,
                           HINTS_VMX["invalid"])  # fmt: skip
