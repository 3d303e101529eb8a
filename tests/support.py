"""Small builders shared by the path tests: a machine with code at RIP and scripted devices."""

from __future__ import annotations

from hvmio_lab import Machine

CODE_AT = 0x1000


def machine_with(code: bytes, mode: int = 64, rip: int = CODE_AT) -> Machine:
    """A bare machine (nothing on the bus) with ``code`` at CS:RIP (CS base 0)."""
    machine = Machine(mode)
    machine.memory.write(rip, code)
    machine.cpu.rip = rip
    return machine


class Scripted:
    """A test device: reads answer from a script (then all-zero), writes are kept in order."""

    name = "scripted"

    def __init__(self, answers=(), location="hypervisor"):
        self.answers = list(answers)
        self.location = location
        self.reads: list[tuple[int, int]] = []
        self.writes: list[tuple[int, int, int]] = []

    def read(self, port, size):
        self.reads.append((port, size))
        return self.answers.pop(0) if self.answers else 0

    def write(self, port, size, value):
        self.writes.append((port, size, value))


class Refusing(Scripted):
    """A device that cannot serve any access (as a handler returning UNHANDLEABLE)."""

    name = "refusing"

    def read(self, port, size):
        from hvmio_lab import DeviceError

        raise DeviceError(f"refusing {size}-byte read of {port:#x}")

    def write(self, port, size, value):
        from hvmio_lab import DeviceError

        raise DeviceError(f"refusing {size}-byte write to {port:#x}")
