"""The guest programs in data/guests/.

Three kinds of checks, none of which use the hvmio_lab package:
- each .asm reassembles (nasm) to the committed .bin;
- programs.json and the binaries agree with the layout conventions, and a capstone
  linear sweep of the code finds only the allowed I/O and privileged instructions;
- each program runs on raw unicorn against tiny device stubs written here, posts 0xAA
  last, halts, and takes exactly the number of port accesses its params predict.

Unicorn routes `rep insw` through UC_HOOK_INSN: the IN hook fires once per element (with
size 2, RCX and RDI already stepped for each element) and the returned value is what
lands in memory. So ata_read runs to the end here, sector data included.
"""

import json
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import capstone
import pytest
from unicorn import UC_ARCH_X86, UC_HOOK_INSN, UC_MODE_16, UC_MODE_32, UC_MODE_64, Uc
from unicorn.x86_const import (
    UC_X86_INS_IN,
    UC_X86_INS_OUT,
    UC_X86_REG_EIP,
    UC_X86_REG_ESP,
    UC_X86_REG_RIP,
    UC_X86_REG_RSP,
    UC_X86_REG_SP,
)

GUESTS = Path(__file__).resolve().parent.parent / "data" / "guests"
NAMES = ("uart_hello", "port_hammer", "ata_read", "pmtimer_poll")
PROGRAMS = json.loads((GUESTS / "programs.json").read_text())
MEM_SIZE = 2 * 1024 * 1024
SECTOR = 512

POST = 0x80
UART_THR, UART_LSR = 0x3F8, 0x3FD
PMTIMER = 0x1F48
ATA_DATA, ATA_STATUS, ATA_ALT_STATUS = 0x1F0, 0x1F7, 0x3F6
BSY, DRDY, DRQ, ERR = 0x80, 0x40, 0x08, 0x01


def _nasm() -> str:
    nasm = shutil.which("nasm")
    if nasm is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nasm is not installed, and CI=true requires it")
        pytest.skip("nasm is not installed: cannot reassemble the guest sources")
    return nasm


@pytest.mark.parametrize("name", NAMES)
def test_source_reassembles_to_committed_binary(name, tmp_path):
    out = tmp_path / f"{name}.bin"
    result = subprocess.run(
        [_nasm(), "-f", "bin", "-o", str(out), str(GUESTS / f"{name}.asm")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", f"nasm warnings:\n{result.stderr}"
    assert out.read_bytes() == (GUESTS / f"{name}.bin").read_bytes()


# ---------------------------------------------------------------- programs.json, layout


def test_programs_json_lists_exactly_the_four_programs():
    assert set(PROGRAMS) == set(NAMES)
    for name, prog in PROGRAMS.items():
        assert set(prog) == {"mode", "load", "stack", "description", "success_post", "params"}
        assert prog["mode"] in (16, 32, 64), name
        assert prog["success_post"] == 0xAA, name
        assert isinstance(prog["params"], dict), name
        assert prog["description"].strip().endswith("."), name


@pytest.mark.parametrize("name", NAMES)
def test_binary_exists_and_fits(name):
    prog = PROGRAMS[name]
    size = len((GUESTS / f"{name}.bin").read_bytes())
    assert size > 0
    load, stack = prog["load"], prog["stack"]
    if prog["mode"] == 16:
        # Real mode: code at 0x7C00 in segment 0, the stack grows down from 0x7000 below it.
        assert (load, stack) == (0x7C00, 0x7000)
        assert load + size <= 0x10000
    else:
        assert (load, stack) == (0x10000, 0x80000)
        assert load + size <= stack
    # Every buffer or result address the program uses lies clear of the code, in guest RAM.
    for key, value in prog["params"].items():
        if key.endswith(("_addr", "buffer")):
            assert not load <= value < load + size, key
            assert 0 <= value < MEM_SIZE - SECTOR, key


def _sweep(name):
    prog = PROGRAMS[name]
    mode = {16: capstone.CS_MODE_16, 32: capstone.CS_MODE_32, 64: capstone.CS_MODE_64}
    md = capstone.Cs(capstone.CS_ARCH_X86, mode[prog["mode"]])
    md.detail = True
    code = (GUESTS / f"{name}.bin").read_bytes()[: prog["params"]["code_size"]]
    return code, list(md.disasm(code, prog["load"]))


FORBIDDEN = {
    "int", "int1", "int3", "into", "cli", "sti", "lgdt", "lidt", "ljmp", "lcall", "retf",
    "iret", "iretd", "iretq", "syscall", "sysenter", "sysret", "sysexit", "rdmsr", "wrmsr",
}  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_code_sweep_finds_only_allowed_instructions(name):
    """The code is one linear instruction stream ending in the only hlt; data comes after."""
    code, insns = _sweep(name)
    assert sum(i.size for i in insns) == len(code), "linear sweep stopped early"
    assert insns[-1].mnemonic == "hlt"
    assert [i.mnemonic for i in insns].count("hlt") == 1
    for i in insns:
        text = f"{i.address:#x}: {i.mnemonic} {i.op_str}"
        assert i.mnemonic not in FORBIDDEN, text
        assert i.mnemonic == "hlt" or not i.group(capstone.x86_const.X86_GRP_PRIVILEGE), text
        string_io = i.mnemonic.split()[-1].startswith(("ins", "outs"))
        assert i.mnemonic == "rep insw" or not string_io, text
    # POST codes go out with the 8-bit immediate form only.
    posts = [i for i in insns if i.mnemonic == "out" and "dx" not in i.op_str]
    assert posts and all(i.op_str == "0x80, al" for i in posts)


def test_disk_image_follows_the_rule():
    disk = PROGRAMS["ata_read"]["params"]["disk"]
    image = (GUESTS / disk["file"]).read_bytes()
    assert len(image) == disk["sectors"] * disk["sector_size"] == 32 * SECTOR
    for lba in range(disk["sectors"]):
        sector = image[lba * SECTOR : (lba + 1) * SECTOR]
        head = f"hvmio_lab sector {lba:02d}\n".encode()
        assert sector.startswith(head)
        assert all(sector[k] == (lba * 37 + k) & 0xFF for k in range(len(head), SECTOR))


# ---------------------------------------------------------------- device stubs


class Ata:
    """Master drive on the primary channel: PIO, LBA28, IDENTIFY and READ SECTORS."""

    def __init__(self, disk, *, bsy_reads=2, sectors=None, fail=None):
        self.disk = disk
        self.bsy_reads = bsy_reads  # status reads that show BSY before each data block
        self.sectors = len(disk) // SECTOR if sectors is None else sectors
        self.fail = fail  # None, "err" or "nodrq": how the next command ends
        self.regs = dict.fromkeys(range(0x1F1, 0x1F7), 0)
        self.busy = 0
        self.error = False
        self.block = b""  # the 512-byte block being transferred
        self.pos = 0
        self.pending = []  # further blocks of a multi-sector READ

    def identify(self):
        words = [0] * 256
        words[0] = 0x0040  # fixed disk
        model = b"HVMIO LAB STUB DISK".ljust(40)
        for k in range(20):  # ATA strings hold two characters per word, first in the high byte
            words[27 + k] = model[2 * k] << 8 | model[2 * k + 1]
        words[60], words[61] = self.sectors & 0xFFFF, self.sectors >> 16
        return b"".join(w.to_bytes(2, "little") for w in words)

    def start(self, blocks):
        self.busy = self.bsy_reads
        if self.fail:
            self.error = self.fail == "err"
            self.block, self.pending = b"", []
        else:
            self.block, self.pos, self.pending = blocks[0], 0, blocks[1:]

    def status(self):
        if self.busy:
            self.busy -= 1
            return BSY | DRQ | ERR  # while BSY is set the other bits mean nothing
        return DRDY | (ERR if self.error else 0) | (DRQ if self.pos < len(self.block) else 0)

    def read(self, port, size):
        if port in (ATA_STATUS, ATA_ALT_STATUS):
            assert size == 1
            return self.status()
        if port == ATA_DATA:
            assert size == 2, "data register is read 16 bits at a time"
            assert not self.busy and self.pos < len(self.block), "data read without DRQ"
            word = int.from_bytes(self.block[self.pos : self.pos + 2], "little")
            self.pos += 2
            if self.pos == len(self.block) and self.pending:
                self.start(self.pending)
            return word
        assert size == 1
        return self.regs[port]

    def write(self, port, size, value):
        assert size == 1
        if port != ATA_STATUS:
            self.regs[port] = value
            return
        self.error = False
        if value == 0xEC:
            self.start([self.identify()])
        elif value == 0x20:
            assert self.regs[0x1F6] & 0xF0 == 0xE0, "LBA mode, master"
            lba = (self.regs[0x1F6] & 0x0F) << 24 | self.regs[0x1F5] << 16
            lba |= self.regs[0x1F4] << 8 | self.regs[0x1F3]
            count = self.regs[0x1F2] or 256
            self.start([self.disk[(lba + n) * SECTOR : (lba + n + 1) * SECTOR]
                        for n in range(count)])  # fmt: skip
        else:
            raise AssertionError(f"unexpected ATA command {value:#x}")


class Machine:
    """Raw unicorn plus stubs for the POST port, a 16550 UART, the PM timer and ATA."""

    def __init__(self, name, *, thre_polls=1, pm_start=0xFFFF_FE00, pm_steps=(7,), ata=None):
        self.prog = PROGRAMS[name]
        self.params = self.prog["params"]
        self.code = (GUESTS / f"{name}.bin").read_bytes()
        self.thre_polls = thre_polls  # LSR reads per character until THRE shows
        self.lsr_left = thre_polls
        self.pm_clock = pm_start
        self.pm_steps = pm_steps  # clock increments, used in turn on each read
        self.pm_reads = 0
        self.ata = ata
        self.posts = []
        self.console = bytearray()
        self.accesses = Counter()  # (direction, port) -> count, one per element
        mode = {16: UC_MODE_16, 32: UC_MODE_32, 64: UC_MODE_64}[self.prog["mode"]]
        self.uc = Uc(UC_ARCH_X86, mode)
        self.uc.mem_map(0, MEM_SIZE)
        self.uc.mem_write(self.prog["load"], self.code)
        sp = {16: UC_X86_REG_SP, 32: UC_X86_REG_ESP, 64: UC_X86_REG_RSP}[self.prog["mode"]]
        self.uc.reg_write(sp, self.prog["stack"])
        self.uc.hook_add(UC_HOOK_INSN, self._in, None, 1, 0, UC_X86_INS_IN)
        self.uc.hook_add(UC_HOOK_INSN, self._out, None, 1, 0, UC_X86_INS_OUT)

    def _in(self, uc, port, size, user_data):
        self.accesses["in", port] += 1
        if port == UART_LSR:
            assert size == 1
            self.lsr_left -= 1
            return 0x60 if self.lsr_left <= 0 else 0x00  # THRE | TEMT once empty
        if port == PMTIMER:
            assert size == 4, "the PM timer is read 32 bits at a time"
            value = self.pm_clock & 0xFFFF_FFFF
            self.pm_clock += self.pm_steps[self.pm_reads % len(self.pm_steps)]
            self.pm_reads += 1
            return value
        if self.ata is not None and (0x1F0 <= port <= 0x1F7 or port == ATA_ALT_STATUS):
            return self.ata.read(port, size)
        raise AssertionError(f"IN from unexpected port {port:#x}")

    def _out(self, uc, port, size, value, user_data):
        self.accesses["out", port] += 1
        if port == POST:
            assert size == 1 and not self.halted_after_final_post()
            self.posts.append(value)
        elif port == UART_THR:
            assert size == 1 and self.lsr_left <= 0, "THR written while not empty"
            self.console.append(value)
            self.lsr_left = self.thre_polls
        elif self.ata is not None and 0x1F1 <= port <= 0x1F7:
            self.ata.write(port, size, value)
        else:
            raise AssertionError(f"OUT to unexpected port {port:#x}")

    def halted_after_final_post(self):
        return bool(self.posts) and not 0x01 <= self.posts[-1] <= 0x7F

    def run(self, max_insns=3_000_000):
        load = self.prog["load"]
        self.uc.emu_start(load, MEM_SIZE, count=max_insns)  # hlt ends emu_start
        pc = self.uc.reg_read(UC_X86_REG_RIP if self.prog["mode"] == 64 else UC_X86_REG_EIP)
        assert pc == load + self.params["code_size"], f"stopped at {pc:#x}, not after hlt"
        assert self.code[pc - load - 1] == 0xF4
        return self

    def qword(self, addr):
        return int.from_bytes(self.uc.mem_read(addr, 8), "little")

    def total(self):
        return sum(self.accesses.values())


def _disk():
    return (GUESTS / "disk.img").read_bytes()


# ---------------------------------------------------------------- runs


@pytest.mark.parametrize("thre_polls", [1, 3])
def test_uart_hello_prints_the_message(thre_polls):
    m = Machine("uart_hello", thre_polls=thre_polls).run()
    p = m.params
    assert m.console.decode() == p["message"]
    assert len(p["message"]) == p["message_length"]
    assert m.posts == [0xAA]
    assert m.accesses["in", UART_LSR] == thre_polls * p["message_length"]
    assert m.accesses["out", UART_THR] == p["message_length"]
    if thre_polls == 1:  # the transmitter of the real model empties instantly
        assert m.total() == 2 * p["message_length"] + 1 == 37


def test_port_hammer_reads_the_timer_across_its_wrap():
    # The clock starts 512 ticks before 2^32 and steps 7 or 0, so it wraps mid-loop.
    m = Machine("port_hammer", pm_steps=(7, 0)).run()
    p = m.params
    assert m.posts == [0xAA]
    assert m.pm_clock > 1 << 32
    assert m.accesses["in", PMTIMER] == p["iterations"]
    assert m.total() == p["iterations"] + 1 == 1001
    assert m.qword(p["iterations_addr"]) == p["iterations"]
    assert 0 < m.qword(p["tsc_delta_addr"]) < 1 << 63


def test_port_hammer_reports_a_timer_going_backwards():
    m = Machine("port_hammer", pm_start=1000, pm_steps=(5,) * 99 + (-3,)).run()
    assert m.posts == [0xE1]
    assert m.accesses["in", PMTIMER] == 101  # the read after the step back fails
    assert m.qword(m.params["iterations_addr"]) == 0


def test_pmtimer_poll_computes_the_expected_value():
    m = Machine("pmtimer_poll").run()
    p = m.params
    state = p["lcg_seed"]
    for _ in range(p["rounds"] * p["work_per_round"]):
        state = (state * p["lcg_multiplier"] + p["lcg_increment"]) % (1 << 64)
    assert state == p["expected_result"]
    assert m.qword(p["result_addr"]) == p["expected_result"]
    assert m.posts == [0xAA]
    assert m.accesses["in", PMTIMER] == p["rounds"]
    assert m.total() == p["rounds"] + 1 == 201


@pytest.mark.parametrize("bsy_reads", [0, 1, 4])
def test_ata_read_identifies_reads_and_checks_the_sectors(bsy_reads):
    m = Machine("ata_read", ata=Ata(_disk(), bsy_reads=bsy_reads)).run()
    p = m.params
    lba, count = p["lba"], p["sector_count"]
    expected = _disk()[lba * SECTOR : (lba + count) * SECTOR]
    assert sum(expected) == p["expected_checksum"]
    assert len(expected) == p["bytes_summed"]
    assert bytes(m.uc.mem_read(p["buffer"], len(expected))) == expected
    assert m.uc.mem_read(p["identify_buffer"] + 120, 4) == p["disk_sectors"].to_bytes(4, "little")
    assert m.posts == [0x01, 0x02, 0xAA]
    blocks = 1 + count  # IDENTIFY, then one block per sector
    assert m.accesses["in", ATA_STATUS] == blocks * (bsy_reads + 1)
    assert m.accesses["in", ATA_DATA] == blocks * p["words_per_sector"]
    outs = sum(p["register_writes"].values()) + len(p["progress_codes"]) + 1
    assert sum(n for (d, _), n in m.accesses.items() if d == "out") == outs == 11


@pytest.mark.parametrize(
    ("ata_kwargs", "corrupt", "post"),
    [
        ({"fail": "err"}, False, 0xE1),
        ({"fail": "nodrq"}, False, 0xE2),
        ({"sectors": 64}, False, 0xE3),
        ({}, True, 0xE4),
    ],
)
def test_ata_read_failure_codes(ata_kwargs, corrupt, post):
    disk = bytearray(_disk())
    if corrupt:
        disk[2 * SECTOR + 100] ^= 0x01  # one bit inside LBA 2
    m = Machine("ata_read", ata=Ata(bytes(disk), **ata_kwargs)).run()
    assert m.posts[-1] == post
    assert f"0x{post:02X}" in m.params["failure_codes"]
