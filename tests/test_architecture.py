"""The house plan's "never" rules (design/ARCHITECTURE.md), checked mechanically.

The rules, and how each is checked here:
- the core imports no Jupyter, ipywidgets or matplotlib: a fresh interpreter imports every
  core module and runs one exit down each path, then its ``sys.modules`` is inspected;
- a lower room never imports a higher one: the run-time imports of each core module, read
  from its source, go only down the plan's stack of rooms (with no exception);
- the fast path never touches instruction bytes: it runs on a machine whose guest memory
  raises on any use at all;
- the emulator never trusts the exit record: handed a record that lies about everything (or
  is not even valid), the emulate path does what the bytes at CS:RIP say.
Expected values come from the SDM register rules, never from this package.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import CODE_AT, Refusing, Scripted, machine_with

from hvmio_lab import EXIT_QUALIFICATION, EXITINFO1, SvmIoExit, VmxIoExit
from hvmio_lab.hardware import intercept
from hvmio_lab.hypervisor import Hypervisor

PACKAGE = Path(__file__).resolve().parent.parent / "hvmio_lab"
HIGH = 0xDEAD_BEEF_0000_0000

# The plan's rooms, bottom up (ARCHITECTURE.md "Rooms and arrows"); a module may import only
# from its own room or below. decoder sits with the emulator it serves; outcome (what an exit
# did, and the PathResult each path returns) sits below the paths; seed2010 is one path, beside
# the hypervisor that dispatches to it; compare is a view over the hypervisor, beside guest.
ROOMS = {
    "errors": 0,
    "resources": 0,
    "lazy": 0,
    "kept": 0,  # the bounded tables of kept records that the exit paths share
    "fields": 1,
    "exits": 2,
    "numbers": 2,
    "devices": 3,  # below machine: attach_pc types its machine with a Protocol
    "machine": 4,
    "hardware": 5,
    "outcome": 5,
    "fastpath": 6,
    "decoder": 7,
    "emulator": 7,
    "seed2010": 8,
    "hypervisor": 8,
    "firmware": 9,  # where real firmware is found, for the guest that boots it
    "guest": 9,
    "compare": 9,
    "timing": 10,
    "traces": 10,
    "kvm_probe": 10,  # a live exit benchmark on /dev/kvm, beside timing
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

    def visit(node: ast.AST, top: bool, sibling: int) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child, top, sibling)
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
            visit(child, inner, sibling)

    for path, sibling in module_sources(module):
        for node in ast.parse(path.read_text()).body:
            visit(node, True, sibling)
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
