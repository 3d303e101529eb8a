"""Chapter 06, timing: Amdahl's law on one exit, and the exit cost behind the seed's 66 %.

The fast path saves fetch + decode and nothing else: exit/entry, the record read, the device
(or the device-model round trip) and writeback are paid on both paths.
"""

from __future__ import annotations

import random

from ..timing import DEFAULT_PROFILE, exit_entry_for_ratio, load_profile
from .common import AnswerError, Ask, Practice, Question, Verdict, exercise, right, wrong

# Made-up stage costs for exercises 06.1 and 06.2 (cycles): round numbers, not a real machine.
GIVEN = {
    "exit_entry": 1500,
    "record_read": 50,
    "fetch": 700,
    "decode": 900,
    "device_handler": 400,
    "writeback": 50,
}
ROUND_TRIP = 30_000
LABELS = {
    "exit_entry": "exit + entry",
    "record_read": "record read",
    "fetch": "fetch",
    "decode": "decode",
    "device_handler": "device handler",
    "writeback": "writeback",
}
GIVEN_TEXT = ", ".join(f"{LABELS[k]} {v:,}" for k, v in GIVEN.items())


def as_number(answer, what: str) -> float:
    """A number; text such as '1.8' or '66 %' is read too (a percentage becomes a fraction)."""
    if isinstance(answer, bool) or answer is None:
        raise AnswerError(f"{what} is a number such as 1.25; got {answer!r}.")
    if isinstance(answer, int | float):
        return float(answer)
    if isinstance(answer, str):
        text = answer.strip().replace(",", "").replace("_", "")
        try:
            return float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            pass
    raise AnswerError(f"{what} is a number such as 1.25; got {answer!r}.")


def _costs(device: float) -> tuple[float, float]:
    """(fast, emulate) cycles of one exit with the GIVEN costs and ``device`` for the device."""
    g = GIVEN
    fast = g["exit_entry"] + g["record_read"] + device + g["writeback"]
    return fast, fast + g["fetch"] + g["decode"]


def _near(x: float, target: float, tolerance: float) -> bool:
    return abs(x - target) <= tolerance


# -- 06.1: the speedup of one exit --------------------------------------------------------------

_FAST_1, _EMULATE_1 = _costs(GIVEN["device_handler"])
SPEEDUP_1 = _EMULATE_1 / _FAST_1

_SOLUTION_06_1 = f"""
Add up what each path pays for one exit (cycles):
  emulator : exit+entry 1,500 + record 50 + fetch 700 + decode 900 + device 400 + writeback 50
           = {_EMULATE_1:,.0f}
  fast path: the same without fetch and decode = {_FAST_1:,.0f}
  speedup  = emulate / fast = {_EMULATE_1:,.0f} / {_FAST_1:,.0f} = {SPEEDUP_1:.2f}
(Put the other way, the fast path takes {_FAST_1 / _EMULATE_1:.0%} of the emulator's time: the
seed's kind of figure.) In code:
  p = timing.load_profile().with_stages(exit_entry=1500, record_read=50, fetch=700,
                                        decode=900, device_handler=400, writeback=50)
  timing.predict(p, timing.Mix()).speedup
"""


@exercise(
    "06_1",
    f"Stage costs in cycles: {GIVEN_TEXT}. The device lives in the hypervisor. What is the "
    "fast path's speedup for one exit (emulator time / fast-path time)?",
    _SOLUTION_06_1,
    hint="Write down each path's sum. Which stages does the fast path skip?",
    ask=[Ask("speedup", placeholder="e.g. 1.25")],
)
def ex_06_1(answer) -> Verdict:
    x = as_number(answer, "The speedup")
    if _near(x, SPEEDUP_1, 0.01):
        return right(
            f"{_EMULATE_1:,.0f} / {_FAST_1:,.0f} = {SPEEDUP_1:.2f}: fetch + decode were "
            f"{(_EMULATE_1 - _FAST_1) / _EMULATE_1:.0%} of the emulator's exit."
        )
    if _near(x, 1 / SPEEDUP_1, 0.01):
        return wrong(
            "That is fast / emulate, the fraction of time the fast path takes. The "
            "speedup is the other way round: emulate / fast."
        )
    if _near(x, SPEEDUP_1 - 1, 0.01) or _near(x, (SPEEDUP_1 - 1) * 100, 1):
        return wrong(
            "That is how much faster (speedup − 1). Give the ratio itself, emulate / fast."
        )
    no_exit = (_EMULATE_1 - GIVEN["exit_entry"]) / (_FAST_1 - GIVEN["exit_entry"])
    if _near(x, no_exit, 0.02):
        return wrong(
            "Exit + entry is paid by both paths: leave it in both sums. (Leaving it "
            "out is exactly why a handler-only benchmark overstates the gain.)"
        )
    if x > 10:
        return wrong("Give a ratio such as 1.25, not a percentage or a cycle count.")
    return wrong(
        "Sum all six stages for the emulator; the fast path pays the same minus "
        "fetch and decode. Then divide emulate by fast."
    )


# -- 06.2: the same exit to the device model ----------------------------------------------------

_FAST_2, _EMULATE_2 = _costs(ROUND_TRIP)
SPEEDUP_2 = _EMULATE_2 / _FAST_2

_SOLUTION_06_2 = f"""
The device-model round trip ({ROUND_TRIP:,} cycles) replaces the 400-cycle handler, on both
paths:
  emulator : 1,500 + 50 + 700 + 900 + {ROUND_TRIP:,} + 50 = {_EMULATE_2:,.0f}
  fast path: 1,500 + 50 + {ROUND_TRIP:,} + 50             = {_FAST_2:,.0f}
  speedup  = {_EMULATE_2:,.0f} / {_FAST_2:,.0f} = {SPEEDUP_2:.3f}, about {SPEEDUP_2 - 1:.0%} faster.
The same 1,600 cycles are saved, but now out of {_EMULATE_2:,.0f}: Amdahl's law. This is why the
seed's IDE disk, served by qemu-dm, gained only 4-5 %.
"""


@exercise(
    "06_2",
    f"Same costs as 06.1, but the device is in the device model: a {ROUND_TRIP:,}-cycle round "
    "trip replaces the 400-cycle handler. What is the speedup now?",
    _SOLUTION_06_2,
    hint="Who pays the round trip: the fast path, the emulator, or both?",
    ask=[Ask("speedup", placeholder="e.g. 1.25")],
)
def ex_06_2(answer) -> Verdict:
    x = as_number(answer, "The speedup")
    if _near(x, SPEEDUP_2, 0.002):
        return right(
            f"{SPEEDUP_2:.3f}: the same 1,600 cycles saved, out of {_EMULATE_2:,.0f}. "
            "The round trip dilutes the saving (the seed's IDE result)."
        )
    if _near(x, SPEEDUP_1, 0.01):
        return wrong(
            "That is 06.1's answer. The round trip is paid by both paths: add it to both sums."
        )
    if _near(x, 1 / SPEEDUP_2, 0.002):
        return wrong("That is fast / emulate. The speedup is emulate / fast.")
    if _near(x, SPEEDUP_2 - 1, 0.002) or _near(x, (SPEEDUP_2 - 1) * 100, 0.2):
        return wrong("That is speedup − 1. Give the ratio itself, emulate / fast.")
    only_emulator = (_EMULATE_2) / (_FAST_1)
    if _near(x, only_emulator, 0.05):
        return wrong(
            "The fast path does not skip the device: it waits for the device model "
            "just like the emulator."
        )
    return wrong("Replace 400 by 30,000 in both sums, then divide emulate by fast.")


# -- 06.3: the exit/entry cost that makes the fast path 50 % ------------------------------------

_K8 = load_profile(DEFAULT_PROFILE)
HALF_X = exit_entry_for_ratio(_K8, 0.5)
_K8_REST = sum(_K8.stages[s] for s in ("record_read", "device_handler", "writeback"))
_K8_SAVED = _K8.stages["fetch"] + _K8.stages["decode"]

_SOLUTION_06_3 = f"""
In the AMD K8 profile the fast path pays X + record read {_K8.stages["record_read"]:,.0f} +
device handler {_K8.stages["device_handler"]:,.0f} + writeback {_K8.stages["writeback"]:,.0f}
= X + {_K8_REST:,.0f}; the emulator pays that plus fetch + decode = {_K8_SAVED:,.0f}.
  (X + {_K8_REST:,.0f}) / (X + {_K8_REST:,.0f} + {_K8_SAVED:,.0f}) = 0.5
  X + {_K8_REST:,.0f} = {_K8_SAVED:,.0f}
  X = {HALF_X:,.0f} cycles
With the world switch at {_K8.stages["exit_entry"]:,.0f} cycles the ratio is 66 %: the exit itself
is the larger part of the fast path's time, and the fast path cannot touch it. In code:
timing.exit_entry_for_ratio("amd-k8-2010", 0.5).
"""


@exercise(
    "06_3",
    "In the AMD K8 profile (timing.load_profile('amd-k8-2010')), at what exit + entry cost "
    "(cycles) would the fast path take exactly 50 % of the emulator's intercept time?",
    _SOLUTION_06_3,
    hint="Try the TimingPanel's exit + entry slider, then solve (X + a) / (X + a + s) = 0.5.",
    ask=[Ask("exit + entry", placeholder="cycles")],
)
def ex_06_3(answer) -> Verdict:
    x = as_number(answer, "The exit + entry cost")
    if _near(x, HALF_X, 10):
        return right(
            f"{HALF_X:,.0f} cycles: the saving ({_K8_SAVED:,.0f}) would have to equal "
            f"everything else the fast path pays (X + {_K8_REST:,.0f})."
        )
    if _near(x, _K8.stages["exit_entry"], 10):
        return wrong(
            "That is the profile's own exit + entry, which gives 66 %. For 50 %, the "
            "exit has to be cheaper."
        )
    if _near(x, _K8_SAVED, 10):
        return wrong(
            "That is fetch + decode. The fast path pays more than the exit: the record "
            "read, the device handler and writeback too."
        )
    if 0 < x < 1:
        return wrong("The answer is a cost in cycles, not a ratio.")
    if x < 0:
        return wrong(
            "A cost cannot be negative. Set up (X + a) / (X + a + s) = 0.5 with the "
            "profile's stages."
        )
    return wrong(
        "Let X be exit + entry. Fast: X + the other stages it pays. Emulator: that "
        "plus fetch + decode. Set fast = half of emulate and solve."
    )


# -- seeded practice: speedups from stage costs -------------------------------------------------

HOW_06 = (
    "Give the speedup of the fast path for one exit (emulator time / fast-path time), "
    "to two decimals.\npractice.check(1, 1.25) marks one answer; practice.reveal(1) shows one"
    " worked answer."
)


def _speedup_question(rng: random.Random) -> Question:
    c = {
        "exit_entry": rng.randrange(5, 150) * 100,
        "record_read": rng.randrange(0, 11) * 10,
        "fetch": rng.randrange(2, 11) * 100,
        "decode": rng.randrange(3, 16) * 100,
        "writeback": rng.randrange(0, 11) * 10,
    }
    device_model = rng.random() < 0.3
    string = rng.random() < 0.15
    device = rng.randrange(10, 41) * 1000 if device_model else rng.randrange(1, 11) * 100
    where = "a device-model round trip" if device_model else "a device handler"
    insn = "rep insw (string I/O)" if string else "in eax, dx"
    costs = ", ".join(f"{LABELS[k]} {v:,}" for k, v in c.items())
    prompt = f"{insn}; {costs}; {where} {device:,}"
    fast = c["exit_entry"] + c["record_read"] + device + c["writeback"]
    emulate = fast + c["fetch"] + c["decode"]
    if string:
        fast = emulate  # the fast path declines string I/O: it runs the emulator too
    speedup = emulate / fast
    worked = f"emulate {emulate:,} / fast {fast:,}" + (
        " (string I/O: the fast path declines it)" if string else ""
    )

    def judge(answer) -> Verdict:
        x = as_number(answer, "The speedup")
        if _near(x, speedup, 0.006):
            return right(f"{speedup:.2f}")
        if string and x > 1.005:
            return wrong("String I/O never takes the fast path: both paths run the emulator.")
        if _near(x, 1 / speedup, 0.006):
            return wrong("That is fast / emulate; the speedup is emulate / fast.")
        return wrong(
            "Both paths pay exit + entry, the record read, the device and writeback; "
            "only the emulator pays fetch + decode."
        )

    return Question(prompt, f"{speedup:.2f}", worked, judge)


def practice_06(seed: int = 1, n: int = 5) -> Practice:
    """``n`` exits to price; the same ``seed`` always gives the same questions."""
    if not 1 <= n <= 100:
        raise AnswerError(f"n must be 1..100, got {n}")
    rng = random.Random(f"practice_06/{seed}")
    questions = [_speedup_question(rng) for _ in range(n)]
    return Practice("Practice 06: the speedup of one exit", seed, questions, HOW_06,
                    hint_text="Both paths pay exit + entry, the record read, the device and "
                    "writeback; only the emulator pays fetch + decode. String I/O never takes "
                    "the fast path.")
