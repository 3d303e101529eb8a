"""Chapter 07, reviewing the 2010 patch: find-the-bug exercises.

Facts (IO_EXITS.md §1, §3, §4, §5): the patch (Xen changeset 147808b8b8) stashes port/size/
direction in the vCPU and skips fetch + decode while ``io_size`` is non-zero. Confirmed defects:
no zero extension of a 32-bit IN (fixed 2013, 9d89100ba8 and 1e521eddeb); RIP advanced before
#GP is injected; the stash left stale after X86EMUL_UNHANDLEABLE; a device-model IN re-run
through the full emulator at completion (the Sept-2010 rewrite, 65f6837480, fixed these three).
The guest-visible leftover data came from the PM-timer handler below the patch (fixed 2015,
c9e57594e1, XSA-121). Today VirtualBox
and ACRN still merge a 32-bit IN into RAX.

The excerpts below are quoted from the patch's diff lines, the code under review.
"""

from __future__ import annotations

from typing import Any

from ..compare import Comparison, both_paths
from .ch05 import one_ms_later
from .common import AnswerError, Ask, Verdict, as_int, as_word, exercise, right, wrong

CHANGESET = "147808b8b8"

DEFECTS_07 = {
    "zero extension": "a 32-bit IN leaves RAX[63:32] as it was",
    "rip before gp": "RIP is advanced before #GP is injected",
    "stale stash": "port/size/direction stay stashed after a failure",
    "re-emulation": "a device-model IN re-runs the emulator at completion",
    "leftover data": "a short PM-timer read returns whatever was in `data`",
}

_ALIASES = {
    "zero extension": {"zero extension", "zero-extension", "zero extend", "zext", "memcpy",
                       "rax 63:32", "missing zero extension", "no zero extension"},
    "rip before gp": {"rip before gp", "rip before #gp", "rip", "rip advanced before gp",
                      "rip advanced", "early rip", "rip before fault"},
    "stale stash": {"stale stash", "stash", "stale", "stale io_size", "io_size", "stale port",
                    "stale io size"},
    "re-emulation": {"re-emulation", "reemulation", "re emulation", "re-emulate", "reemulate",
                     "re-emulated", "emulator at completion"},
    "leftover data": {"leftover data", "leftover", "uninitialised data", "uninitialized data",
                      "pm timer", "pm-timer", "stack rubble", "rubble"},
}  # fmt: skip


def _defect(answer: Any) -> str:
    word = as_word(answer, "with a defect name from DEFECTS_07")
    word = word.replace("#", "").replace("_", " ").strip()
    for name, spellings in _ALIASES.items():
        if word in spellings or word.replace(" ", "-") in spellings:
            return name
    raise AnswerError(f"Name one of the defects in DEFECTS_07 ({', '.join(DEFECTS_07)}); "
                      f"got {answer!r}.")


# -- 07.1: which defect is in this excerpt? ------------------------------------------------------

EXCERPT_07_1 = f"""\
Quoted from the 2010 patch (Xen changeset {CHANGESET}), xen/arch/x86/hvm/vmx/vmx.c:

+    inst_len = __get_instruction_length();
+    rc = handle_mmio_decoded(port, bytes, dir);
+    if ( rc != X86EMUL_RETRY)
+        __update_guest_eip(inst_len);
+    return rc;
 ...
+            if ( !vmx_io_intercept(exit_qualification, regs) )
+                vmx_inject_hw_exception(TRAP_gp_fault, 0);
"""

_SOLUTION_07_1 = """
"rip before gp". Follow a failing access: handle_mmio() returns 0 (X86EMUL_UNHANDLEABLE ends
in `return 0`). 0 is not X86EMUL_RETRY, so __update_guest_eip() moves RIP past the IN/OUT; only
then does vmx_io_intercept return 0 and the caller inject #GP. The guest takes the fault on the
instruction *after* the one that failed. The SVM half of the patch does the same in
svm_vmexit_do_io. The rule (IO_EXITS.md §3): advance RIP only once the access has completed; a
fault is delivered with RIP still at the faulting instruction. hvpp and ACRN later had the
same bug (IO_EXITS.md §7.4).
"""


@exercise(
    "07_1",
    "EXCERPT_07_1 is the VMX half of the patch. Which defect of DEFECTS_07 does it contain?",
    _SOLUTION_07_1,
    hint="Follow an access that fails: what happens first, the RIP update or the #GP?",
    ask=[Ask("defect", {k: f"{k}: {v}" for k, v in DEFECTS_07.items()})],
    given=EXCERPT_07_1,
    prompt="The excerpt below is the VMX half of the 2010 patch. Which defect does it contain?",
)
def ex_07_1(answer) -> Verdict:
    name = _defect(answer)
    if name == "rip before gp":
        return right("rc = 0 is not RETRY, so RIP moves first and #GP is injected after.")
    if name == "stale stash":
        return wrong("The stash is set and cleared inside handle_mmio, not in these lines. "
                     "Here, follow RIP on a failure: when does __update_guest_eip run?")
    if name == "re-emulation":
        return wrong("X86EMUL_RETRY is the device-model case, and these lines do leave RIP alone "
                     "for it. Look at the other return values: what does a failure (rc = 0) do?")
    if name == "zero extension":
        return wrong("No register data is written here (that is the memcpy in handle_mmio). "
                     "These lines move RIP and inject #GP: in which order?")
    return wrong("No data is read or written here. These lines move RIP and inject #GP: in "
                 "which order?")


# -- 07.2: RAX after in eax, dx under the 2010 patch ----------------------------------------------

RAX_07_2 = 0xDEAD_BEEF_0000_0000
DATA_07_2 = 0x1234_5678
_SEED_RAX_07_2 = RAX_07_2 | DATA_07_2
_WRONG_BITS = 0xFFFF_FFFF_0000_0000

_SOLUTION_07_2 = """
The 2010 fast path copies the data with memcpy(&eax, &data, io_size): 4 bytes into the low half
of the 64-bit register slot, nothing else.

    RAX before            0xDEADBEEF_00000000
    device answers                 0x12345678
    RAX, 2010 patch       0xDEADBEEF_12345678   bits 31:0 right, bits 63:32 stale
    RAX, architecture     0x00000000_12345678   a 32-bit write clears bits 63:32

So bits 63:32 are wrong (every set bit of 0xDEADBEEF). A 1- or 2-byte IN was right, because
those do merge. Xen fixed it in 2013 (9d89100ba8, 1e521eddeb); VirtualBox HM and ACRN still
merge (IO_EXITS.md §3, §5). Answer: (0xDEADBEEF12345678, "63:32").
"""

_HIGH = {"63:32", "32:63", "63-32", "32-63", "rax 63:32", "rax[63:32]", "bits 63:32",
         "upper 32", "upper 32 bits", "high 32", "high 32 bits", "upper half", "high half",
         "top 32 bits", "63..32", "32..63"}  # fmt: skip


def _bits(answer: Any) -> str:
    """'high', 'low', or '' for an answer naming which bits are wrong."""
    if isinstance(answer, int) and not isinstance(answer, bool):
        if answer in (_WRONG_BITS, RAX_07_2):
            return "high"
        if answer == 0xFFFF_FFFF:
            return "low"
        return ""
    text = as_word(answer, "the bits, e.g. '7:0'").replace("[", " ").replace("]", " ")
    text = " ".join(text.replace("rax", "").replace("bits", "").split())
    if text in _HIGH or f"rax {text}" in _HIGH or f"bits {text}" in _HIGH:
        return "high"
    if text in ("31:0", "0:31", "31-0", "0-31", "low 32", "lower 32", "low half", "lower half",
                "eax"):
        return "low"
    return ""


@exercise(
    "07_2",
    f"Under the 2010 patch, a 64-bit guest runs `in eax, dx` with RAX = {RAX_07_2:#x}; the "
    f"device answers {DATA_07_2:#x}. What does the guest find in RAX, and which bits of it are "
    "wrong? Answer (rax, bits), bits like '15:8'.",
    _SOLUTION_07_2,
    hint="memcpy copies io_size bytes into the register slot and touches nothing else.",
    ask=[Ask("RAX", placeholder="e.g. 0x1234"),
         Ask("wrong bits", placeholder="e.g. 15:8")],
)
def ex_07_2(rax, bits) -> Verdict:
    value = as_int(rax, "RAX")
    which = _bits(bits)
    if value == DATA_07_2:
        return wrong("That is what the guest *should* see, and what modern Xen gives. The 2010 "
                     "memcpy wrote 4 bytes and left the rest of RAX as it was.")
    if value == RAX_07_2:
        return wrong("The data did arrive: memcpy copied the 4 bytes into the low half.")
    if value != _SEED_RAX_07_2:
        return wrong("Start from RAX and overwrite exactly 4 bytes, the low half, with the data.")
    if which == "low":
        return wrong("Bits 31:0 hold the device's answer, which is right. Compare with the "
                     "architectural result: which half should have become 0?")
    if which != "high":
        return wrong("Your RAX is right. Now compare it with the architectural result, "
                     f"{DATA_07_2:#x}: which bits differ? Answer like '63:32'.")
    return right("0xDEADBEEF12345678: bits 63:32 kept 0xDEADBEEF instead of becoming 0.")


# -- 07.3: what the stale stash does to the next exit ------------------------------------------

_SOLUTION_07_3 = """
(0x3F8, 2, "out"). handle_mmio_decoded stashed io_port = 0x3F8, io_size = 2, io_dir = write
for `out dx, ax`. The access failed, and the X86EMUL_UNHANDLEABLE case returns 0 *before* the
line that clears io_size, so the stash survives.

`rep outsb` is a string exit, so the vendor code calls handle_mmio() directly without stashing
anything. handle_mmio tests io_size first: it is 2, so it skips fetch and decode and does the
stashed access again, a 2-byte write to 0x3F8, which (in the lab's model) fails again. The
POST port never sees its bytes. In real Xen the next victim could just as well be an MMIO or
control-register exit, which go through the same handle_mmio (IO_EXITS.md §4.1).
"""

_DIRECTION = {"out": False, "write": False, "w": False, "in": True, "read": True, "r": True}


@exercise(
    "07_3",
    "Under the 2010 patch, `out dx, ax` with DX = 0x3F8 fails with X86EMUL_UNHANDLEABLE. The "
    "guest's next exit is `rep outsb` to port 0x80. Which port, size (bytes) and direction does "
    "handle_mmio use for it? Answer (port, size, 'in' or 'out').",
    _SOLUTION_07_3,
    hint="What does handle_mmio look at first, and when is io_size set back to 0?",
    ask=[Ask("port", placeholder="e.g. 0x60"), Ask("size", placeholder="bytes"),
         Ask("direction", {"in": "in", "out": "out"})],
)
def ex_07_3(port, size, direction) -> Verdict:
    p, n = as_int(port, "The port"), as_int(size, "The size")
    d = as_word(direction, "with 'in' or 'out'")
    if d not in _DIRECTION:
        raise AnswerError(f"The direction is 'in' or 'out'; got {direction!r}.")
    is_in = _DIRECTION[d]
    if (p, n, is_in) == (0x3F8, 2, False):
        return right("The stale stash: the 2-byte OUT to 0x3F8 again, not the string to 0x80.")
    if p == 0x80:
        return wrong("That is what the guest asked for. But handle_mmio checks io_size first, "
                     "and the UNHANDLEABLE case returned before io_size was cleared.")
    if p == 0x3F8 and n == 1:
        return wrong("The size comes from the stash too: io_size was set for `out dx, ax`.")
    if p == 0x3F8 and is_in:
        return wrong("io_dir was stashed for an OUT (IOREQ_WRITE), and nothing changed it.")
    return wrong("Every field comes from the stash the failed `out dx, ax` left behind.")


# -- 07.4: who still merges a 32-bit IN today ---------------------------------------------

HYPERVISORS_07 = ("xen", "kvm", "bhyve", "virtualbox", "acrn")
NAMES_07 = {"xen": "Xen", "kvm": "KVM", "bhyve": "bhyve", "virtualbox": "VirtualBox",
            "acrn": "ACRN"}  # fmt: skip

_SOLUTION_07_4 = """
VirtualBox and ACRN (IO_EXITS.md §5). VirtualBox's HM merges and carries it as an acknowledged
to-do; ACRN's completion merges too. Xen (since 2013) and KVM zero-extend a 32-bit IN. bhyve
writes a 32-bit value back, which clears bits 63:32: right for a 32-bit IN, but it does the same
for 8- and 16-bit INs, which should merge, so it errs the other way.
"""


@exercise(
    "07_4",
    "Of Xen, KVM, bhyve, VirtualBox and ACRN, which still merge a 32-bit IN into RAX (the 2010 "
    "patch's bug) today? Answer a list of names.",
    _SOLUTION_07_4,
    hint="The last column of the cross-hypervisor table.",
    ask=[Ask("still merge", {h: NAMES_07[h] for h in HYPERVISORS_07}, several=True)],
)
def ex_07_4(answer) -> Verdict:
    names = [answer] if isinstance(answer, str) else list(answer) if answer is not None else []
    got = set()
    for name in names:
        word = as_word(name, "with hypervisor names").replace(" ", "")
        if word not in HYPERVISORS_07:
            raise AnswerError(f"Name hypervisors from {', '.join(HYPERVISORS_07)}; got {name!r}.")
        got.add(word)
    want = {"virtualbox", "acrn"}
    if got == want:
        return right("VirtualBox and ACRN still merge; Xen and KVM zero-extend.")
    hints = []
    if "xen" in got:
        hints.append("Xen fixed it in 2013 (9d89100ba8, 1e521eddeb).")
    if "kvm" in got:
        hints.append("KVM starts from `size < 4 ? rax : 0`, so a 32-bit IN zero-extends.")
    if "bhyve" in got:
        hints.append("bhyve clears bits 63:32, even for 8- and 16-bit INs: the opposite slip.")
    missing = want - got
    if missing:
        hints.append(f"{len(missing)} more still merge{'s' if len(missing) == 1 else ''}: look "
                     "again at the 32-bit IN column.")
    return wrong(" ".join(hints))


# -- the chapter's explorer: each defect, the 2010 patch beside the modern path ----------------


def _fail_then_rep_outsb(hv) -> object:
    hv.step()  # out dx, eax to the UART: refused, and the stash survives
    cpu = hv.machine.cpu
    cpu.rip = 0x1001  # the guest carries on at rep outsb
    cpu.rdx, cpu.rcx, cpu.rsi = 0x80, 2, 0x8000
    hv.machine.memory.write(0x8000, b"ok")
    return hv.step()


def _post_then_short_timer_read(hv) -> object:
    hv.step()  # out 0x80, eax: 0x5A5A5A5A passes through the handler's `data`
    cpu = hv.machine.cpu
    cpu.rax, cpu.rdx = 0, 0x1F48
    one_ms_later(hv.machine)
    return hv.step()  # in ax, dx: a 2-byte read of the PM timer


# defect (a key of DEFECTS_07) → both_paths arguments that show it.
DEFECT_RUNS_07 = {
    "zero extension": {"code": b"\xed", "rax": 0xFFFF_FFFF_0000_0000, "rdx": 0x1F48,
                       "setup": one_ms_later},
    "rip before gp": {"code": b"\x66\xef", "rax": 0x4142, "rdx": 0x3F8},
    "stale stash": {"code": b"\xef\xf3\x6e", "rax": 0x41424344, "rdx": 0x3F8,
                    "script": _fail_then_rep_outsb},
    "re-emulation": {"code": b"\xec", "rdx": 0x3FD},
    "leftover data": {"code": b"\xe7\x80\x66\xed", "rax": 0x5A5A5A5A,
                      "script": _post_then_short_timer_read},
}  # fmt: skip


def run_defect_07(defect: str, vendor: str = "svm", modern: str = "fast") -> Comparison:
    """The run of ``DEFECT_RUNS_07[defect]`` under the 2010 patch and under ``modern``."""
    args = dict(DEFECT_RUNS_07[defect])
    return both_paths(args.pop("code"), vendor=vendor, paths=("seed2010", modern), **args)
