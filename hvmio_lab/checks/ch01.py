"""Chapter 01, the I/O exit: exercises and seeded exit-count practice.

Facts: every IN/OUT of ``uart_hello`` exits (the ports are set in the I/O intercept bitmaps:
VMX bitmap A for 0x0000–0x7FFF, bitmap B for 0x8000–0xFFFF, SDM 24.6.4; the SVM IOPM); the
CPU stops before the instruction and the hypervisor advances RIP to EXITINFO2 (SVM) or by the
VM-exit instruction length (VMX) once the access has completed (IO_EXITS.md §2, §3, §7 item 10).
The program's shape (data/guests/uart_hello.asm): per character one LSR poll and one THR
write, then one POST write, so 2 · len(message) + 1 exits with a transmitter that is always
empty.
"""

from __future__ import annotations

import random
from functools import cache
from typing import Any, NamedTuple

from ..guest import load_program
from .common import (
    ROLE_OPTIONS,
    AnswerError,
    Ask,
    Practice,
    Question,
    Verdict,
    as_int,
    as_role,
    as_word,
    exercise,
    right,
    wrong,
)


class Hello(NamedTuple):
    """What exercises 01.1 and 01.2 quote from the uart_hello program."""

    message: str
    exits: int  # 2 · len(message) + 1
    out_rip: int  # the POST write, which the chapter never steps to
    out_bytes: str
    next_rip: int


@cache
def hello() -> Hello:
    """Read from the guest program when first needed (not on import: it disassembles)."""
    program = load_program("uart_hello")
    message = program.params["message"]
    listing = program.listing()
    at = next(i for i, (_, _, text) in enumerate(listing) if text == "out 0x80, al")
    out_rip, out_bytes, _ = listing[at]
    return Hello(message, 2 * len(message) + 1, out_rip, out_bytes, listing[at + 1][0])


# -- 01.1: how many exits does uart_hello take? -------------------------------------------------

def _solution_01_1() -> str:
    h = hello()
    return f"""
{h.exits} exits = 2 × {len(h.message)} + 1.

The message {h.message!r} has {len(h.message)} characters (the newline counts; the terminating zero
byte is never sent: `test al, al; jz done`). For each character the program
  - polls the Line Status Register: `in al, dx` with DX = 0x3FD, one exit, and the model's
    transmitter is always empty, so THRE is set on the first poll;
  - writes the character to the Transmit Holding Register: `out dx, al` with DX = 0x3F8,
    one exit.
Then it reports success with `out 0x80, al` (POST code 0xAA): one more exit. HLT stops the
guest; it is not an I/O instruction. Every IN and OUT exits because the hypervisor set the
ports' bits in the I/O intercept bitmaps (VMX bitmaps A/B, SVM IOPM).
"""


@exercise(
    "01_1",
    lambda: (f"How many VM exits does uart_hello take to print its {len(hello().message)}-"
             f"character message {hello().message!r} and report success? Answer with a "
             "number."),
    _solution_01_1,
    hint="Count the I/O instructions the program runs per character, then what comes after "
    "the last character.",
    ask=[Ask("exits", placeholder="a number")],
)
def ex_01_1(answer) -> Verdict:
    n, exits = len(hello().message), hello().exits
    count = as_int(answer, "the exit count")
    if count == exits:
        return right(f"One LSR poll and one THR write per character, then the POST code: "
                     f"2 × {n} + 1.")  # fmt: skip
    if count == n:
        return wrong("That counts the THR writes only. Before each character the program "
                     "polls the LSR with `in al, dx`, and that IN exits too: the CPU cannot "
                     "read the device itself.")  # fmt: skip
    if count == n + 1:
        return wrong("One exit per character plus the POST code leaves out the LSR polls: "
                     "each character costs an IN (the poll) and an OUT (the write).")  # fmt: skip
    if count == 2 * n:
        return wrong("That covers the poll and the write of every character. What does the "
                     "program do after the last one? Look for port 0x80.")  # fmt: skip
    if count in (2 * (n - 1) + 1, 2 * (n - 1)):
        return wrong(f"The message has {n} characters: the newline at the end is one too.")
    if count == exits + 1:
        return wrong("One too many. HLT stops the guest, but it is not an I/O instruction (only "
                     "IN, OUT, INS and OUTS cause I/O exits), and the terminating zero byte is "
                     "never sent.")  # fmt: skip
    if count in (2 * (n + 1) + 1, 2 * (n + 1)):
        return wrong("The terminating zero byte is never sent: `test al, al; jz done` leaves "
                     "the loop before any poll for it.")  # fmt: skip
    if count > exits:
        return wrong("The model's transmitter is always empty (LSR reads 0x60, THRE set), so "
                     "the first poll for each character already succeeds.")  # fmt: skip
    return wrong("Count the I/O instructions run per character (look for `in` and `out` in "
                 "the listing), then add what runs after the loop.")  # fmt: skip


# -- 01.2: RIP after an `out dx, al` exit -------------------------------------------------------

def _solution_01_2() -> str:
    h = hello()
    return f"""
{h.next_rip:#x} = {h.out_rip:#x} + 2.

`out 0x80, al` is two bytes ({h.out_bytes}): the opcode E6 and the port as an immediate byte.
At the exit RIP still points at the OUT: the CPU stopped before executing it. The hardware
reports where the next instruction starts:
  SVM: EXITINFO2 = {h.next_rip:#x} (the next RIP; length = EXITINFO2 − RIP = 2);
  VMX: VM-exit instruction length = 2, so next RIP = RIP + 2.
Once the POST port has the byte, the hypervisor sets RIP to that value and re-enters the guest,
which runs the `hlt` at {h.next_rip:#x} itself. RIP does not move on by itself: a
hypervisor that forgets to advance it makes the guest execute the OUT again, and exit again.
"""


@exercise(
    "01_2",
    lambda: (f"uart_hello reports success with `out 0x80, al` at RIP {hello().out_rip:#x} (its "
             f"bytes: {hello().out_bytes}). After the hypervisor has handled its exit, at which "
             "RIP does the guest resume?"),
    _solution_01_2,
    hint="Where does the next instruction start? The exit record says so (EXITINFO2, or the "
    "instruction length). Count the OUT's bytes.",
    ask=[Ask("RIP", placeholder="e.g. 0x7c00")],
)
def ex_01_2(answer) -> Verdict:
    h = hello()
    rip = as_int(answer, "the RIP")
    if rip == h.next_rip:
        return right("The hypervisor advanced RIP by the instruction's length, 2 bytes: "
                     "EXITINFO2 on SVM, the VM-exit instruction length on VMX.")  # fmt: skip
    if rip == h.out_rip:
        return wrong("That is where the guest exited. RIP does not move on by itself after an "
                     "exit: the hypervisor advances it (to EXITINFO2 on SVM, by the "
                     "instruction length on VMX). Left where it is, the guest would run the OUT "
                     "again, and exit again.")  # fmt: skip
    if rip == h.out_rip + 1:
        return wrong(f"`out dx, al` is one byte, but this OUT names its port in an immediate "
                     f"byte: {h.out_bytes} is two bytes long.")  # fmt: skip
    return wrong(f"The guest resumes at the first byte after the OUT: {h.out_rip:#x} plus the "
                 "OUT's length in bytes.")  # fmt: skip


# -- 01.3: which VMX I/O bitmap? ----------------------------------------------------------------

PORT_01_3 = 0xB008  # the PM timer port propolis traced (IO_EXITS.md §7 item 12)

_SOLUTION_01_3 = f"""
Bitmap B.

VMX has two 4 KiB I/O bitmaps, one bit per port (SDM 24.6.4, IO_EXITS.md §7 item 10):
  bitmap A: ports 0x0000–0x7FFF (bit = port)
  bitmap B: ports 0x8000–0xFFFF (bit = port − 0x8000)
{PORT_01_3:#06x} ≥ 0x8000, so its bit is bit {PORT_01_3 - 0x8000:#x} of bitmap B. A set bit makes
the access exit (an access exits if any port it touches is set). SVM has one I/O permission
map (the IOPM, 12 KB in KVM and Xen) covering all 65536 ports.
"""


@exercise(
    "01_3",
    f"A guest reads the PM timer at port {PORT_01_3:#06x}. Which VMX I/O bitmap holds the bit "
    "that makes this IN exit: 'A' or 'B'?",
    _SOLUTION_01_3,
    hint="Each bitmap covers half of the 65536 ports.",
    ask=[Ask("bitmap", {"A": "bitmap A", "B": "bitmap B"})],
)
def ex_01_3(answer) -> Verdict:
    word = as_word(answer, "the bitmap").removeprefix("bitmap").strip()
    if word not in ("a", "b"):
        raise AnswerError("Answer 'A' or 'B'.")
    if word == "b":
        return right(f"Bitmap B covers 0x8000–0xFFFF; the bit is {PORT_01_3 - 0x8000:#x}.")
    return wrong("Bitmap A covers ports 0x0000–0x7FFF only; is "
                 f"{PORT_01_3:#06x} below 0x8000?")  # fmt: skip


# -- 01.4: who puts the device's answer into AL? -------------------------------------------------

_SOLUTION_01_4 = """
The hypervisor.

The IN never executes in the guest: the CPU exits before it. The hypervisor works out the access
(from the exit record, or by decoding the bytes), asks the device (inside the hypervisor, or an
external device model such as QEMU, by a request and its completion) for the LSR value, writes
it into AL itself and advances RIP. The device never sees the guest's registers, and the guest
never talks to the device directly: the exit stepper's device log shows every access the
hypervisor made on the guest's behalf.
"""


@exercise(
    "01_4",
    "uart_hello's `in al, dx` reads the UART's LSR. Inside the VM, who writes the value into "
    "AL: 'device', 'cpu', 'guest' or 'hypervisor'?",
    _SOLUTION_01_4,
    hint="Look at the narrative of the first exit: who did what, in which order?",
    ask=[Ask("who", ROLE_OPTIONS)],
)
def ex_01_4(answer) -> Verdict:
    who = as_role(answer)
    if who == "hypervisor":
        return right("The device answers the hypervisor; the hypervisor writes AL and moves RIP.")
    if who == "device":
        return wrong("The device does not answer the guest directly. The IN exits, and the "
                     "hypervisor asks the device on the guest's behalf, then writes the answer "
                     "into AL itself.")  # fmt: skip
    if who == "cpu":
        return wrong("The CPU exited before executing the IN, so it read nothing: the value "
                     "reaches AL another way.")  # fmt: skip
    return wrong("The guest is stopped while its exit is handled: it cannot write its own AL.")


# -- practice: predict exit counts --------------------------------------------------------------

WORDS = ("ok", "boot", "hi\n", "xen", "kvm\n", "ready", "PIO", "exit!\n", "UART", "done\n")

HOW = (
    "Each guest prints its message like uart_hello: for each character it polls the LSR until "
    "THRE is set, then writes the character to the THR; after the message it writes one POST "
    "code to port 0x80 and halts. Answer with the number of VM exits."
)


def _count_question(message: str, busy: int) -> Question:
    n = len(message)
    polls = busy + 1
    answer = n * (polls + 1) + 1
    if busy:
        first = "first poll" if busy == 1 else f"first {busy} polls"
        said = f"the LSR reports the transmitter busy on the {first} of each character"
    else:
        said = "the transmitter is always empty"
    prompt = f"message {message!r}, {said}."
    poll_text = f"{polls} LSR poll{'s' if polls > 1 else ''}"
    worked = (f"{n} characters × ({poll_text} + 1 THR write) + 1 POST write "
              f"= {n} × {polls + 1} + 1 = {answer}")  # fmt: skip

    def judge(value: Any) -> Verdict:
        got = as_int(value, "the exit count")
        if got == answer:
            return right(worked)
        if got == n * (polls + 1):
            return wrong("Do not forget the POST write after the message.")
        if got == n * 2 + 1 and busy:
            return wrong("A busy poll exits too: every LSR read is an IN.")
        if got == n * polls + 1 or got == n + 1:
            return wrong("Each character also costs its THR write (an OUT).")
        return wrong("Count per character: the LSR polls, then one THR write; then the POST code.")

    return Question(prompt, str(answer), worked, judge)


def practice_01(seed: int = 1, n: int = 4) -> Practice:
    """``n`` exit-count predictions for uart_hello-like guests. The same ``seed`` always gives
    the same questions."""
    if not 1 <= n <= 50:
        raise AnswerError(f"n must be 1..50, got {n}")
    rng = random.Random(f"practice_01/{seed}")
    words = rng.sample(WORDS, len(WORDS))
    questions = [
        _count_question(words[i % len(words)], rng.choice((0, 0, 1, 2, 3))) for i in range(n)
    ]
    return Practice("Practice 01: predict the exit count", seed, questions, HOW,
                    hint_text="Per character: one IN for each LSR poll (a busy poll too) and one "
                    "OUT for the THR write; after the message, one OUT for the POST code.")
