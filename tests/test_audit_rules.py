"""The house plan's "never" rules (design/ARCHITECTURE.md), checked mechanically, and the
behaviours a mutation audit of the core found unguarded.

The rules, and how each is checked here:
- the core imports no Jupyter, ipywidgets or matplotlib: a fresh interpreter imports every
  core module and runs one exit down each path, then its ``sys.modules`` is inspected;
- a lower room never imports a higher one: the runtime imports of each core module, read
  from its source, go only down the plan's stack of rooms (one known exception, listed);
- the fast path never touches instruction bytes: it runs on a machine whose guest memory
  raises on any use at all;
- the emulator never trusts the exit record: handed a record that lies about everything (or
  is not even valid), the emulate path does what the bytes at CS:RIP say.
Expected values come from the SDM register rules and from unicorn, never from this package.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import CODE_AT, Refusing, Scripted, machine_with
from test_emulator import run_ours, run_unicorn

from hvmio_lab import EXIT_QUALIFICATION, EXITINFO1, IoAccess, SvmIoExit, VmxIoExit, fastpath
from hvmio_lab.emulator import batch_elements, emulate
from hvmio_lab.guest import Guest, Program
from hvmio_lab.hardware import intercept
from hvmio_lab.hypervisor import Hypervisor

PACKAGE = Path(__file__).resolve().parent.parent / "hvmio_lab"
U64 = (1 << 64) - 1
HIGH = 0xDEAD_BEEF_0000_0000

# The plan's rooms, bottom up (ARCHITECTURE.md "Rooms and arrows"); a module may import only
# from its own room or below. decoder sits with the emulator it serves; outcome and seed2010
# with the hypervisor that uses them; compare is a view over the hypervisor, beside guest.
ROOMS = {
    "errors": 0,
    "resources": 0,
    "fields": 1,
    "exits": 2,
    "devices": 3,  # below machine: devices need the machine only for type hints
    "machine": 4,
    "hardware": 5,
    "fastpath": 6,
    "decoder": 7,
    "emulator": 7,
    "outcome": 8,
    "seed2010": 8,
    "hypervisor": 8,
    "guest": 9,
    "compare": 9,
    "timing": 10,
}
ABOVE_THE_CORE = ("plots", "cli", "checks", "widgets")
JUPYTER = (
    "matplotlib", "ipywidgets", "IPython", "ipykernel", "jupyter_client", "jupyter_core",
    "jupyterlab", "notebook", "nbformat", "nbclient", "voila", "comm",
)  # fmt: skip


def core_modules() -> list[str]:
    """Every top-level module of the package that lies below the line in the plan."""
    names = [p.stem for p in PACKAGE.glob("*.py")]
    names += [p.parent.name for p in PACKAGE.glob("*/__init__.py")]
    return sorted(n for n in names if n not in ("__init__", *ABOVE_THE_CORE))


def module_sources(module: str) -> list[tuple[Path, int]]:
    """(source file, the import level that reaches a sibling of ``module``) for a module, or
    for every file of a subpackage, whose siblings are one more dot away."""
    package = PACKAGE / module
    if package.is_dir():
        return [(p, 2) for p in sorted(package.glob("*.py"))]
    return [(PACKAGE / f"{module}.py", 1)]


def runtime_imports(module: str) -> dict[str, bool]:
    """Sibling modules ``module`` imports at run time → True if at module level.

    Imports under ``if TYPE_CHECKING:`` are annotations only and are left out.
    """
    found: dict[str, bool] = {}

    def visit(node: ast.AST, top: bool) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child, top)
            return
        if isinstance(node, ast.ImportFrom) and node.level == sibling:
            names = [node.module] if node.module else [a.name for a in node.names]
            for name in names:
                first = name.split(".")[0]
                found[first] = found.get(first, False) or top
        elif isinstance(node, ast.Import) or (isinstance(node, ast.ImportFrom) and not node.level):
            absolute = (
                [node.module]
                if isinstance(node, ast.ImportFrom)
                else [alias.name for alias in node.names]
            )
            for name in absolute:
                parts = name.split(".")
                if parts[0] == "hvmio_lab":
                    first = parts[1] if len(parts) > 1 else "__init__"
                    found[first] = found.get(first, False) or top
        inner = top and not isinstance(
            node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda
        )
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    for path, sibling in module_sources(module):
        for node in ast.parse(path.read_text()).body:
            visit(node, True)
    return found


# ---------------------------------------------------------------- the core's imports


def test_every_core_module_has_a_room():
    assert set(core_modules()) == set(ROOMS), "place new core modules in ROOMS (the plan)"
    assert not set(runtime_imports("__init__")) & {*ABOVE_THE_CORE}, "`import hvmio_lab` is core"


@pytest.mark.parametrize("module", sorted(ROOMS))
def test_rooms_import_only_downward(module):
    imports = runtime_imports(module)
    for target in imports:
        assert target not in ABOVE_THE_CORE, f"{module} imports {target}, above the core"
        assert target not in ROOMS or ROOMS[target] <= ROOMS[module], (
            f"{module} (room {ROOMS[module]}) "
            f"imports {target} (room {ROOMS[target]}): a lower room importing a higher one"
        )


def test_the_silicon_never_decodes_with_our_decoder():
    """hardware.py builds the record with capstone; if it used decoder.py, the record and the
    emulator would share every decoding mistake and could no longer check each other."""
    assert not {"decoder", "emulator"} & set(runtime_imports("hardware"))


@pytest.mark.parametrize("module", ["emulator", "decoder"])
def test_the_emulator_never_sees_exit_records(module):
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    from_exits = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "exits"
        for alias in node.names
    }
    assert from_exits <= {"IoAccess", "MAX_INSTRUCTION_LENGTH"}, from_exits
    source = (PACKAGE / f"{module}.py").read_text().lower()
    for word in ("exitinfo", "qualification", "instruction_info", "next_rip"):
        assert word not in source, f"{module}.py mentions {word}"


def test_the_core_pulls_in_no_jupyter_or_matplotlib():
    """Import every core module and run exits down all three paths and a real guest, in a
    fresh interpreter; then nothing from Jupyter or matplotlib may be loaded."""
    script = f"""
import importlib, json, sys
import hvmio_lab
for name in {core_modules()!r}:
    importlib.import_module("hvmio_lab." + name)
from hvmio_lab import Machine
from hvmio_lab.hypervisor import Hypervisor
from hvmio_lab.guest import Guest
for path in ("fast", "emulate", "seed2010"):
    machine = Machine.pc(64)
    machine.memory.write(0x1000, bytes.fromhex("ed"))
    machine.cpu.rip, machine.cpu.rdx = 0x1000, 0x1F48
    Hypervisor(machine, "svm", path).step()
assert Guest("uart_hello", recording=False).run().success
bad = sorted(m for m in sys.modules if m.split(".")[0] in {JUPYTER!r})
print(json.dumps(bad))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, cwd=PACKAGE.parent)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []


# ---------------------------------------------------------------- the fast path reads no bytes


class Tripwire:
    """Guest memory that fails the test on any use whatsoever."""

    def __getattribute__(self, name):
        raise AssertionError(f"the fast path touched guest memory (.{name})")

    def __len__(self):
        raise AssertionError("the fast path touched guest memory (len)")

    def __getitem__(self, key):
        raise AssertionError("the fast path touched guest memory ([])")

    def __bool__(self):
        raise AssertionError("the fast path touched guest memory (bool)")


CASES = [
    # bytes, rax, rdx, device location, what the SDM says RAX becomes (None: unchanged)
    pytest.param(b"\xed", HIGH | 0x1111, 0x40, "hypervisor", 0x1234_5678, id="in-eax-dx"),
    pytest.param(b"\x66\xed", HIGH | 0x1111, 0x40, "hypervisor", HIGH | 0x5678, id="in-ax-dx"),
    pytest.param(b"\xe4\x40", HIGH | 0x1111, 0, "device-model", HIGH | 0x1178, id="in-al-imm8-dm"),
    pytest.param(b"\xef", HIGH | 0xCAFE_F00D, 0x40, "device-model", None, id="out-dx-eax-dm"),
]  # 32-bit IN zero-extends, 8/16-bit IN merges (SDM Vol. 1 §3.4.1.1); OUT leaves RAX


@pytest.mark.parametrize("timed", [False, True])
@pytest.mark.parametrize("vendor", ["svm", "vmx"])
@pytest.mark.parametrize(("code", "rax", "rdx", "location", "expected_rax"), CASES)
def test_the_fast_path_never_touches_guest_memory(code, rax, rdx, location, expected_rax,
                                                  vendor, timed):  # fmt: skip
    machine = machine_with(code)
    device = Scripted([0x1234_5678], location)
    machine.bus.attach(range(0x40, 0x44), device)
    machine.cpu.rax, machine.cpu.rdx = rax, rdx
    exit_ = intercept(machine, vendor)  # the silicon reads the bytes; the hypervisor may not
    machine.memory = Tripwire()
    outcome = Hypervisor(machine, vendor, "fast", recording=False, timed=timed).handle(exit_)
    assert outcome.path == "fast" and outcome.done and outcome.fault is None
    assert machine.cpu.rip == CODE_AT + len(code)
    if expected_rax is None:
        assert device.writes == [(0x40, 4, 0xCAFE_F00D)] and machine.cpu.rax == rax
    else:
        assert machine.cpu.rax == expected_rax


@pytest.mark.parametrize("vendor", ["svm", "vmx"])
def test_a_refused_fast_path_access_touches_no_memory_either(vendor):
    machine = machine_with(b"\xed")
    machine.bus.attach(range(0x40, 0x41), Refusing())
    machine.cpu.rdx = 0x40
    exit_ = intercept(machine, vendor)
    machine.memory = Tripwire()
    outcome = Hypervisor(machine, vendor, "fast", recording=False).handle(exit_)
    assert outcome.fault.vector == "#GP" and machine.cpu.rip == CODE_AT


def test_fastpath_perform_moves_only_size_bytes():
    """`out dx, al` carries AL only (Hyperlight's garbled serial output, IO_EXITS.md §7.3):
    the data the fast path reports moving is the byte the device got."""
    machine = machine_with(b"\xee")
    machine.bus.attach(range(0x40, 0x41), device := Scripted())
    machine.cpu.rax = 0x1122_3344_5566_7788
    assert fastpath.perform(machine, IoAccess(0x40, 1, False)) == 0x88
    assert device.writes == [(0x40, 1, 0x88)]


# ---------------------------------------------------------------- the emulator ignores the record


def lying_records(rip: int):
    """Records for the same exit that get everything wrong: port, size, direction, length;
    the last two are not even valid (a reserved bit set)."""
    svm_out = EXITINFO1.encode(TYPE=0, SZ=4, A=4, PORT=0x1234)  # out dx, eax to 0x1234
    vmx_out = EXIT_QUALIFICATION.encode(size=3, direction=0, port=0x12, **{"operand encoding": 1})
    yield SvmIoExit(svm_out, rip + 9, rip)
    yield VmxIoExit(vmx_out, 9, rip)
    yield SvmIoExit(svm_out | 1 << 1, rip, rip)  # reserved bit 1, length 0
    yield VmxIoExit(vmx_out | 1 << 7, 0, rip)  # reserved bit 7, length 0


@pytest.mark.parametrize("record", range(4), ids=["svm", "vmx", "svm-invalid", "vmx-invalid"])
def test_the_emulate_path_does_what_the_bytes_say_whatever_the_record_says(record):
    machine = machine_with(b"\xec")  # in al, dx
    machine.cpu.rax, machine.cpu.rdx = HIGH | 0x1111, 0x60
    device = Scripted([0x5A])
    machine.bus.attach(range(0x60, 0x61), device)
    machine.bus.attach(range(0x12, 0x13), stray := Scripted())
    machine.bus.attach(range(0x1234, 0x1235), stray2 := Scripted())
    exit_ = list(lying_records(CODE_AT))[record]
    vendor = exit_.vendor
    outcome = Hypervisor(machine, vendor, "emulate").handle(exit_)
    assert outcome.fault is None and outcome.done
    assert device.reads == [(0x60, 1)] and not stray.writes and not stray2.writes
    assert machine.cpu.rax == HIGH | 0x115A  # an 8-bit IN merges into AL (SDM Vol. 1 §3.4.1.1)
    assert machine.cpu.rip == CODE_AT + 1  # the length of EC, not what the record claims
    assert (outcome.access.port, outcome.access.size, outcome.access.is_in) == (0x60, 1, True)


# ---------------------------------------------------------------- REP batches and the 16-bit wrap


def test_batch_ends_where_a_16_bit_pointer_wraps_even_mid_page():
    # ES base 0x20010 (selector 0x2001): DI = 0xFFFE is linear 0x3000E, mid-page, yet only two
    # elements fit before DI wraps to 0 (linear 0x20010), so the batch must stop there.
    assert batch_elements(0x3000E, 0xFFFE, 10, 1, 16, False) == 2
    assert batch_elements(0x3000C, 0xFFFC, 10, 2, 16, False) == 2
    assert batch_elements(0x20015, 0x0005, 10, 1, 16, True) == 6  # down to DI = 0, then wrap


@pytest.mark.parametrize(("code", "di", "rflags"), [
    pytest.param(b"\xf3\x6c", 0xFFFE, 0x2, id="rep-insb-up"),  # upwards across the wrap
    pytest.param(b"\xf3\x6d", 0xFFFC, 0x2, id="rep-insw-up"),
    pytest.param(b"\xf3\x6c", 0x0001, 0x402, id="rep-insb-down"),  # DF = 1, down across it
])  # fmt: skip
def test_a_16_bit_rep_ins_wraps_like_unicorn_with_an_unaligned_segment(code, di, rflags):
    regs = {"rax": 0, "rcx": 6, "rdx": 0x60, "rsi": 0, "rdi": di}
    segments = {"ES": 0x2001, "SS": 0x3000, "DS": 0x3000, "FS": 0x3000, "GS": 0x3000}
    memory = bytearray(2 << 20)
    answers = list(range(0xA1, 0xA7))
    ours = run_ours(16, code, regs, rflags, segments, memory, answers)
    theirs = run_unicorn(16, code, regs, rflags, segments, memory, answers)
    theirs[0]["rip"] &= 0xFFFF
    assert ours[0] == theirs[0] and ours[2] == theirs[2]
    assert ours[1] == theirs[1]  # the bytes landed at the same places
    assert ours[0]["rcx"] == 0


# ---------------------------------------------------------------- FS/GS bases, REP count 0, #PF


@pytest.mark.parametrize(("prefix", "segment"), [(0x64, "FS"), (0x65, "GS")], ids=["fs", "gs"])
def test_outs_reads_through_the_fs_or_gs_base_in_64_bit_mode(prefix, segment):
    """In 64-bit mode FS and GS keep their bases (SDM Vol. 1 §3.4.4): `rep outsb fs:[rsi]`
    reads base + RSI. unicorn runs the same bytes as the oracle."""
    code = bytes([prefix, 0xF3, 0x6E])
    regs = {"rax": 0, "rcx": 3, "rdx": 0x80, "rsi": 0x0100, "rdi": 0}
    memory = bytearray(2 << 20)
    memory[0x5100:0x5103] = b"fs!"  # base + RSI
    memory[0x0100:0x0103] = b"ds?"  # RSI alone: what a flat reading would send
    bases = {"FS": 0, "GS": 0, segment: 0x5000}
    ours = run_ours(64, code, regs, 0x2, bases, memory, [])
    theirs = run_unicorn(64, code, regs, 0x2, bases, memory, [])
    assert [value for *_, value in ours[2]] == list(b"fs!")
    assert ours[2] == theirs[2] and ours[0] == theirs[0]


@pytest.mark.parametrize("code", [b"\xf3\x6c", b"\xf3\x6e"], ids=["rep-insb", "rep-outsb"])
def test_a_rep_with_count_0_touches_no_memory(code):
    """With RCX = 0 a REP string instruction does nothing but move RIP (SDM, REP): no element,
    so no memory access and no fault even if RSI/RDI point nowhere."""
    machine = machine_with(code)
    machine.cpu.rcx, machine.cpu.rdx = 0, 0x60
    machine.cpu.rsi = machine.cpu.rdi = 0x7FFF_FFFF_0000  # far outside guest memory
    machine.bus.attach(range(0x60, 0x61), device := Scripted([1]))
    outcome = Hypervisor(machine, "svm", "emulate").step()
    assert outcome.fault is None and outcome.done and outcome.elements == 0
    assert machine.cpu.rip == CODE_AT + 2 and device.reads == device.writes == []


@pytest.mark.parametrize("path", ["fast", "emulate"])
@pytest.mark.parametrize(
    ("code", "write"), [(b"\xf3\x6c", True), (b"\xf3\x6e", False)], ids=["rep-insb", "rep-outsb"]
)
def test_a_page_fault_carries_cr2_and_the_write_bit(code, write, path):
    """#PF error code (SDM Vol. 3A §4.7): bit 0 P = 0 for a not-present page, bit 1 W/R = 1 for
    a write (INS stores to ES:[RDI]) and 0 for a read (OUTS loads from DS:[RSI]); CR2 holds
    the faulting linear address. RIP stays on the instruction."""
    machine = machine_with(code)
    machine.cpu.rcx, machine.cpu.rdx, machine.cpu.rsi, machine.cpu.rdi = 2, 0x60, 0x9000, 0x9000
    machine.bus.attach(range(0x60, 0x61), device := Scripted([1, 2]))
    machine.memory.set_present(0x9000, False)
    outcome = Hypervisor(machine, "vmx", path).step()
    fault = outcome.fault
    assert (fault.vector, fault.error_code, fault.address) == ("#PF", 2 if write else 0, 0x9000)
    assert fault.rip == machine.cpu.rip == CODE_AT
    assert device.reads == device.writes == []


def test_the_emulator_reports_only_the_byte_an_out_al_sends():
    machine = machine_with(b"\xee")  # out dx, al
    machine.cpu.rax, machine.cpu.rdx = 0x1122_3344_5566_7788, 0x40
    machine.bus.attach(range(0x40, 0x41), device := Scripted())
    run = emulate(machine)
    assert run.values == (0x88,) and device.writes == [(0x40, 1, 0x88)]


# ---------------------------------------------------------------- real-mode segments on unicorn


@pytest.mark.parametrize("path", ["fast", "emulate", "seed2010"])
def test_a_real_mode_guest_rep_insb_lands_at_es_times_16_plus_di(path):
    """mov ax, 0x1000; mov es, ax; mov di, 0x10; mov dx, 0x3f8; mov cx, 3; rep insb; hlt.
    Real mode: linear = ES × 16 + DI = 0x10010 (SDM Vol. 1 §3.3.6), not DI alone."""
    code = bytes.fromhex("b80010 8ec0 bf1000 baf803 b90300 f36c f4")
    prog = Program("es_insb", 16, 0x7C00, 0x7000, code, "rep insb to ES:DI.", 0xAA, {})
    guest = Guest(prog, "svm", path, uart_input=b"abc")
    result = guest.run()
    assert result.halted and result.exits >= 1
    memory = guest.machine.memory
    assert memory.read(0x10010, 3) == b"abc"
    assert memory.read(0x10, 3) == bytes(3)
