"""Chapter 09, your own VM's exits: decode a real ``kvm_exit`` line by hand, name the port
that dominates a trace and whether the fast path takes it, and say what the probe's figures
mean on a given KVM backend.

Facts: on VMX, kvm_exit's info1 is the exit qualification (size − 1 in bits 2:0, direction
bit 3 with 1 = IN, string bit 4, REP bit 5, immediate bit 6, port bits 31:16); on SVM it is
EXITINFO1 (IO_EXITS.md §2). The 2010 fast path takes every non-string IN/OUT and gives string
I/O to the emulator (§1). PVM emulates every IN/OUT in software (issue 15).
"""

from __future__ import annotations

from functools import cache

from ..exits import VmxIoExit
from .common import (
    AnswerError,
    Ask,
    Verdict,
    as_choice,
    as_int,
    as_word,
    exercise,
    judge_access,
    right,
    wrong,
)

__all__ = ["BACKENDS_09_3", "LINE_09_1", "TRACE_09_2"]

# -- 09.1: a real kvm_exit line, by hand --------------------------------------------------------

_QUALIFICATION_09_1 = 0xB008 << 16 | 1 << 3 | 3  # in eax, dx from the PM timer (PIIX4 / Xen V1)
LINE_09_1 = (
    "CPU 0/KVM-4012    [003] d..2. 2310.123456: kvm_exit: vcpu 0 reason IO_INSTRUCTION "
    f"rip 0xffffffff81039f3c info1 0x{_QUALIFICATION_09_1:016x} info2 0x0000000000000000 "
    "intr_info 0x00000000 error_code 0x00000000"
)
_EXPECTED_09_1 = VmxIoExit(_QUALIFICATION_09_1, 1, 0).access()

_SOLUTION_09_1 = f"""
IN 32-bit port 0xb008. The reason IO_INSTRUCTION says VMX, so info1 is the exit qualification:
  info1 = {_QUALIFICATION_09_1:#010x}
  bits 31:16 (port)      = 0xb008: the PIIX4 PM timer (Xen's V1 layout, QEMU's too)
  bit 3 (direction)      = 1: IN
  bits 2:0 (size − 1)    = 3: 4 bytes, so `in eax, dx`
  bits 4, 5 (string, REP) = 0: not a string instruction, so the fast path takes it.
info2 on VMX is the IDT-vectoring information (0: no event was being delivered), not the next
RIP; the trace has no instruction length, so decoding needs the qualification alone.
"""


@exercise(
    "09_1",
    "Decode LINE_09_1 by hand: what access does the guest make? Answer like "
    "'IN 32-bit port 0x1f48'.",
    _SOLUTION_09_1,
    hint="IO_INSTRUCTION is a VMX reason, so info1 is the exit qualification: port in bits "
    "31:16, direction in bit 3, size − 1 in bits 2:0.",
    ask=[Ask("access", placeholder="IN 32-bit port 0x1f48")],
    given=LINE_09_1,
)
def ex_09_1(answer) -> Verdict:
    return judge_access(answer, _EXPECTED_09_1, {
        "direction": "Bit 3 of the qualification is the direction; on VMX 1 means IN.",
        "size": "Bits 2:0 hold the size minus one: 0, 1 or 3.",
        "string": "Bit 4 (string) is clear.",
        "rep": "Bit 5 (REP) is clear.",
        "port": "The port is bits 31:16 of info1.",
        "invalid": "The qualification is valid: decode it.",
        "valid": "The qualification is valid: decode it.",
    })  # fmt: skip


# -- 09.2: the port that dominates a trace, and whether the fast path takes it ---------------------


def _trace_09_2() -> str:
    """A few milliseconds of a Linux guest on SVM (written for this exercise from the 5.10+
    format, not recorded): clocksource reads of the ACPI PM timer with serial output between."""
    pmtimer = 0xB008 << 16 | 1 << 8 | 1 << 6 | 1  # in eax, dx: TYPE, SZ32, A32
    thr = 0x3F8 << 16 | 1 << 8 | 1 << 4  # out dx, al: SZ8, A32
    lsr = 0x3FD << 16 | 1 << 8 | 1 << 4 | 1  # in al, dx
    outsb = 0x3F8 << 16 | 3 << 10 | 1 << 8 | 1 << 4 | 1 << 3 | 1 << 2  # rep outsb, DS
    pattern = ("pm", "pm", "lsr", "thr", "pm", "outs", "pm")
    sites = {
        "pm": (0xFFFFFFFF8103A2B4, pmtimer, 1),
        "lsr": (0xFFFFFFFF815C3E10, lsr, 1),
        "thr": (0xFFFFFFFF815C3E2A, thr, 1),
        "outs": (0xFFFFFFFF815C4001, outsb, 2),
    }
    lines, t = [], 512.0
    for _ in range(3):
        for name in pattern:
            rip, info1, length = sites[name]
            t += 0.000383
            lines.append(f"qemu-system-x86-7311  [001] d..2. {t:12.6f}: kvm_exit: vcpu 0 reason "
                         f"io rip {rip:#x} info1 0x{info1:016x} info2 0x{rip + length:016x} "
                         "intr_info 0x00000000 error_code 0x00000000")  # fmt: skip
    return "\n".join(lines)


TRACE_09_2 = _trace_09_2()


@cache
def _dominant_09_2():
    from ..traces import read, summarize  # the chapter's own reader: loaded when checked

    top = summarize(read(TRACE_09_2)).rows()[0]
    return top.port, top.string == 0


_SOLUTION_09_2 = """
Port 0xb008, and yes. Read the trace (traces.read(TRACE_09_2)) or just count: 12 of the 21
exits are `in eax, dx` from 0xb008, the PM timer a Linux guest reads as its clocksource
(propolis traced 2,611 such exits a second, IO_EXITS.md §7). EXITINFO1 = 0x..b0080141 has STR
(bit 2) clear: a plain IN, which the 2010 fast path takes from the record alone. The serial
`rep outsb` exits (STR and REP set) are the ones it hands to the emulator; they are few.
"""


@exercise(
    "09_2",
    "Which port dominates TRACE_09_2, and could the 2010 fast path take its exits?",
    _SOLUTION_09_2,
    hint="Count the exits per info1 value; then look at EXITINFO1 bit 2 (STR) of the winner.",
    ask=[
        Ask("port", placeholder="0x..."),
        Ask("fast path", {"yes": "yes, from the record", "no": "no, the emulator"}),
    ],
    given=TRACE_09_2,
)
def ex_09_2(port, fast) -> Verdict:
    got = as_int(port, "The port")
    takes = as_word(fast, "yes or no")
    if takes not in ("yes", "no"):
        raise AnswerError(f"Answer the second part 'yes' or 'no'; got {fast!r}.")
    top, eligible = _dominant_09_2()
    if got != top:
        return wrong(f"{got:#x} is not the port with the most exits: count the info1 values "
                     "(port in bits 31:16).")  # fmt: skip
    if (takes == "yes") != eligible:
        return wrong("Right port. Now read STR (EXITINFO1 bit 2) of its exits: set means a "
                     "string instruction, which the fast path declines.")  # fmt: skip
    return right(f"{top:#x}, the PM timer: a non-string IN, fast-path material.")


# -- 09.3: what the probe's figures mean on each backend ---------------------------------------

BACKENDS_09_3 = {
    "a": "the cost of a hardware VM exit and entry plus KVM's in-kernel port handler",
    "b": "the cost of PVM's software trap and emulation of each IN/OUT; no hardware exit",
    "c": "the cost of a hardware VM exit, multiplied by exits to an outer hypervisor",
    "d": "nothing: KVM never runs the guest's IN/OUT instructions",
}
_ANSWERS_09_3 = ("b", "a", "c")  # kvm_pvm, kvm_intel on bare metal, kvm_amd inside a VM

_SOLUTION_09_3 = """
b, a, c.
- kvm_pvm: PVM runs the guest deprivileged without VMX or SVM and emulates every IN/OUT in
  software (a trace shows only kvm_pio, no kvm_exit); there is no exit record and no fast path
  to observe, so the figure is PVM's trap-and-emulate cost.
- kvm_intel on bare metal: a real VMX exit (and entry) plus KVM's port handler; the userspace
  figure adds the round trip to the probe's Python VMM.
- kvm_amd with the CPUID hypervisor bit set: the host is itself a guest, so each exit of the
  probe VM also exits to the outer hypervisor (a 2019 nested KVM measured ~13,500 cycles
  in-kernel, IO_EXITS.md §6).
"""


@exercise(
    "09_3",
    "The probe printed an in-kernel figure on three hosts: kvm_pvm; kvm_intel on bare metal; "
    "kvm_amd with the CPUID hypervisor bit set. What does the figure measure on each? Answer "
    "three letters from BACKENDS_09_3, in that order.",
    _SOLUTION_09_3,
    hint="Which backend has no VMX/SVM at all? Which host is itself a virtual machine?",
    ask=[Ask("backend", BACKENDS_09_3, count=3)],
    given=lambda: "\n".join(f"{k}) {v}" for k, v in BACKENDS_09_3.items()),
)
def ex_09_3(answer) -> Verdict:
    items = [answer] if isinstance(answer, str) else list(answer)
    letters = [c for item in items for c in as_word(item, "with letters").replace(",", " ")
               .split()]  # fmt: skip
    letters = [as_choice(c, BACKENDS_09_3, "BACKENDS_09_3") for c in letters]
    if len(letters) != 3:
        raise AnswerError(f"Answer three letters, one a host; got {answer!r}.")
    if tuple(letters) == _ANSWERS_09_3:
        return right("PVM emulates; bare-metal VMX exits; nested SVM exits twice over.")
    if letters[0] != "b":
        return wrong("kvm_pvm has no VMX or SVM: what can its figure not be?")
    return wrong("A host with the hypervisor bit set is itself a guest: its exits go to an "
                 "outer hypervisor too.")  # fmt: skip
