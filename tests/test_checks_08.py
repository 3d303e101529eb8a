"""Chapter 08's exercises, judged against answers worked out here: the fast-path letters from
capstone's reading of the excerpt's bytes, the Amdahl saving from a time budget rebuilt
piece by piece, the busiest device from a boot's own counts."""

import re

import pytest
from capstone import CS_ARCH_X86, CS_MODE_32, Cs

from hvmio_lab.checks import EXCERPT_08_2, GIVEN_08_3
from hvmio_lab.checks.common import EXERCISES
from hvmio_lab.firmware import SeabiosMissing, boot


def judge(key, *answer):
    return EXERCISES[key].judge(*answer)


def test_08_2_right_letters_are_the_non_string_instructions_capstone_sees():
    md = Cs(CS_ARCH_X86, CS_MODE_32)
    fast = []
    for line in EXCERPT_08_2.splitlines()[1:]:
        letter, rest = line.strip().split(")", 1)
        code = bytes.fromhex(re.match(r"\s*((?:[0-9a-f]{2} )+)", rest).group(1))
        insn = next(md.disasm(code, 0, 1))
        if not insn.mnemonic.split()[-1].startswith(("ins", "outs")):
            fast.append(letter)
    assert len(fast) == 4
    assert judge("08_2", fast).ok
    assert judge("08_2", " ".join(fast)).ok
    assert not judge("08_2", [*fast, "b"]).ok  # rep insb is string I/O
    assert not judge("08_2", fast[:2]).ok
    assert "letters a–f" in judge("08_2", ["z"]).message


def test_08_3_amdahl_from_a_rebuilt_time_budget():
    g = GIVEN_08_3
    handling = g["handling_share"]  # of an emulate boot lasting 1
    string, other = handling * g["string_share"], handling * (1 - g["string_share"])
    fast_boot = (1 - handling) + string + other / g["cheaper"]
    saved = 1 - fast_boot
    assert judge("08_3", saved).ok
    assert judge("08_3", f"{saved * 100:.1f} %").ok
    assert not judge("08_3", (1 - 1 / g["cheaper"])).ok  # as if handling were all of it
    assert not judge("08_3", 0.5).ok


def test_08_1_the_busiest_device_after_the_debug_console_is_right():
    try:
        counts = boot().by_device
    except SeabiosMissing as e:
        pytest.skip(str(e))
    (first, _), (second, _) = counts.most_common(2)
    assert first == "debugcon"  # the premise the question states
    assert judge("08_1", second).ok
    assert not judge("08_1", "ata").ok
    assert "Name one of" in judge("08_1", "floppy").message
