"""Real-mode software interrupts through the IVT, which unicorn leaves to its user.

unicorn raises ``UC_HOOK_INTR`` for ``int n`` and does not vector through the interrupt
vector table in real mode. ``deliver`` does what the CPU does (SDM Vol. 2, INT n, real-address
mode): push FLAGS, CS and IP; clear IF, TF and AC; load CS:IP from the vector at IDTR.base + 4n.
"""

from __future__ import annotations

from unicorn import x86_const as ux

from ..errors import HvmioError

_IF, _TF, _AC = 1 << 9, 1 << 8, 1 << 18


def deliver(uc, memory: bytearray, vector: int, return_ip: int) -> None:
    """Vector ``int vector`` through the IVT; the guest returns (IRET) to CS:``return_ip``."""
    if uc.reg_read(ux.UC_X86_REG_CR0) & 1:
        raise HvmioError(f"int {vector:#x} in protected mode: only real-mode delivery "
                         "through the IVT is modelled")  # fmt: skip
    _, ivt, limit, _ = uc.reg_read(ux.UC_X86_REG_IDTR)
    entry = ivt + 4 * vector
    if 4 * vector + 3 > limit or entry + 4 > len(memory):
        raise HvmioError(f"int {vector:#x}: vector outside the IVT (base {ivt:#x}, "
                         f"limit {limit:#x})")  # fmt: skip
    flags, cs, ss, sp = uc.reg_read_batch([ux.UC_X86_REG_EFLAGS, ux.UC_X86_REG_CS,
                                           ux.UC_X86_REG_SS, ux.UC_X86_REG_SP])  # fmt: skip
    for word in (flags & 0xFFFF, cs, return_ip & 0xFFFF):
        sp = (sp - 2) & 0xFFFF
        at = (ss << 4) + sp
        if at + 2 > len(memory):
            raise HvmioError(f"int {vector:#x}: the stack {ss:#x}:{sp:#x} is outside memory")
        memory[at : at + 2] = word.to_bytes(2, "little")
    ip = int.from_bytes(memory[entry : entry + 2], "little")
    segment = int.from_bytes(memory[entry + 2 : entry + 4], "little")
    uc.reg_write_batch([(ux.UC_X86_REG_SP, sp), (ux.UC_X86_REG_EFLAGS, flags & ~(_IF | _TF | _AC)),
                        (ux.UC_X86_REG_CS, segment), (ux.UC_X86_REG_EIP, ip)])  # fmt: skip
