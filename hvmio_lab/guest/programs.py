"""The guest programs shipped in data/guests and the catalogue that describes them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache

from .. import resources
from ..errors import HvmioError
from ..hardware import IO_INSTRUCTIONS, disassembler

GUESTS = resources.data("guests")


@dataclass(frozen=True)
class Program:
    """Guest code and what is known about it: where it loads, its stack, its success code.

    ``params`` carries a shipped program's facts from programs.json (message, ports, …);
    ``Guest.from_code`` makes a Program with empty params for a learner's own bytes.
    """

    name: str
    mode: int
    load: int
    stack: int
    code: bytes
    description: str
    success_post: int
    params: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def code_size(self) -> int:
        return self.params.get("code_size", len(self.code))

    def _sweep(self):
        """A capstone linear sweep of the code (data after the final HLT is left out)."""
        return disassembler(self.mode).disasm(self.code[: self.code_size], self.load)

    def listing(self) -> list[tuple[int, str, str]]:
        """(address, bytes, text) of a linear sweep, for display only (the stepper's listing).

        A sweep can be wrong (a jump into the middle of an instruction, data among code, code
        written at run time), so nothing that decides an exit uses it: the guest CPU traps
        every IN/OUT/INS/OUTS it really executes.
        """
        return [(i.address, i.bytes.hex(" "), f"{i.mnemonic} {i.op_str}".strip())
                for i in self._sweep()]  # fmt: skip

    def io_instructions(self) -> dict[int, str]:
        """Address → text of the I/O instructions the sweep finds (display only, as above)."""
        return {i.address: f"{i.mnemonic} {i.op_str}".strip()
                for i in self._sweep() if i.id in IO_INSTRUCTIONS}  # fmt: skip


@cache
def _catalogue() -> dict:
    return json.loads((GUESTS / "programs.json").read_text())


def programs() -> list[str]:
    return sorted(_catalogue())


def load_program(name: str) -> Program:
    meta = _catalogue().get(name)
    if meta is None:
        raise HvmioError(f"no guest program {name!r}; there are: {', '.join(programs())}")
    code = (GUESTS / f"{name}.bin").read_bytes()
    return Program(name, meta["mode"], meta["load"], meta["stack"], code,
                   meta["description"], meta["success_post"], meta["params"])  # fmt: skip
