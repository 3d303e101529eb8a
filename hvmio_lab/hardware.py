"""The silicon: build the exit record an SVM or VMX CPU would hand over for the I/O instruction
at RIP.

It decodes with capstone, an independent decoder, and never with ``hvmio_lab``'s own, so the
record (checked by the fast path) and the emulator's decode can check each other.
"""

from __future__ import annotations

from functools import lru_cache

from capstone import CS_ARCH_X86, CS_MODE_16, CS_MODE_32, CS_MODE_64, Cs, CsError
from capstone import x86 as cx

from .errors import NotAnIoExit
from .exits import MAX_INSTRUCTION_LENGTH, IoAccess, SvmIoExit, VmxIoExit
from .machine import PAGE_SIZE, Machine

_CS_MODES = {16: CS_MODE_16, 32: CS_MODE_32, 64: CS_MODE_64}
_SEGMENT_REGS = {
    cx.X86_REG_ES: "ES", cx.X86_REG_CS: "CS", cx.X86_REG_SS: "SS",
    cx.X86_REG_DS: "DS", cx.X86_REG_FS: "FS", cx.X86_REG_GS: "GS",
}  # fmt: skip
# capstone instruction id → (is IN, is string), for every instruction that can cause an I/O exit
IO_INSTRUCTIONS = {
    cx.X86_INS_IN: (True, False),
    cx.X86_INS_OUT: (False, False),
    **dict.fromkeys((cx.X86_INS_INSB, cx.X86_INS_INSW, cx.X86_INS_INSD), (True, True)),
    **dict.fromkeys((cx.X86_INS_OUTSB, cx.X86_INS_OUTSW, cx.X86_INS_OUTSD), (False, True)),
}
_REP_PREFIXES = (cx.X86_PREFIX_REP, cx.X86_PREFIX_REPNE)  # F2 repeats INS/OUTS too


@lru_cache(maxsize=8)
def disassembler(mode: int) -> Cs:
    """A capstone x86 disassembler for a 16-, 32- or 64-bit code segment, with details on."""
    md = Cs(CS_ARCH_X86, _CS_MODES[mode])
    md.detail = True
    return md


@lru_cache(maxsize=4096)
def decode_io(code: bytes, mode: int) -> tuple[int, IoAccess, str]:
    """(length, access, text) for the instruction in ``code``, as the CPU decodes it.

    A DX-port access comes back with port 0; ``io_access_at`` puts DX in. Raises NotAnIoExit
    for anything that would not cause an I/O exit. capstone does the decoding; three places
    where capstone 5 disagrees with the silicon are corrected from the prefix bytes.
    """
    try:
        insn = next(disassembler(mode).disasm(code, 0, 1), None)
    except CsError as e:
        raise NotAnIoExit(f"bytes {code[:15].hex(' ')} do not decode: {e}") from e
    if insn is None:
        raise NotAnIoExit(
            f"bytes {code[:15].hex(' ')} are not a valid instruction in {mode}-bit mode"
        )
    text = f"{insn.mnemonic} {insn.op_str}".strip()
    if insn.id not in IO_INSTRUCTIONS:
        raise NotAnIoExit(f"{text} ({code[: insn.size].hex(' ')}) is not an I/O instruction")
    is_in, string = IO_INSTRUCTIONS[insn.id]
    ops = insn.operands
    port_op = ops[1] if is_in else ops[0]
    data_op = ops[0] if is_in else ops[1]
    immediate = port_op.type == cx.X86_OP_IMM
    prefixes = code[: insn.size - 1 - immediate]  # everything before the opcode byte
    if 0xF0 in prefixes:  # checked on the bytes: capstone 5 drops a LOCK before F2/F3
        raise NotAnIoExit(f"{text} with LOCK raises #UD before any VM exit")
    size = data_op.size
    if mode == 64 and size == 2 and prefixes[-1:] and prefixes[-1] & 0xF8 == 0x48:
        size = 4  # REX.W beats 66 (SDM Vol. 2 §2.2.1.2); I/O caps it at 32 bits; capstone says 16
    segment = None
    if string:
        segment = _SEGMENT_REGS.get(data_op.mem.segment, "DS")
        if is_in:
            segment = "ES"  # INS always writes ES:(R/E)DI
        elif mode == 64:
            # Long mode: ES/CS/SS/DS prefixes are null (AMD APM Vol. 3 §1.2.4), even after an
            # FS/GS prefix, which capstone 5 gets wrong: the last FS/GS prefix wins, else DS.
            overrides = [b for b in prefixes if b in (0x64, 0x65)]
            segment = ("FS" if overrides[-1] == 0x64 else "GS") if overrides else "DS"
    access = IoAccess(
        port=port_op.imm & 0xFF if immediate else 0,
        size=size,
        is_in=is_in,
        string=string,
        rep=string and insn.prefix[0] in _REP_PREFIXES,
        address_size=insn.addr_size * 8,
        segment=segment,
        immediate=immediate,
    )
    return insn.size, access, text


def fetch_for_decode(machine: Machine) -> bytes:
    """The bytes at CS:RIP as the CPU fetches them: up to 15, cut short at a not-present page
    (or the end of memory). ``io_access_at`` raises the fetch's #PF if the instruction needs
    bytes past the cut."""
    start = machine.linear("CS", machine.cpu.rip)
    memory = machine.memory
    end = min(start + MAX_INSTRUCTION_LENGTH, memory.size)
    if memory.not_present:
        for page in range(start // PAGE_SIZE, (end - 1) // PAGE_SIZE + 1):
            if page in memory.not_present:
                end = max(start, page * PAGE_SIZE)
                break
    return bytes(memory.data[start:end]) if 0 <= start < end else b""


def io_access_at(machine: Machine, port: int | None = None) -> tuple[int, IoAccess, str]:
    """Length, access (with the real port) and disassembly of the I/O instruction at RIP.

    ``port``: the port the CPU is accessing, when it says so (unicorn's I/O hook does); for a
    DX-port instruction that is DX, and reading it again from the vCPU would cost a register
    read.

    Raises PageFault when the instruction's bytes run into a not-present page: the CPU takes
    the instruction-fetch #PF before it could decode an I/O instruction, so there is no exit.
    """
    code = fetch_for_decode(machine)
    try:
        length, access, text = decode_io(code, machine.mode)
    except NotAnIoExit:
        if len(code) < MAX_INSTRUCTION_LENGTH:
            start = machine.linear("CS", machine.cpu.rip)
            machine.memory.check(start + len(code), 1)  # raises the fetch's #PF (or bounds)
        raise
    if not access.immediate:
        access = _with_port(access, machine.cpu.rdx & 0xFFFF if port is None else port)
    return length, access, text


@lru_cache(maxsize=4096)
def _with_port(access: IoAccess, port: int) -> IoAccess:
    return access._replace(port=port)


def intercept(machine: Machine, vendor: str, port: int | None = None) -> SvmIoExit | VmxIoExit:
    """The exit record for the I/O instruction at RIP, as ``vendor``'s silicon would report it.

    EXITINFO2 is RIP + the instruction's length, not wrapped at 64 KiB in a 16-bit code
    segment: whether AMD parts wrap it there is unverified, so the handler wraps IP itself.
    An instruction whose bytes reach a not-present page raises PageFault instead: the fetch
    faults first and there is no exit, on either vendor, for any handler path.
    """
    length, access, _ = io_access_at(machine, port)
    rip = machine.cpu.rip
    if vendor == "svm":  # one record per exit: built without re-checking what was just encoded
        return SvmIoExit.from_silicon(_svm_bits(access), length, rip)
    if vendor == "vmx":
        qualification, info = _vmx_bits(access)
        return VmxIoExit.from_silicon(qualification, length, rip, info)
    raise ValueError(f"vendor must be 'svm' or 'vmx', got {vendor!r}")


@lru_cache(maxsize=4096)
def _svm_bits(access: IoAccess) -> int:
    return SvmIoExit.from_access(access, 0, 1).exitinfo1


@lru_cache(maxsize=4096)
def _vmx_bits(access: IoAccess) -> tuple[int, int | None]:
    record = VmxIoExit.from_access(access, 0, 1)
    return record.qualification, record.instruction_info
