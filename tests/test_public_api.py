"""The names the issues give for the public API, importable from the package itself."""

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
