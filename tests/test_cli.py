"""The hvmio-lab command: field tables out, one-line errors and status 2 for bad input."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hvmio_lab.cli import main

SCRIPT = Path(sys.executable).with_name("hvmio-lab")


def run(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        status = main(list(argv))
        raise SystemExit(status)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def field_rows(out: str) -> dict[str, list[str]]:
    """The table rows by field name (the first row for a repeated name such as reserved)."""
    table = {}
    for line in out.splitlines():
        cells = line.split()
        if len(cells) >= 3 and cells[0][0].isdigit():
            table.setdefault(cells[1], cells)
    return table


def test_decode_svm_prints_table_and_access(capsys):
    code, out, err = run(capsys, "decode", "svm", "0x1f480241", "--rip", "0x1000",
                         "--next-rip", "0x1001")  # fmt: skip
    assert code == 0 and err == ""
    rows = field_rows(out)
    assert rows["TYPE"][:3] == ["0", "TYPE", "0b1"]
    assert rows["PORT"][:3] == ["31:16", "PORT", "0x1f48"]
    assert rows["SZ"][:3] == ["6:4", "SZ", "0b100"]
    assert rows["A"][:3] == ["9:7", "A", "0b100"]
    assert "IN 32-bit port 0x1f48" in out
    assert "length 1" in out and "0x1001" in out


def test_decode_vmx_prints_table_and_access(capsys):
    code, out, err = run(capsys, "decode", "vmx", "0x1f480008", "--length", "1")
    assert code == 0 and err == ""
    rows = field_rows(out)
    assert rows["size"][:3] == ["2:0", "size", "0b000"]
    assert rows["direction"][:3] == ["3", "direction", "0b1"]
    assert "IN 8-bit port 0x1f48" in out


def test_decode_vmx_with_instruction_information(capsys):
    # rep outsb, 32-bit addressing, DS: info = (1 << 7) | (3 << 15) = 0x18080
    code, out, _ = run(capsys, "decode", "vmx", "0x3f80030", "--length", "2", "--rip", "0x10",
                       "--info", "0x18080")  # fmt: skip
    assert code == 0
    assert "rep OUTS 8-bit port 0x03f8" in out
    assert "address size 32" in out and "segment DS" in out
    assert "0x12" in out  # next RIP


def one_line_error(code, out, err, *words):
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.endswith("\n"), err
    for word in words:
        assert word in err, err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["decode", "svm", "0x1f480243", "--next-rip", "1"], ["reserved", "1"]),
        (["decode", "svm", "0x1f480261", "--next-rip", "1"], ["SZ", "6:4"]),
        (["decode", "svm", "0x1f481a41", "--next-rip", "1"], ["SEG"]),
        (["decode", "svm", "0x1f480241", "--rip", "5", "--next-rip", "5"], ["EXITINFO2 − RIP"]),
        (["decode", "vmx", "0x1f48000a", "--length", "1"], ["size", "2"]),
        (["decode", "vmx", "0x1f48000b", "--length", "16"], ["length", "16"]),
        (["decode", "vmx", "0x1f480088", "--length", "1"], ["reserved", "15:7"]),
        (["decode", "svm", "0x1f48zz", "--next-rip", "1"], ["not a number", "0x1f48zz"]),
        (["decode", "vmx", "12x", "--length", "1"], ["not a number"]),
        (["decode", "vmx", "0x1f480008"], ["--length"]),
        (["decode", "svm", "0x1f480241"], ["--next-rip"]),
        (["decode", "arm", "0x0"], ["arm"]),
        (["decode"], ["svm"]),
        ([], ["COMMAND"]),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_status_2(capsys, argv, words):
    one_line_error(*run(capsys, *argv), *words)


def test_help_lists_the_decode_command(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "decode" in out


def test_console_script_end_to_end():
    exe = str(SCRIPT) if SCRIPT.exists() else shutil.which("hvmio-lab")
    assert exe, "the hvmio-lab console script is not installed (pip install -e . makes it)"
    ok = subprocess.run([exe, "decode", "vmx", "0x600048", "--length", "2"],
                        capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ok.returncode == 0 and "IN 8-bit port 0x0060" in ok.stdout
    bad = subprocess.run([exe, "decode", "vmx", "0x60004a", "--length", "2"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and bad.stdout == ""
    assert len(bad.stderr.splitlines()) == 1 and "size" in bad.stderr


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0
    from importlib.metadata import version

    assert out.split() == ["hvmio-lab", version("hvmio_lab")]  # what pip installed, not __init__


@pytest.mark.parametrize("encoding", ["ascii", "latin-1", "cp437"])
def test_a_terminal_that_cannot_show_unicode_gets_ascii_not_a_traceback(encoding):
    exe = str(SCRIPT) if SCRIPT.exists() else shutil.which("hvmio-lab")
    env = {**os.environ, "PYTHONIOENCODING": encoding}
    ok = subprocess.run([exe, "decode", "svm", "0x1f480241", "--rip", "0x1000", "--next-rip",
                         "0x1001"], capture_output=True, env=env, timeout=60)  # fmt: skip
    assert ok.returncode == 0 and ok.stderr == b"", ok.stderr
    assert b"RIP:      0x1000 -> resume at 0x1001" in ok.stdout  # → spelled in ASCII
    bad = subprocess.run([exe, "decode", "svm", "0x1f480241", "--rip", "5", "--next-rip", "5"],
                         capture_output=True, env=env, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and bad.stdout == b""
    assert bad.stderr.count(b"\n") == 1 and b"EXITINFO2 - RIP" in bad.stderr  # − spelled too
