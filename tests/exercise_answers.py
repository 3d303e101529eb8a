"""A right and a wrong answer for every exercise of chapters 00–07, as a learner types or picks
them into the exercise widget (one value per answer box). Shared by the Python tests and the
browser tier. Worked out from the manuals' layouts, the guest itself or the chapter's numbers,
never read from the checks under test.
"""

from __future__ import annotations

from hvmio_lab import timing
from hvmio_lab.guest import Guest


def _hello_exits() -> int:
    return Guest("uart_hello", recording=False).run().exits


def _rip_after_post_write() -> int:
    guest = Guest("uart_hello")
    while (outcome := guest.step()).access.port != 0x80:
        pass
    return outcome.diff.register("rip")[1]


def _exit_entry_for_half() -> int:
    """(X + a) / (X + a + s) = 1/2 → X = s − a, with a the stages both paths pay besides
    exit/entry (hypervisor device) and s the fetch + decode only the emulator pays."""
    c = timing.load_profile("amd-k8-2010").stages
    return round(c["fetch"] + c["decode"] - c["record_read"] - c["device_handler"]
                 - c["writeback"])


# key → (a right answer, a wrong one), one value per answer box, as typed or picked.
SVM_IN_EAX_DX_1F48 = (0x1F48 << 16) | (1 << 9) | (1 << 6) | 1  # PORT, A64, SZ32, TYPE=IN
VMX_OUT_80_AL = (0x80 << 16) | (1 << 6)  # port, operand encoding = imm8, size−1 = 0, OUT
ANSWERS = {
    "00_1": ([["instruction", "trap", "record", "path", "device", "resume"]],
             [["device", "trap", "record", "path", "instruction", "resume"]]),
    "00_2": (["hypervisor"], ["cpu"]),
    "01_1": (lambda: [str(_hello_exits())], lambda: [str(_hello_exits() - 1)]),
    "01_2": (lambda: [hex(_rip_after_post_write())], lambda: [hex(_rip_after_post_write() - 2)]),
    "01_3": (["B"], ["A"]),
    "01_4": (["hypervisor"], ["device"]),
    "02_1": ([hex(SVM_IN_EAX_DX_1F48)], ["0x1f48"]),
    "02_2": (["SZ", "6"], ["A", "6"]),
    "02_3": (["2", "0x7c12"], ["1", "0x7c12"]),
    "03_1": (["in eax, dx"], ["out dx, eax"]),  # 0xB: size−1 = 3, bit 3 = IN
    "03_2": ([hex(VMX_OUT_80_AL)], [hex(0x80 << 16)]),
    "03_3": (["a"], ["b"]),
    "03_4": ([hex(0x0CF8 << 16 | 3), "1"], [hex(0x0CF8 << 16 | 3), "2"]),  # out dx, eax (EF)
    "04_1": (["rep insd", "32"], ["rep insw", "16"]),  # 66 and 67 flip 16-bit defaults
    "04_2": (["0xfffa", "0"], ["0xfffc", "0"]),  # 5 × 2 bytes down from 4, wrapping at 16 bits
    "05_1": ([["fast", "fast", "emulate", "emulate", "fast", "fast"]], [["fast"] * 6]),
    "05_2": (["0x12345678"], ["0xdeadbeef12345678"]),
    "05_3": (["b"], ["a"]),
    "06_1": (["1.8"], ["0.56"]),  # (2000 + 1600) / 2000
    "06_2": (["1.05"], ["1.8"]),  # (31600 + 1600) / 31600
    "06_3": (lambda: [str(_exit_entry_for_half())], ["0"]),
    "07_1": (["rip before gp"], ["stale stash"]),
    "07_2": (["0xdeadbeef12345678", "63:32"], ["0x12345678", "63:32"]),
    "07_3": (["0x3f8", "2", "out"], ["0x80", "1", "out"]),
    "07_4": ([["virtualbox", "acrn"]], [["xen"]]),
}


def answer_values(key: str) -> tuple[list, list]:
    """(right, wrong) for exercise ``key``, computed now."""
    right, wrong = ANSWERS[key]
    return (right() if callable(right) else right, wrong() if callable(wrong) else wrong)
