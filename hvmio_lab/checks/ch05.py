"""Chapter 05, the fast path: exercises and seeded practice on what it does to RAX.

Facts (IO_EXITS.md §1–§3): a non-string exit (SVM EXITINFO1 STR, bit 2, clear; VMX exit
qualification bit 4 clear) is handled from the record; a string one goes to the emulator.
Where the device lives decides whether a device-model round trip follows, not which path
decodes the exit. A 4-byte IN writes EAX and clears RAX[63:32]; 1- and 2-byte INs merge into
AL/AX (SDM Vol. 1 §3.4.1.1). An OUT sends only the low ``size`` bytes of RAX (IO_EXITS.md §7.3).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from ..compare import Comparison, both_paths
from ..exits import IoAccess, SvmIoExit, VmxIoExit
from ..machine import merge_gpr
from .common import (
    AnswerError,
    Ask,
    Practice,
    Question,
    Verdict,
    as_choice,
    as_int,
    as_word,
    exercise,
    right,
    wrong,
)

RIP = 0x1000

# -- 05.1: classify exits as fast path or emulator --------------------------------------------


def _svm(access: IoAccess, length: int) -> SvmIoExit:
    return SvmIoExit.from_access(access, RIP, RIP + length)


def _vmx(access: IoAccess, length: int, immediate: bool = False) -> VmxIoExit:
    return VmxIoExit.from_access(access, RIP, length, immediate)


# (record, what it is, the right path, the hint for a learner who gets this one wrong)
_EXITS = (
    (_svm(IoAccess(0x1F48, 4, True, address_size=64), 1), "in eax, dx (PM timer)", "fast",
     "Exit 1: STR (EXITINFO1 bit 2, 0x4) is clear, so the record has all it takes."),
    (_vmx(IoAccess(0x60, 1, True, immediate=True), 2, True), "in al, 0x60", "fast",
     "Exit 2: bit 4 (string) is clear. Bit 6 only says the port came from an imm8; the port "
     "is in bits 31:16 either way, so the record is complete."),
    (_svm(IoAccess(0x1F0, 2, True, True, True, 64, "ES"), 3), "rep insw (ATA data port)",
     "emulate", "Exit 3: STR (EXITINFO1 bit 2, 0x4) is set: INS writes guest memory at ES:RDI, "
                "which the record does not describe, so the emulator runs."),
    (_vmx(IoAccess(0x3F8, 1, False, True, False, 64, "DS"), 1), "outsb, no REP",
     "emulate", "Exit 4: bit 4 (string, 0x10) is set. It is STR that sends an exit to the "
                "emulator, not REP: even one OUTSB reads its byte from guest memory at DS:RSI."),
    (_vmx(IoAccess(0x3F8, 1, False), 1), "out dx, al (the UART, in the device model)", "fast",
     "Exit 5: the record (bit 4 clear) is complete, so the fast path takes it. That the UART "
     "lives in the device model only means a request and a completion follow; it does not "
     "choose the path."),
    (_svm(IoAccess(0x80, 1, False, address_size=32), 2), "out 0x80, al (32-bit guest)", "fast",
     "Exit 6: STR (bit 2) is clear. The guest's mode only changes the A bits (A32 here)."),
)

EXITS_05_1 = tuple(record for record, *_ in _EXITS)
_PATHS_05_1 = tuple(path for _, _, path, _ in _EXITS)


def describe_exits_05_1() -> str:
    """The records of exercise 05.1, numbered, as the hardware hands them over."""
    lines = []
    for i, record in enumerate(EXITS_05_1, 1):
        if isinstance(record, SvmIoExit):
            text = f"SVM  EXITINFO1 = {record.exitinfo1:#010x}, EXITINFO2 − RIP = "
            text += str(record.instruction_length)
        else:
            text = f"VMX  exit qualification = {record.qualification:#010x}, length "
            text += str(record.instruction_length)
        lines.append(f"Exit {i}: {text}")
    return "\n".join(lines)


_SOLUTION_05_1 = """
The fast path asks one question of the record: is it string I/O? SVM says so in EXITINFO1
bit 2 (STR), VMX in bit 4 of the exit qualification (IO_EXITS.md §1, §2).

  1  SVM 0x1F480241  STR = 0                      in eax, dx (PM timer 0x1F48)   fast
  2  VMX 0x00600048  bit 4 = 0 (bit 6 = imm8)     in al, 0x60                    fast
  3  SVM 0x01F0022D  STR = 1, REP = 1, SZ16       rep insw from 0x1F0            emulate
  4  VMX 0x03F80010  bit 4 = 1, REP = 0           outsb to 0x3F8                 emulate
  5  VMX 0x03F80000  bit 4 = 0                    out dx, al to the UART         fast
  6  SVM 0x00800110  STR = 0, A32                 out 0x80, al                   fast

Answer: ["fast", "fast", "emulate", "emulate", "fast", "fast"]

Exit 4 has no REP and still needs the emulator: a single OUTSB reads guest memory. Exit 5
goes to a device in the device model: the *decode* is still the fast path's; the round trip
that follows is the same whichever path decoded the exit.
"""

_FAST = {"fast", "fast path", "fastpath", "record", "exit record", "f"}
_EMULATE = {"emulate", "emulator", "emulation", "emulated", "slow", "slow path", "e",
            "the emulator"}  # fmt: skip


def _path_word(answer: Any, i: int) -> str:
    word = as_word(answer, f"exit {i}")
    if word in _FAST:
        return "fast"
    if word in _EMULATE:
        return "emulate"
    raise AnswerError(f"Answer each exit with 'fast' or 'emulate'; exit {i} got {answer!r}.")


@exercise(
    "05_1",
    "Six exit records are listed by describe_exits_05_1(). For each, say which path handles "
    "it: answer a list of six words, each 'fast' or 'emulate'.",
    _SOLUTION_05_1,
    hint="Look at one bit per record: STR (bit 2) for SVM, the string bit (bit 4) for VMX.",
    ask=[Ask("exit", {"fast": "fast path", "emulate": "emulator"}, count=len(_EXITS))],
    given=describe_exits_05_1,
    prompt="Which path handles each of the six exit records below: the fast path or the "
           "emulator?",
)
def ex_05_1(answer) -> Verdict:
    if isinstance(answer, str) or not isinstance(answer, Sequence):
        raise AnswerError("Answer a list of six words, e.g. ['fast', 'emulate', …].")
    if len(answer) != len(_EXITS):
        raise AnswerError(f"There are {len(_EXITS)} exits; your list has {len(answer)} answers.")
    got = [_path_word(a, i) for i, a in enumerate(answer, 1)]
    wrong_ones = [i for i, (g, want) in enumerate(zip(got, _PATHS_05_1, strict=True)) if g != want]
    if not wrong_ones:
        return right("Only the string exits (3 and 4) need the emulator; where the device lives "
                     "does not matter.")
    return wrong(" ".join(_EXITS[i][3] for i in wrong_ones))


# -- 05.2: RAX after a 32-bit IN in a 64-bit guest ----------------------------------------------

RAX_05_2 = 0xDEAD_BEEF_CAFE_F00D
DATA_05_2 = 0x1234_5678

_SOLUTION_05_2 = """
`in eax, dx` writes a 32-bit register, and in 64-bit mode a 32-bit register write clears
bits 63:32 of the full register (SDM Vol. 1 §3.4.1.1; IO_EXITS.md §3):

    RAX before        0xDEADBEEF_CAFEF00D
    device answers             0x12345678
    RAX after         0x00000000_12345678   = 0x12345678

Only 1- and 2-byte INs merge:  `in ax, dx` would give 0xDEADBEEF_CAFE5678 and `in al, dx`
0xDEADBEEF_CAFEF078. The 2010 patch copied 4 bytes into RAX with memcpy and so left bits 63:32
alone (0xDEADBEEF_12345678); Xen fixed that in 2013 (chapter 07). KVM does it right by
starting from `size < 4 ? rax : 0`.
"""


@exercise(
    "05_2",
    f"A 64-bit guest runs `in eax, dx` with RAX = {RAX_05_2:#x}; the device answers "
    f"{DATA_05_2:#x}. What must RAX hold when the fast path resumes the guest?",
    _SOLUTION_05_2,
    hint="Is EAX a 32-bit register write or an 8/16-bit one? They treat bits 63:32 differently.",
    ask=[Ask("RAX", placeholder="e.g. 0x1234")],
)
def ex_05_2(answer) -> Verdict:
    value = as_int(answer, "RAX")
    expected = merge_gpr(RAX_05_2, DATA_05_2, 4)
    if value == expected:
        return right("A 32-bit write zero-extends: RAX[63:32] = 0.")
    if value == (RAX_05_2 & ~0xFFFF_FFFF) | DATA_05_2:
        return wrong("That keeps RAX[63:32] = 0xDEADBEEF, as the 2010 patch's 4-byte memcpy did. "
                     "A 32-bit register write clears bits 63:32 (SDM Vol. 1 §3.4.1.1); only "
                     "8- and 16-bit writes merge.")
    if value in (merge_gpr(RAX_05_2, DATA_05_2, 2), merge_gpr(RAX_05_2, DATA_05_2, 1)):
        return wrong("That merges only AL or AX. `in eax, dx` moves 4 bytes into EAX.")
    if value == DATA_05_2 | (0xFFFF_FFFF << 32):
        return wrong("Nothing sign-extends here: the upper half becomes 0, not a copy of bit 31.")
    if value == DATA_05_2 << 32 or value == (DATA_05_2 << 32) | (RAX_05_2 & 0xFFFF_FFFF):
        return wrong("The data lands in the low 32 bits (EAX), not in bits 63:32.")
    if value == RAX_05_2:
        return wrong("An IN writes the device's answer into EAX: RAX cannot stay as it was.")
    return wrong("Write the 4 bytes of data into EAX, then decide what happens to bits 63:32.")


# -- 05.3: what the fast path saves on a device-model access ------------------------------------

CHOICES_05_3 = {
    "a": "the VM exit and the VM entry",
    "b": "fetching and decoding the instruction bytes at CS:RIP",
    "c": "the request to the device model and the wait for its answer",
    "d": "writing the result into RAX and advancing RIP",
}

_SOLUTION_05_3 = """
(b). The fast path replaces fetch + decode with reading the exit record; everything else an
exit costs is still there (IO_EXITS.md §1, §3):

  (a) the exit and the entry are the hardware's, and happen on both paths;
  (c) an access to a device in the device model (qemu-dm's IDE disk in Xen, userspace in KVM)
      still goes out as a request and completes later, on both paths;
  (d) someone must still write RAX and move RIP: the fast path does it at completion.

That is why the seed measured 66 % of the intercept time on a port-hammering loop but only a
4–5 % gain reading a file from the emulated IDE disk: for a device-model access, the round trip
is most of the cost, and the shortcut does not touch it. (In the 2010 patch it was worse: a
device-model IN re-ran the emulator at completion, chapter 07.) Chapter 06 puts numbers on this.
"""


@exercise(
    "05_3",
    "A guest reads the IDE disk's status port; the disk lives in the device model. Compared "
    "with the emulator, what does the fast path save? Pick 'a', 'b', 'c' or 'd' from "
    "CHOICES_05_3.",
    _SOLUTION_05_3,
    hint="Go through one exit stage by stage: which stage is missing from the fast path's "
         "outcome in this chapter?",
    ask=[Ask("saved", {k: f"({k}) {v}" for k, v in CHOICES_05_3.items()})],
)
def ex_05_3(answer) -> Verdict:
    choice = as_choice(answer, CHOICES_05_3, "CHOICES_05_3")
    if choice == "b":
        return right("Only fetch + decode; the exit, the round trip and the writeback remain.")
    if choice == "a":
        return wrong("The exit and the entry are done by the CPU before any handler runs, "
                     "whichever path the hypervisor then takes.")
    if choice == "c":
        return wrong("The device model still has to do the access: the fast path sends the same "
                     "request and waits for the same completion. This is why the seed's IDE "
                     "gain was only 4–5 %.")
    return wrong("The result still has to reach RAX and RIP must still move: the fast path does "
                 "both, at completion.")


# -- seeded practice: RAX after IN, the value an OUT sends ---------------------------------------

_REG = {1: "al", 2: "ax", 4: "eax"}

HOW = ("A 64-bit guest, one exit each. For an IN, answer RAX after the fast path; for an OUT, "
       "the value the device receives. Answer with a number, e.g. 0xff.\n"
       "practice.check(1, 0xff) marks one answer; practice.reveal(1) shows one"
       " worked answer.")


def _rax(rng: random.Random) -> int:
    return rng.choice((
        rng.getrandbits(64),
        0xDEAD_BEEF_0000_0000 | rng.getrandbits(32),
        0xFFFF_FFFF_FFFF_FFFF,
        rng.getrandbits(16) << 48 | rng.getrandbits(16),
    ))  # fmt: skip


def _an(size: int) -> str:
    return "an 8-bit" if size == 1 else f"a {8 * size}-bit"


def _in_question(size: int, rax: int, data: int) -> Question:
    expected = merge_gpr(rax, data, size)
    merged = (rax & ~((1 << 8 * size) - 1)) | data
    instruction = f"in {_REG[size]}, dx"
    prompt = (f"{instruction:<12} RAX = {rax:#018x}, "
              f"the device answers {data:#0{2 + 2 * size}x}")
    if size == 4:
        worked = "a 32-bit write zero-extends: RAX[63:32] = 0"
    else:
        worked = f"{_an(size)} write merges: RAX keeps bits 63:{8 * size}"

    def judge(answer) -> Verdict:
        value = as_int(answer, "RAX")
        if value == expected:
            return right(f"{expected:#x}")
        if size == 4 and value == merged:
            return wrong("That keeps RAX[63:32], the 2010 bug: a 32-bit write clears them.")
        if size < 4 and value == data:
            return wrong(f"Only 32-bit writes zero-extend; {_an(size)} IN leaves the rest of "
                         "RAX alone.")
        return wrong(f"Put the {size}-byte answer in {_REG[size].upper()}, then ask what a "
                     f"{8 * size}-bit write does to the rest of RAX.")

    return Question(prompt, f"{expected:#x}", worked, judge)


def _out_question(size: int, rax: int) -> Question:
    expected = rax & ((1 << 8 * size) - 1)
    prompt = f"{'out dx, ' + _REG[size]:<12} RAX = {rax:#018x}"
    worked = f"only the low {size} byte{'s' if size > 1 else ''} of RAX leave the CPU"

    def judge(answer) -> Verdict:
        value = as_int(answer, "The value")
        if value == expected:
            return right(f"{expected:#x}")
        if value in (rax, rax & 0xFFFF_FFFF) and value != expected:
            return wrong(f"The device sees only {_REG[size].upper()}: the low {size} byte(s). "
                         "Sending more garbles it (Hyperlight's outb bug, IO_EXITS.md §7.3).")
        return wrong(f"Take the low {8 * size} bits of RAX.")

    return Question(prompt, f"{expected:#x}", worked, judge)


def practice_05(seed: int = 1, n: int = 5) -> Practice:
    """``n`` IN/OUT exits in a 64-bit guest: RAX after each IN, the data of each OUT.
    The same ``seed`` always gives the same questions."""
    if not 1 <= n <= 100:
        raise AnswerError(f"n must be 1..100, got {n}")
    rng = random.Random(f"practice_05/{seed}")
    questions = []
    for _ in range(n):
        size = rng.choice((1, 2, 4, 4))
        rax = _rax(rng)
        if rng.random() < 0.7:
            questions.append(_in_question(size, rax, rng.getrandbits(8 * size)))
        else:
            questions.append(_out_question(size, rax))
    return Practice("Practice 05: what the fast path does to RAX", seed, questions, HOW,
                    hint_text="Which register does the instruction name (AL, AX, EAX), and what "
                    "does a write of that width do to the rest of RAX? An OUT sends only that "
                    "register's bytes.")


# -- the chapter's explorer: one exit down two paths (compare.both_paths does the work) ---------


def one_ms_later(machine) -> None:
    """Let the PM timer count for 1 ms of guest time, so that a read returns a fresh value."""
    machine.clock.advance(1_000_000)


def _string_source(machine) -> None:
    machine.memory.write(0x8000, b"ok")


# label → both_paths arguments: the code at RIP and the registers it needs.
INSTRUCTIONS_05 = {
    "in eax, dx (PM timer 0x1F48)": {"code": b"\xed", "rax": 0xDEAD_BEEF_0000_0000,
                                     "rdx": 0x1F48, "setup": one_ms_later},
    "in al, dx (UART LSR 0x3FD)": {"code": b"\xec", "rax": 0xDEAD_BEEF_0000_0000, "rdx": 0x3FD},
    "in al, dx (ATA status 0x1F7)": {"code": b"\xec", "rdx": 0x1F7},
    "out 0x80, al (POST)": {"code": b"\xe6\x80", "rax": 0xAA},
    "out dx, al (UART THR 0x3F8)": {"code": b"\xee", "rax": 0x41, "rdx": 0x3F8},
    "rep outsb (UART THR 0x3F8)": {"code": b"\xf3\x6e", "rdx": 0x3F8, "rcx": 2, "rsi": 0x8000,
                                   "setup": _string_source},
}  # fmt: skip
PATH_PAIRS_05 = (("fast", "emulate"), ("seed2010", "emulate"), ("seed2010", "fast"))


def run_05(instruction: str, vendor: str = "svm",
           paths: tuple[str, str] = ("fast", "emulate")) -> Comparison:  # fmt: skip
    """One of ``INSTRUCTIONS_05`` down both ``paths`` on twin machines."""
    args = dict(INSTRUCTIONS_05[instruction])
    return both_paths(args.pop("code"), vendor=vendor, paths=paths, **args)
