"""Real guest code on a real CPU emulator (unicorn), exiting to the hypervisor like hardware.

- ``programs``: the shipped guest programs (``Program``, ``load_program``, ``programs``);
- ``cpu``: the Machine's view of unicorn's registers, with true segment bases (``UnicornCpu``);
- ``loop``: the VMRUN/#VMEXIT loop (``Guest``, ``RunResult``) and why it traps as it does;
- ``realmode``: real-mode ``int n`` through the IVT, which unicorn does not do.

One source of truth: guest memory is the Machine's bytearray, which unicorn maps directly
(``mem_map_ptr``), so the CPU and the exit paths see every byte at once.
"""

from .loop import EXIT_QUANTUM_NS, INSTRUCTION_LIMIT, Guest, RunResult
from .programs import GUESTS, Program, load_program, programs

__all__ = ["EXIT_QUANTUM_NS", "GUESTS", "INSTRUCTION_LIMIT", "Guest", "Program", "RunResult",
           "load_program", "programs"]  # fmt: skip
