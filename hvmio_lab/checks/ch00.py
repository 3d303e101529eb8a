"""Chapter 00, start here: the environment check and two warm-up exercises."""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import PackageNotFoundError, version

from .common import (
    ROLE_OPTIONS,
    AnswerError,
    Ask,
    Verdict,
    as_role,
    as_word,
    exercise,
    right,
    wrong,
)

# (distribution, import name, minimum version): what the workbook needs to run.
REQUIREMENTS = (
    ("bitstring", "bitstring", (4, 1)),
    ("capstone", "capstone", (5, 0)),
    ("unicorn", "unicorn", (2, 1)),
    ("ipywidgets", "ipywidgets", (8, 1)),
    ("matplotlib", "matplotlib", (3, 8)),
)


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit()) or "0"
        parts.append(int(digits))
    return tuple(parts)


def _capstone_works() -> bool:
    import capstone

    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    insn = next(md.disasm(b"\xed", 0x1000))
    return (insn.mnemonic, insn.op_str) == ("in", "eax, dx")


def _unicorn_works() -> bool:
    import unicorn
    from unicorn import x86_const

    uc = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_64)
    uc.mem_map(0x1000, 0x1000)
    uc.mem_write(0x1000, b"\xb8\x48\x1f\x00\x00")  # mov eax, 0x1f48
    uc.emu_start(0x1000, 0x1005)
    return uc.reg_read(x86_const.UC_X86_REG_RAX) == 0x1F48


def environment_report() -> list[tuple[bool, str]]:
    """(passed, line) for each requirement. Lines name no exact versions, so the output is
    the same on every machine that passes."""
    results = [(sys.version_info >= (3, 11), "Python ≥ 3.11")]
    for dist, module, minimum in REQUIREMENTS:
        want = ".".join(map(str, minimum))
        try:
            importlib.import_module(module)
            ok = _version_tuple(version(dist)) >= minimum
        except (ImportError, PackageNotFoundError):
            ok = False
        results.append((ok, f"{dist} ≥ {want}"))
    for name, probe in (
        ("capstone decodes ED as `in eax, dx`", _capstone_works),
        ("unicorn runs `mov eax, 0x1f48`", _unicorn_works),
    ):
        try:
            ok = probe()
        except Exception:  # a broken install shows up here, whatever it raises
            ok = False
        results.append((ok, name))
    return results


def check_environment() -> bool:
    """Print ✓/✗ per requirement and a summary; return True when everything passes."""
    results = environment_report()
    for ok, line in results:
        print(f"{'✓' if ok else '✗'} {line}")
    passed = all(ok for ok, _ in results)
    print("All good: the workbook can run." if passed else
          "Something is missing: run `make lab` from the repository root to reinstall.")
    return passed


# -- 00.1: the route of one IN ------------------------------------------------------------------

ROUTE = ("instruction", "trap", "record", "path", "device", "resume")

_SOLUTION_00_1 = """
instruction → trap → record → path → device → resume

1. instruction: the guest runs `in eax, dx` as on bare metal;
2. trap: the port is intercepted (VMX I/O bitmaps, SVM IOPM), so the CPU leaves the guest;
3. record: the CPU writes the exit record (SVM EXITINFO1/2, VMX qualification + length);
4. path: the hypervisor decodes the record (fast path) or the instruction bytes (emulator);
5. device: the hypervisor, not the guest, calls the device model for the value;
6. resume: the hypervisor writes EAX and advances RIP, then re-enters the guest.
"""


@exercise(
    "00_1",
    f"Put the stages of one IN in order: a list of the six words {sorted(ROUTE)}.",
    _SOLUTION_00_1,
    hint="Follow the exit printed above, from top to bottom.",
    ask=[Ask("stage", {w: w for w in sorted(ROUTE)}, count=len(ROUTE))],
    prompt="Put the six stages of one IN in order, first to last.",
)
def ex_00_1(order) -> Verdict:
    if not isinstance(order, list | tuple) or not all(isinstance(x, str) for x in order):
        raise AnswerError(f"Answer with a list of the words {list(ROUTE)} in order.")
    words = [as_word(x, "each stage") for x in order]
    if sorted(words) != sorted(ROUTE):
        raise AnswerError(f"Use each of the six words {sorted(ROUTE)} exactly once.")
    if tuple(words) == ROUTE:
        return right("The device never sees the guest: the hypervisor stands in between.")
    pos = {w: i for i, w in enumerate(words)}
    if pos["device"] < pos["path"] or pos["device"] < pos["trap"]:
        return wrong("The device does not answer the guest directly: the guest traps to the "
                     "hypervisor, which calls the device.")
    if pos["record"] < pos["trap"]:
        return wrong("The CPU writes the exit record as it leaves the guest: trap first.")
    if pos["path"] < pos["record"]:
        return wrong("The hypervisor's path starts from the exit record the CPU left it.")
    if words[-1] != "resume":
        return wrong("The guest resumes last, once the value is in EAX and RIP has moved.")
    return wrong("The guest's instruction comes first: everything else follows from it.")


# -- 00.2: who moves RIP -------------------------------------------------------------------

_SOLUTION_00_2 = """
The hypervisor. At the exit the guest's RIP still points at the IN (0x1000 above). The CPU
reports where the next instruction starts (SVM: EXITINFO2; VMX: RIP + the VM-exit instruction
length), and the hypervisor writes RIP = that value once the access has completed. If the access
fails, RIP stays at the IN: this lab then injects #GP (a teaching choice), while modern Xen
injects nothing for a failed IN (IO_EXITS.md §3).
"""


@exercise(
    "00_2",
    "After the exit, who moves the guest's RIP past the IN: 'cpu', 'guest', 'device' or "
    "'hypervisor'?",
    _SOLUTION_00_2,
    hint="Look at the diff above: which stage wrote rip?",
    ask=[Ask("who", ROLE_OPTIONS)],
)
def ex_00_2(answer) -> Verdict:
    who = as_role(answer)
    if who == "hypervisor":
        return right("RIP stays on the IN until the hypervisor advances it.")
    if who == "cpu":
        return wrong("The CPU only reports the next RIP (EXITINFO2, or the instruction length); "
                     "RIP does not move on by itself after an exit.")
    if who == "guest":
        return wrong("The guest is stopped while the exit is handled: it cannot move its own RIP.")
    return wrong("The device only supplies the value; it never touches the vCPU's registers.")
