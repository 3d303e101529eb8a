"""Chapter 08, a real boot: which device SeaBIOS keeps busy, which of its exits the fast path
takes, and what the fast path saves on a whole boot (Amdahl's law).

Facts: the fast path takes the non-string exits from the record alone and declines string
I/O (INS/OUTS), which goes to the emulator (IO_EXITS.md §3, §5). The seed's 2010 IDE
benchmark gained 4–5 % (the patch's own description): its disk exits were device-model round
trips, which both paths pay.
"""

from __future__ import annotations

from functools import cache

from ..hardware import decode_io
from .common import AnswerError, Ask, Verdict, as_word, exercise, right, wrong

__all__ = ["DEVICES_08", "EXCERPT_08_2", "GIVEN_08_3"]

# -- 08.1: which device would dominate without the debug console ----------------------------

DEVICES_08 = {
    "port61": "port 0x61 (PIT channel 2's output)",
    "cmos": "CMOS/RTC 0x70/0x71",
    "port92": "port 0x92 (A20)",
    "pci": "PCI configuration 0xCF8/0xCFC",
    "fw_cfg": "fw_cfg 0x510/0x511",
    "ata": "the ATA disk 0x1F0–0x1F7",
}


@cache
def _boot_counts() -> tuple[tuple[str, int], ...]:
    from .. import firmware  # boots SeaBIOS: only when the exercise is checked

    return tuple(firmware.boot().by_device.most_common())


_SOLUTION_08_1 = """
Port 0x61. Without the debug console's ~1,900 exits (one per character of the log; a SeaBIOS
that reads no 0xE9 back from port 0x402 prints nothing there), the largest share is the TSC
calibration: SeaBIOS polls port 0x61 until PIT channel 2 has counted 2048 ticks, 1.7 ms at
1.193182 MHz, about 1,716 polls at 1 µs of virtual time an exit. Next come CMOS and port 0x92,
touched on every switch to 16-bit mode (NMI mask and A20, ~850 each). The disk, which carries
the data, takes few exits: a `rep insw` moves a whole sector in one. Waiting on a timer, not
doing I/O, is what costs exits here. See result.by_device.most_common().
"""


@exercise(
    "08_1",
    "SeaBIOS writes its log to the debug console, one exit per character: the chart's top "
    "bar. On a VM without that console, which device would take the most exits on the way to "
    "our boot sector?",
    _SOLUTION_08_1,
    hint="What did the second-longest run of identical exits in the boot wait for?",
    ask=[Ask("device", DEVICES_08)],
)
def ex_08_1(answer) -> Verdict:
    device = as_word(answer, "with a device name from DEVICES_08").replace(" ", "")
    if device not in DEVICES_08:
        raise AnswerError(f"Name one of {', '.join(DEVICES_08)}; got {answer!r}.")
    from ..firmware import SeabiosMissing

    try:
        counts = {name: n for name, n in _boot_counts() if name != "debugcon"}
    except SeabiosMissing as e:
        return wrong(f"This check boots SeaBIOS, which is missing here. {e}")
    top = max(counts, key=counts.get)
    if device == top:
        return right(f"{top}: {counts[top]:,} exits, polling PIT channel 2 to time the TSC.")
    if device == "ata":
        return wrong(f"The disk carries the data, but in few exits ({counts.get('ata', 0)}): "
                     "a `rep insw` moves 256 words in one exit.")  # fmt: skip
    return wrong(f"{device} takes {counts.get(device, 0):,} exits; one device takes more. "
                 "Which one does SeaBIOS poll before it does anything with time?")  # fmt: skip


# -- 08.2: which exits of an excerpt can take the fast path ----------------------------------

# (letter, bytes in SeaBIOS's 32-bit code, port, what it is): exits from a real boot
_EXCERPT = (
    ("a", "e6 70", 0x70, "CMOS index (NMI masked) before a mode switch"),
    ("b", "f3 6c", 0x511, "fw_cfg: read a file's bytes"),
    ("c", "ec", 0x61, "poll PIT channel 2's OUT2"),
    ("d", "66 f3 6d", 0x1F0, "ATA: read one sector's 256 words"),
    ("e", "ee", 0x402, "one character of the log"),
    ("f", "ed", 0xCFC, "PCI configuration data"),
)


def _excerpt_text() -> str:
    lines = ["Exits from the SeaBIOS boot (32-bit code):"]
    for letter, code, port, what in _EXCERPT:
        text = decode_io(bytes.fromhex(code), 32)[2]
        lines.append(f"  {letter})  {code:<9} {text:<34} port {port:#06x}: {what}")
    return "\n".join(lines)


EXCERPT_08_2 = _excerpt_text()
_FAST_08_2 = frozenset(letter for letter, code, _, _ in _EXCERPT
                       if not decode_io(bytes.fromhex(code), 32)[1].string)  # fmt: skip

_SOLUTION_08_2 = f"""
{", ".join(sorted(_FAST_08_2))}: the non-string exits. For IN/OUT the record carries everything
(port, size, direction, and RAX holds the data), so the fast path needs no bytes. The string
exits (b, `rep insb` from fw_cfg; d, `rep insw` from the disk) need the memory operand's
segment and address, the count and DF: the fast path declines them and the emulator decodes
the bytes. Few exits, but they carry every byte of fw_cfg's files and of the disk's sectors.
"""


@exercise(
    "08_2",
    "Which exits of EXCERPT_08_2 can the fast path take (from the exit record alone)? Answer "
    "the letters.",
    _SOLUTION_08_2,
    hint="The fast path declines one kind of I/O instruction. Which mnemonics are that kind?",
    ask=[Ask("fast path", {e[0]: f"{e[0]}) {e[1]}" for e in _EXCERPT}, several=True)],
    given=EXCERPT_08_2,
)
def ex_08_2(answer) -> Verdict:
    items = [answer] if isinstance(answer, str) else list(answer) if answer is not None else []
    got = set()
    for item in items:
        for letter in as_word(item, "with letters").replace(",", " ").split():
            if letter not in {e[0] for e in _EXCERPT}:
                raise AnswerError(f"Answer letters a–f from EXCERPT_08_2; got {item!r}.")
            got.add(letter)
    if got == _FAST_08_2:
        return right("the IN/OUT exits; the two REP string exits go to the emulator.")
    strings = got - _FAST_08_2
    if strings:
        return wrong(f"{', '.join(sorted(strings))}: a string instruction needs its memory "
                     "operand, which the fast path never reads.")  # fmt: skip
    return wrong("Some IN/OUT exits are missing: DX-port exits (`in al, dx`) take the fast "
                 "path too; the record carries the port either way.")  # fmt: skip


# -- 08.3: the fast path's gain on the whole boot ---------------------------------------------

GIVEN_08_3 = {  # data/bench/boot.json (bench_boot.py --rounds 5, AMD EPYC, 2 shared cores)
    "handling_share": 0.22,  # of the emulate boot's CPU time, Hypervisor.handle (0.22 of 0.97 s)
    "cheaper": 2.2,  # emulate / fast cost of handling one exit (34.4 / 15.3 µs)
    "string_share": 0.004,  # of the exits: string I/O, which stays on the emulator (25/6268)
}
_G = GIVEN_08_3
SAVED_08_3 = _G["handling_share"] * (1 - _G["string_share"]) * (1 - 1 / _G["cheaper"])

_SOLUTION_08_3 = f"""
Amdahl's law: only the part that changes shrinks.
  share of the boot spent handling exits       h = {_G["handling_share"]:.0%}
  of that, non-string exits (the fast path's)   1 − s = {1 - _G["string_share"]:.1%}
  saved on each of them, k = {_G["cheaper"]}          1 − 1/k = {1 - 1 / _G["cheaper"]:.0%}
  saved = h × (1 − s) × (1 − 1/k) = {SAVED_08_3:.3f}, about {SAVED_08_3:.0%} of the boot.
The rest of the boot (the guest CPU itself, stopping and resuming it) is paid on both paths.
The seed's IDE benchmark gained only 4–5 %: there the disk's exits were device-model round
trips to qemu-dm, which both paths pay, so h was small for the exits the fast path could take.
"""


@exercise(
    "08_3",
    f"Measured here (bench/bench_boot.py, CPU time, medians of 5): handling exits is "
    f"{GIVEN_08_3['handling_share']:.0%} of the emulate path's boot; the fast path handles a "
    f"non-string exit {GIVEN_08_3['cheaper']}× more cheaply; {GIVEN_08_3['string_share']:.1%} "
    "of the exits are string I/O, which stay on the emulator. What fraction of the boot's time "
    "does the fast path save?",
    _SOLUTION_08_3,
    hint="Amdahl: the saving applies to the handling share only, and there to non-string exits.",
    ask=[Ask("fraction saved", placeholder="e.g. 0.1 or 10 %")],
)
def ex_08_3(answer) -> Verdict:
    from .ch06 import as_number

    x = as_number(answer, "The fraction saved")
    if x > 1.5:
        x /= 100  # a percentage written without the sign
    if abs(x - SAVED_08_3) <= 0.015:
        return right(f"{SAVED_08_3:.1%}: the handling share is all the fast path can shrink.")
    whole = (1 - _G["string_share"]) * (1 - 1 / _G["cheaper"])
    if abs(x - whole) <= 0.02:
        return wrong("That would be the saving if handling exits were the whole boot. Only "
                     f"{_G['handling_share']:.0%} of it is.")  # fmt: skip
    if abs(x - _G["handling_share"] / _G["cheaper"]) <= 0.015:
        return wrong("That is what handling still costs on the fast path; the question asks "
                     "what it saves.")  # fmt: skip
    return wrong(
        f"Multiply the handling share by the non-string share and by 1 − 1/{_G['cheaper']}."
    )
