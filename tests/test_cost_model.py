"""The cost model's data and arithmetic: the seed's three results, and a source per number.

These check the model, not any timing: the same data always gives the same figures.
"""

from __future__ import annotations

import json
import math

import pytest

from hvmio_lab import timing
from hvmio_lab.checks import ch06

K8 = "amd-k8-2010"


def _quantities(node, path=""):
    """Every object in the JSON that carries a "value", with where it sits."""
    if isinstance(node, dict):
        if "value" in node:
            yield path, node
        for key, child in node.items():
            if key != "value":
                yield from _quantities(child, f"{path}/{key}")
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _quantities(child, f"{path}[{i}]")


def _numbers_outside_quantities(node, path=""):
    if isinstance(node, bool):
        return
    if isinstance(node, int | float):
        yield path
    elif isinstance(node, dict):
        if "value" in node:
            return  # a quantity: checked by the other test
        for key, child in node.items():
            yield from _numbers_outside_quantities(child, f"{path}/{key}")
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _numbers_outside_quantities(child, f"{path}[{i}]")


def test_every_number_has_a_source_or_an_assumption():
    data = timing.cost_models()
    quantities = list(_quantities(data))
    assert len(quantities) >= 20
    for where, q in quantities:
        notes = [k for k in ("source", "assumed") if isinstance(q.get(k), str) and q[k].strip()]
        assert len(notes) == 1, f"{where}: needs exactly one of 'source' or 'assumed'"
        assert len(q[notes[0]]) >= 40, f"{where}: the note is too short to say why"
        if q.get("calibrated"):
            assert "assumed" in q and q["assumed"].startswith("Calibrated"), where
    stray = [p for p in _numbers_outside_quantities(data) if "/seed/range" not in p]
    assert stray == [], f"numbers without a source or an assumption: {stray}"


def test_every_profile_prices_every_stage():
    for name in timing.profiles():
        profile = timing.load_profile(name)
        assert set(profile.stages) == set(timing.MODEL_STAGES)
        assert profile.clock_hz > 1e8
        assert set(profile.notes) == {*timing.MODEL_STAGES, "clock_hz"}


def test_the_k8_profile_says_which_numbers_were_calibrated():
    notes = timing.load_profile(K8).notes
    calibrated = {s for s, q in notes.items() if q.calibrated}
    assert calibrated == {"fetch", "decode"}  # only the saving was fitted to the 66 %
    assert notes["exit_entry"].kind == "source" and "SplitX" in notes["exit_entry"].source


def test_the_nested_profile_comes_from_the_kvm_unit_tests_figures():
    nested = timing.load_profile("modern-nested")
    assert nested.stages["exit_entry"] == 13142  # cpuid, after the 2019 series
    assert nested.stages["exit_entry"] + nested.stages["device_handler"] == 13518  # inl_from_kernel
    assert nested.stages["exit_entry"] + nested.stages["device_model_round_trip"] == 44826  # qemu
    for stage in ("exit_entry", "device_handler", "device_model_round_trip"):
        assert "kvm-unit-tests" in nested.notes[stage].source or "IO_EXITS" in nested.notes[
            stage].source  # fmt: skip


def test_k8_reproduces_the_66_percent_within_two_points():
    p = timing.predict(K8, "port_hammer")
    assert p.intercept_ratio == pytest.approx(0.66, abs=0.02)
    # the fast path pays exit/entry, the record, the handler and the writeback; the emulator
    # pays the same plus fetch and decode (all from the profile's own stage table)
    s = timing.load_profile(K8).stages
    fast = s["exit_entry"] + s["record_read"] + s["device_handler"] + s["writeback"]
    assert p.intercept_cycles == {"fast": fast, "emulate": fast + s["fetch"] + s["decode"]}


def test_k8_reproduces_the_ide_gain_in_its_range():
    p = timing.predict(K8, "ide_read")
    assert 0.04 <= p.gain <= 0.05
    # the round trip dominates the exit, on both paths
    assert p.stages["fast"]["device_model_round_trip"] > 0.8 * p.cycles["fast"]


def test_k8_reproduces_the_pm_timer_gain_in_its_range():
    p = timing.predict(K8, "pmtimer_heavy")
    assert 0 < p.gain <= 0.05
    # the guest work comes from the assumed rate and clock: 2.6 GHz / 50,000 per second
    period = p.mix.guest_cycles + p.intercept_cycles["emulate"]
    assert period == pytest.approx(2.6e9 / 50_000)


def test_seed_table_rows_for_k8_are_all_in_range():
    rows = timing.seed_table(K8)
    assert [r.workload for r in rows] == ["port_hammer", "ide_read", "pmtimer_heavy"]
    assert all(r.in_range for r in rows)
    text = timing.format_seed_table(rows, K8)
    ratio, ide, pm = (timing.predict(K8, r.workload) for r in rows)
    assert f"{ratio.intercept_ratio:.1%}" in text
    assert f"{ide.gain:+.1%}" in text and f"{pm.gain:+.1%}" in text


def test_seed_table_with_measured_figures():
    rows = timing.seed_table(K8, {"port_hammer": (0.5, "somewhere")})
    assert rows[0].measured == 0.5 and rows[1].measured is None
    text = timing.format_seed_table(rows)
    assert "50.0%" in text and "somewhere" in text and "—" in text


def test_the_saving_is_fetch_plus_decode_only():
    """Amdahl: whatever the mix, emulate − fast = (non-string share) × (fetch + decode)."""
    profile = timing.load_profile(K8)
    saved = profile.stages["fetch"] + profile.stages["decode"]
    for eligible in (0.0, 0.3, 1.0):
        for device_model in (0.0, 0.5, 1.0):
            mix = timing.Mix.of(eligible, device_model, guest_cycles=1234)
            p = timing.predict(profile, mix)
            assert p.cycles["emulate"] - p.cycles["fast"] == pytest.approx(eligible * saved)
    no_fast = timing.predict(profile, timing.Mix.of(eligible=0.0))
    assert no_fast.speedup == 1.0  # string I/O only: nothing to save


def test_more_of_anything_unsaved_means_less_speedup():
    profile = timing.load_profile(K8)
    base = timing.predict(profile, timing.Mix()).speedup
    assert timing.predict(profile.with_stages(exit_entry=4000), timing.Mix()).speedup < base
    assert timing.predict(profile, timing.Mix(guest_cycles=10_000)).speedup < base
    assert timing.predict(profile, timing.Mix.of(1.0, 0.5)).speedup < base


def test_exit_entry_for_ratio_inverts_predict():
    x = timing.exit_entry_for_ratio(K8, 0.5)
    assert x == pytest.approx(690)
    edited = timing.load_profile(K8).with_stages(exit_entry=x)
    assert timing.predict(edited, "port_hammer").intercept_ratio == pytest.approx(0.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        timing.exit_entry_for_ratio(K8, 1.0)


def test_profiles_are_immutable_and_edits_are_copies():
    profile = timing.load_profile(K8)
    with pytest.raises(TypeError):
        profile.stages["fetch"] = 0
    before = profile.stages["fetch"]
    edited = profile.with_stages(fetch=0)
    assert before > 0 and profile.stages["fetch"] == before and edited.stages["fetch"] == 0
    with pytest.raises(ValueError, match="no stage"):
        profile.with_stages(warp_drive=1)
    with pytest.raises(ValueError, match="≥ 0"):
        profile.with_stages(fetch=-1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hypervisor": 0.5}, "add up to 1"),
        ({"hypervisor": 1.5, "device_model": -0.5}, "≥ 0"),
        ({"guest_cycles": -1}, "guest_cycles"),
    ],
)
def test_bad_mixes_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        timing.Mix(**kwargs)


def test_mix_of_splits_independent_shares():
    mix = timing.Mix.of(eligible=0.8, device_model=0.25, guest_cycles=5)
    assert mix.eligible == pytest.approx(0.8)
    assert mix.device_model_share == pytest.approx(0.25)
    assert math.isclose(mix.hypervisor_string, 0.75 * 0.2)
    with pytest.raises(ValueError, match="fraction"):
        timing.Mix.of(eligible=2)


def test_unknown_names_list_the_choices():
    with pytest.raises(ValueError, match="amd-k8-2010"):
        timing.load_profile("pentium-4")
    with pytest.raises(ValueError, match="port_hammer"):
        timing.workload_mix("tcp_stack")


def test_cost_models_returns_a_copy():
    data = timing.cost_models()
    data["profiles"].clear()
    assert timing.profiles()  # the cached file is untouched
    assert json.loads(timing.COST_MODELS.read_text())["profiles"]


def test_measured_seed_figures_from_a_bench_result():
    run = {"exits": 100, "seconds": 1.0}
    bench = {
        "machine": {"processor": "cpu", "cores": 2, "python": "CPython 3.11"},
        "load_average": [0.5, 0.5, 0.5],
        "guest": {
            "port_hammer": {"svm": {"fast": {"exits": 100, "seconds": 0.5}, "emulate": run}},
            "ata_read": {"svm": {"fast": {"exits": 26, "seconds": 0.9}, "emulate": run}},
            "pmtimer_poll": {"svm": {"fast": {"exits": 201, "seconds": 0.8}, "emulate": run}},
        },
    }
    figures = timing.measured_seed_figures(bench, vendors=["svm"])
    assert figures["port_hammer"][0] == pytest.approx(0.5)
    assert figures["ide_read"][0] == pytest.approx(1 / 0.9 - 1)
    assert figures["pmtimer_heavy"][0] == pytest.approx(0.25)
    assert "cpu, 2 cores" in figures["port_hammer"][1] and "load 0.5" in figures["ide_read"][1]
    bench["guest"] = {p: {**runs, "vmx": runs["svm"]} for p, runs in bench["guest"].items()}
    pooled = timing.measured_seed_figures(bench)
    assert pooled["ide_read"][0] == pytest.approx(figures["ide_read"][0])  # same runs twice
    assert "svm+vmx" in pooled["ide_read"][1]


def test_load_bench_is_none_when_missing(tmp_path):
    assert timing.load_bench(tmp_path / "nothing.json") is None


# -- chapter 06 exercises: the model's arithmetic, checked ------------------------------------


def test_exercise_answers_follow_the_data():
    one, two, half = ch06.SPEEDUP_1, ch06.SPEEDUP_2, ch06.HALF_X
    assert one == pytest.approx(1.8)
    assert two == pytest.approx(33200 / 31600)
    assert half == pytest.approx(timing.exit_entry_for_ratio(K8, 0.5))


@pytest.mark.parametrize(
    ("key", "answer", "ok", "hint"),
    [
        ("06_1", 1.8, True, ""),
        ("06_1", "1.80", True, ""),
        ("06_1", 2000 / 3600, False, "fast / emulate"),
        ("06_1", 2100 / 500, False, "both paths"),
        ("06_1", 0.8, False, "speedup − 1"),
        ("06_1", "fast", False, "number"),
        ("06_2", 1.0506, True, ""),
        ("06_2", 1.8, False, "both sums"),
        ("06_2", 33200 / 2000, False, "just like the emulator"),
        ("06_3", 690, True, ""),
        ("06_3", 2000, False, "66 %"),
        ("06_3", 1390, False, "fetch + decode"),
        ("06_3", 0.5, False, "not a ratio"),
    ],
)
def test_exercise_verdicts(key, answer, ok, hint):
    from hvmio_lab.checks import EXERCISES

    verdict = EXERCISES[key].judge(answer)
    assert verdict.ok is ok
    assert hint in verdict.message


def test_practice_is_seeded_and_its_answers_check():
    a, b = ch06.practice_06(seed=7, n=20), ch06.practice_06(seed=7, n=20)
    assert a.text() == b.text()
    assert ch06.practice_06(seed=8, n=20).text() != a.text()
    for i, q in enumerate(a.questions, 1):
        assert a.judge(i, q.answer).ok
        if "rep insw" in q.prompt:
            assert q.answer == "1.00"


def test_bench_ratios_are_fast_over_emulate_time_per_exit():
    def runs(fast, emulate):
        return {v: {"fast": {"exits_per_s": fast}, "emulate": {"exits_per_s": emulate}}
                for v in ("svm", "vmx")}  # fmt: skip

    bench = {"model_only": runs(200_000, 100_000), "guest": {"port_hammer": runs(20_000, 16_000)}}
    ratios = timing.bench_ratios(bench)
    assert ratios["model-only"] == {"svm": 0.5, "vmx": 0.5}
    assert ratios["unicorn"]["svm"] == pytest.approx(0.8)


# -- the model against the JSON's own numbers, by Amdahl's law (IO_EXITS.md §1 and §6) -------


def _amdahl(stages: dict, mix: dict, guest: float) -> tuple[float, float]:
    """Cycles per exit (fast, emulate), worked out here from the raw stage costs: every exit
    pays exit/entry, the record read, the writeback and its device (the handler in the
    hypervisor, or the round trip to the device model); the emulator also pays fetch and
    decode on every exit, the fast path only on the string exits it declines."""
    device = ((mix["hypervisor"] + mix["hypervisor_string"]) * stages["device_handler"]
              + (mix["device_model"] + mix["device_model_string"])
              * stages["device_model_round_trip"])  # fmt: skip
    common = stages["exit_entry"] + stages["record_read"] + stages["writeback"] + device
    string = mix["hypervisor_string"] + mix["device_model_string"]
    saved = stages["fetch"] + stages["decode"]
    return common + string * saved + guest, common + saved + guest


@pytest.mark.parametrize("profile", ["amd-k8-2010", "modern-nested"])
def test_predict_follows_amdahl_from_the_raw_json(profile):
    raw = json.loads(timing.COST_MODELS.read_text())  # the file, not the loader
    data = raw["profiles"][profile]
    stages = {name: q["value"] for name, q in data["stages"].items()}
    for name, workload in raw["workloads"].items():
        mix = workload["mix"]["value"]
        if "exit_rate_hz" in workload:  # the guest's work fills the period the rate leaves
            period = data["clock_hz"]["value"] / workload["exit_rate_hz"]["value"]
            guest = period - _amdahl(stages, mix, 0)[1]
        else:
            guest = workload["guest_cycles"]["value"]
        fast, emulate = _amdahl(stages, mix, guest)
        p = timing.predict(profile, name)
        assert p.cycles["fast"] == pytest.approx(fast), name
        assert p.cycles["emulate"] == pytest.approx(emulate), name
        assert p.speedup == pytest.approx(emulate / fast), name
        assert p.intercept_ratio == pytest.approx((fast - guest) / (emulate - guest)), name
    if profile == "amd-k8-2010":  # the seed's three results, from the same arithmetic
        hammer = _amdahl(stages, raw["workloads"]["port_hammer"]["mix"]["value"], 0)
        assert hammer[0] / hammer[1] == pytest.approx(0.66, abs=0.02)
        ide = raw["workloads"]["ide_read"]
        fast, emulate = _amdahl(stages, ide["mix"]["value"], ide["guest_cycles"]["value"])
        low, high = ide["seed"]["range"]
        assert low <= emulate / fast - 1 <= high


def test_the_shipped_bench_snapshot_loads_and_load_bench_takes_its_path():
    """Chapter 06 reads the snapshot that ships with the package (data/bench/paths.json),
    wherever the package is installed; there is no repo-relative default any more."""
    bench = timing.load_bench(timing.BENCH_SNAPSHOT)
    assert bench is not None and {"machine", "model_only", "guest"} <= set(bench)
    assert set(timing.bench_ratios(bench)) == {"model-only", "unicorn"}
    with pytest.raises(TypeError):
        timing.load_bench()
