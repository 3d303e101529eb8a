"""The one set of helpers the path tests share: a machine with code at RIP, and a scripted
port device (plus one that refuses everything)."""

from __future__ import annotations

from hvmio_lab import DeviceError, Machine

CODE_AT = 0x1000


def machine_with(code: bytes, mode: int = 64, rip: int = CODE_AT, **registers: int) -> Machine:
    """A bare machine (nothing on the bus) with ``code`` at CS:RIP (CS base 0) and the given
    registers set, e.g. ``machine_with(b"\\xec", rdx=0x60)``."""
    machine = Machine(mode)
    machine.memory.write(rip, code)
    machine.cpu.rip = rip
    for name, value in registers.items():
        setattr(machine.cpu, name, value)
    return machine


class Scripted:
    """A test device: reads answer from a script (then ``then``), and every access is kept in
    order in ``log`` as ("in"/"out", port, size, value), the value cut to the access size as
    the bus carries it. The answer itself is returned as scripted, wider than asked if it is,
    so the masking of the bus (and of the emulator's direct calls) is what gets tested."""

    def __init__(self, answers=(), location="hypervisor", name="scripted", then=0):
        self.answers = list(answers)
        self.location = location
        self.name = name
        self.then = then
        self.log: list[tuple[str, int, int, int]] = []

    @property
    def reads(self) -> list[tuple[int, int]]:
        return [(port, size) for kind, port, size, _ in self.log if kind == "in"]

    @property
    def writes(self) -> list[tuple[int, int, int]]:
        return [(port, size, value) for kind, port, size, value in self.log if kind == "out"]

    def read(self, port, size):
        value = self.answers.pop(0) if self.answers else self.then
        self.log.append(("in", port, size, value & ((1 << (8 * size)) - 1)))
        return value

    def write(self, port, size, value):
        self.log.append(("out", port, size, value))


class Refusing(Scripted):
    """A device that cannot serve any access (as a handler returning UNHANDLEABLE)."""

    def __init__(self, location="hypervisor", name="refusing"):
        super().__init__((), location, name)

    def read(self, port, size):
        raise DeviceError(f"refusing {size}-byte read of {port:#x}")

    def write(self, port, size, value):
        raise DeviceError(f"refusing {size}-byte write to {port:#x}")
