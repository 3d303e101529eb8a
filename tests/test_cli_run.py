"""`hvmio-lab run`: a summary line and exits/s; one-line errors and status 2 for bad input."""

import re

import pytest

from hvmio_lab.cli import main
from hvmio_lab.guest import load_program


def run(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(list(argv)))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_run_prints_the_summary_and_exits_per_second(capsys):
    code, out, err = run(capsys, "run", "ata_read", "--vendor", "vmx", "--path", "fast")
    assert code == 0 and err == ""
    summary, rate = out.splitlines()
    assert summary.startswith("ata_read (vmx, fast): success after ")
    assert f"{load_program('ata_read').success_post:#x}" in summary
    assert "emulate" in summary and "fast" in summary  # rep insw declines the fast path
    assert re.fullmatch(r"[\d,]+ exits/s \(\d+ exits in [\d.]+ s, .*\)", rate)


def test_max_exits_stops_early(capsys):
    message = load_program("uart_hello").params["message"]
    code, out, _ = run(capsys, "run", "uart_hello", "--max-exits", "5")
    assert code == 0
    assert "uart_hello (svm, fast): stopped after 5 exits" in out
    assert repr(message[:2]) in out  # poll, write, poll, write, poll: two characters


def test_every_path_name_is_accepted(capsys):
    code, out, _ = run(capsys, "run", "uart_hello", "--path", "seed2010", "--vendor", "svm")
    assert code == 0 and "(svm, seed2010): success" in out


def test_unknown_program_is_one_line_and_status_2(capsys):
    code, out, err = run(capsys, "run", "no_such_program")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "no_such_program" in err and "uart_hello" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "uart_hello", "--vendor", "arm"],
        ["run", "uart_hello", "--path", "slow"],
        ["run", "uart_hello", "--max-exits", "0"],
        ["run", "uart_hello", "--max-exits", "many"],
        ["run"],
    ],
)
def test_bad_options_are_one_line_and_status_2(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "error" in err
