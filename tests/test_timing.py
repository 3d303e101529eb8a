"""timing.measure and its Table: the shape promised, on a small N (not a timing test)."""

from __future__ import annotations

import dataclasses

import pytest

from hvmio_lab import timing
from hvmio_lab.outcome import STAGES


@pytest.fixture(scope="module")
def stream_table():
    return timing.measure("pm_timer", exits=4, warmup=1)


def test_stream_table_has_one_row_per_exit_stage_and_run(stream_table):
    runs = {(s.vendor, s.path) for s in stream_table}
    assert runs == {("svm", "fast"), ("svm", "emulate"), ("vmx", "fast"), ("vmx", "emulate")}
    for vendor, path in runs:
        rows = stream_table.where(vendor=vendor, path=path)
        assert {s.exit for s in rows} == set(range(4))
        assert len({(s.exit, s.stage) for s in rows}) == len(rows)  # no stage twice per exit
        expected = (
            {"exit", "decode", "device", "writeback"}
            if path == "fast"
            else {"exit", "fetch", "decode", "device"}
        )  # the emulator's device stage includes writeback
        assert {s.stage for s in rows} == expected
    assert all(isinstance(s.ns, int) and s.ns >= 0 for s in stream_table)
    assert all(s.workload == "pm_timer" and s.taken == s.path for s in stream_table)


def test_table_is_immutable_and_converts_to_dicts(stream_table):
    with pytest.raises(dataclasses.FrozenInstanceError):
        stream_table.rows = ()
    first = next(iter(stream_table))._asdict()
    assert set(first) == {"workload", "vendor", "path", "taken", "exit", "stage", "ns"}
    assert len(stream_table) == len(stream_table.rows)
    assert "pm_timer" in repr(stream_table)


def test_summaries(stream_table):
    medians = stream_table.stage_medians()
    assert list(medians) == ["svm/fast", "svm/emulate", "vmx/fast", "vmx/emulate"]
    assert medians["svm/fast"]["fetch"] == 0  # an exit without the stage counts 0
    assert stream_table.stages() == list(STAGES)  # in pipeline order, every stage seen
    totals = stream_table.exit_totals()
    assert all(len(run) == 4 for run in totals.values())
    assert stream_table.ratio("svm") > 0
    text = stream_table.summary()
    assert "svm/emulate" in text and "total" in text


def test_runs_interleave_exit_by_exit(monkeypatch):
    """Each round gives every run one exit before any run gets its next (A B A B …)."""
    order = []
    real_step = timing.StreamRunner.step

    def spy(self):
        order.append((self.hypervisor.vendor, self.hypervisor.path))
        return real_step(self)

    monkeypatch.setattr(timing.StreamRunner, "step", spy)
    timing.measure("pm_timer", vendors=["svm"], exits=3, warmup=0)
    assert order == [("svm", "fast"), ("svm", "emulate")] * 3


def test_mixed_stream_takes_each_instruction_in_turn():
    table = timing.measure(["pm_timer", "uart_lsr", "ata_rep_insw"], vendors=["vmx"],
                           paths=["fast"], exits=6, warmup=0)  # fmt: skip
    taken = [s.taken for s in table if s.stage == "exit"]
    assert taken == ["fast", "fast", "emulate"] * 2  # rep insw is declined to the emulator
    assert table.rows[0].workload == "pm_timer+uart_lsr+ata_rep_insw"


def test_guest_program_measures_and_restarts_after_hlt():
    table = timing.measure("uart_hello", vendors=["svm"], paths=["fast"], exits=40, warmup=0)
    exits = {s.exit for s in table}
    assert exits == set(range(40))  # uart_hello takes 37 exits, so the guest was restarted
    assert {s.stage for s in table} >= {"exit", "decode", "device"}


def test_progress_flag_runs_with_tqdm():
    table = timing.measure("pm_timer", vendors=["svm"], paths=["fast"], exits=2, warmup=0,
                           progress=True)  # fmt: skip
    assert len({s.exit for s in table}) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"workload": "pm_timer", "exits": 0}, "at least 1"),
        ({"workload": "pm_timer", "vendors": []}, "at least one vendor"),
        ({"workload": ["pm_timer", "nope"]}, "unknown model-only stream"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        timing.measure(**kwargs)


def test_unknown_guest_program_names_the_choices():
    from hvmio_lab.errors import HvmioError

    with pytest.raises(HvmioError, match="port_hammer"):
        timing.measure("no_such_program", exits=1)


def test_workloads_lists_programs_and_streams():
    names = timing.workloads()
    assert {"port_hammer", "pmtimer_poll", "ata_read", "uart_hello"} <= set(names)
    assert set(timing.STREAMS) <= set(names)


def test_machine_info_names_the_machine():
    info = timing.machine_info()
    assert info["cores"] >= 1 and info["python"].split()[0] in ("CPython", "PyPy")
    assert str(info["cores"]) in timing.machine_label(info)
