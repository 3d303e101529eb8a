"""The names the issues give for the public API, importable from the package itself, and an
`import hvmio_lab` that costs nothing until a name is used."""

import subprocess
import sys

import pytest

import hvmio_lab


def test_the_issues_public_names_are_exported():
    for name in (
        "SvmIoExit", "VmxIoExit", "IoAccess", "ExitInfoError",  # issue 2
        "Machine",  # issue 3
        "decode_instruction", "IoInstruction", "InvalidInstruction",  # issue 6
        "Hypervisor",  # issue 7
        "Guest",  # issue 8
    ):  # fmt: skip
        assert name in hvmio_lab.__all__ and hasattr(hvmio_lab, name), name


def test_one_exit_through_the_top_level_names():
    machine = hvmio_lab.Machine.pc(64)
    machine.memory.write(0x1000, b"\xec")  # in al, dx
    machine.cpu.rip, machine.cpu.rdx = 0x1000, 0x3FD  # the UART's line status register
    outcome = hvmio_lab.Hypervisor(machine, vendor="vmx", path="fast").step()
    assert outcome.path == "fast" and machine.cpu.rax == 0x60  # LSR idles at THRE | TEMT
    result = hvmio_lab.Guest("uart_hello", vendor="svm", path="emulate").run()
    assert result.success and result.uart_text == "hello, hypervisor\n"


def fresh_python(code: str) -> str:
    """Run ``code`` in a new interpreter (this one has long since imported everything)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)  # fmt: skip
    return done.stdout.strip()


HEAVY = ("unicorn", "capstone", "ipywidgets", "matplotlib")


def heavy_after(statement: str) -> list[str]:
    """Which heavy dependencies a fresh interpreter has loaded after ``statement``."""
    listing = f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    return [m for m in fresh_python(f"import sys; {statement}; {listing}").split(",") if m]


def test_import_hvmio_lab_loads_no_heavy_dependency():
    assert heavy_after("import hvmio_lab") == []


def test_a_name_loads_what_it_needs_and_only_that():
    # An exit record needs neither the CPU emulator nor the disassembler ...
    assert heavy_after("from hvmio_lab import SvmIoExit, EXITINFO1") == []
    # ... a guest needs unicorn, and gets it on first use.
    assert "unicorn" in heavy_after("from hvmio_lab import Guest")


def test_every_exported_name_resolves_and_unknown_names_raise():
    for name in hvmio_lab.__all__:
        value = getattr(hvmio_lab, name)
        assert name.isupper() or value.__name__ == name, name  # constants are Layouts
    assert set(hvmio_lab.__all__) <= set(dir(hvmio_lab))
    with pytest.raises(AttributeError, match="no_such_thing"):
        hvmio_lab.no_such_thing  # noqa: B018
