"""The live KVM probe: backend detection from fake sysfs/procfs trees, one clear refusal for
each way KVM can be missing, the probe guest checked against capstone and unicorn, and the
real probe on this machine's /dev/kvm (here: kvm_pvm, which must be named as such).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from capstone import CS_ARCH_X86, CS_MODE_16, Cs
from unicorn import UC_ARCH_X86, UC_HOOK_INSN, UC_MODE_16, Uc
from unicorn import x86_const as ux

from hvmio_lab import kvm_probe
from hvmio_lab.cli import main
from hvmio_lab.kvm_probe import KvmUnavailable, detect, open_kvm

INTEL_FLAGS = "fpu vme de pse tsc msr pae mce cx8 apic sep vmx ssse3 sse4_1"
AMD_FLAGS = "fpu vme de pse tsc msr pae mce cx8 apic sep svm sse4a"


def tree(tmp_path: Path, modules=(), flags="", proc_modules="", nested=None):
    """A fake /sys and /proc: module directories, a cpuinfo flags line, /proc/modules."""
    sys_root, proc_root = tmp_path / "sys", tmp_path / "proc"
    for m in modules:
        (sys_root / "module" / m / "parameters").mkdir(parents=True)
        if nested is not None:
            (sys_root / "module" / m / "parameters" / "nested").write_text(nested + "\n")
    (sys_root / "module").mkdir(parents=True, exist_ok=True)
    proc_root.mkdir()
    (proc_root / "cpuinfo").write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    if proc_modules:
        (proc_root / "modules").write_text(proc_modules)
    return sys_root, proc_root


# -- which backend ----------------------------------------------------------------------------


def test_bare_metal_intel(tmp_path):
    b = detect(*tree(tmp_path, ["kvm", "kvm_intel"], INTEL_FLAGS, nested="Y"))
    assert (b.module, b.name, b.hypervisor_bit, b.nested_param) == ("kvm_intel", "intel", False,
                                                                     "Y")  # fmt: skip
    assert "VMX" in b.meaning and "outer hypervisor" not in b.meaning
    assert "nested=Y" in b.meaning


def test_amd_inside_another_hypervisor_is_nested(tmp_path):
    b = detect(*tree(tmp_path, ["kvm", "kvm_amd"], AMD_FLAGS + " hypervisor", nested="1"))
    assert b.name == "amd (nested)"
    assert "SVM" in b.meaning and "outer hypervisor" in b.meaning


def test_pvm_is_named_and_said_to_emulate_every_in_out(tmp_path):
    b = detect(*tree(tmp_path, ["kvm", "kvm_pvm"], "fpu tsc hypervisor"))
    assert b.name == "pvm" and b.module == "kvm_pvm"
    assert "emulates every IN/OUT" in b.meaning and "no fast path" in b.meaning


def test_pvm_wins_when_loaded_beside_a_hardware_module(tmp_path):
    assert detect(*tree(tmp_path, ["kvm_intel", "kvm_pvm"], INTEL_FLAGS)).module == "kvm_pvm"


def test_proc_modules_is_read_when_sysfs_lacks_the_module(tmp_path):
    listing = "kvm_amd 155648 0 - Live 0x0\nkvm 1118208 1 kvm_amd, Live 0x0\n"
    b = detect(*tree(tmp_path, [], AMD_FLAGS, proc_modules=listing))
    assert b.module == "kvm_amd"


def test_no_module_at_all(tmp_path):
    b = detect(*tree(tmp_path, ["kvm"], "fpu"))
    assert b.module is None and b.name == "unknown" and "no kvm_intel" in b.meaning


# -- the device: absent, unreadable, not KVM, not x86 -------------------------------------------


def test_absent_device(tmp_path):
    with pytest.raises(KvmUnavailable, match=r"no .*kvm: KVM is not available"):
        open_kvm(tmp_path / "kvm", machine="x86_64")


def test_unreadable_device(tmp_path):
    device = tmp_path / "kvm"
    device.write_text("")

    def denied(path, flags):
        raise PermissionError(13, "Permission denied", path)

    with pytest.raises(KvmUnavailable, match=r"no permission .*'kvm' group"):
        open_kvm(device, machine="x86_64", opener=denied)


def test_a_file_that_is_not_a_kvm_device(tmp_path):
    device = tmp_path / "kvm"
    device.write_text("")
    with pytest.raises(KvmUnavailable, match="not a KVM device"):
        open_kvm(device, machine="x86_64")


@pytest.mark.parametrize("arch", ["aarch64", "riscv64", "ppc64le"])
def test_a_non_x86_host(arch):
    with pytest.raises(KvmUnavailable, match=f"needs an x86 host; this one is {arch}"):
        open_kvm("/dev/kvm", machine=arch)


def test_the_cli_says_one_line_and_exits_2(tmp_path, capsys):
    assert main(["kvm-probe", "--device", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "KVM is not available" in err


# -- the probe guest, against capstone and unicorn ----------------------------------------------


def test_probe_code_is_the_listed_loop():
    insns = list(Cs(CS_ARCH_X86, CS_MODE_16).disasm(kvm_probe.PROBE_CODE, kvm_probe.CODE_AT))
    assert sum(i.size for i in insns) == len(kvm_probe.PROBE_CODE)
    text = [f"{i.mnemonic} {i.op_str}".strip() for i in insns]
    assert text[6] == "in al, dx" and text[-2] == "out dx, al" and text[-1] == "hlt"
    assert [t.split()[0] for t in text].count("rdtsc") == 2


def test_probe_code_reads_the_port_n_times_then_writes_the_done_port():
    """unicorn runs the guest: N `in` from the parameter port, then one `out` to the done port."""
    uc = Uc(UC_ARCH_X86, UC_MODE_16)
    uc.mem_map(0, kvm_probe.MEMORY)
    uc.mem_write(kvm_probe.CODE_AT, kvm_probe.PROBE_CODE)
    n = 37
    params = (kvm_probe.IN_KERNEL_PORT.to_bytes(2, "little")
              + kvm_probe.DONE_PORT.to_bytes(2, "little") + n.to_bytes(4, "little"))  # fmt: skip
    uc.mem_write(kvm_probe.PARAMS_AT, params)
    seen = []
    uc.hook_add(UC_HOOK_INSN, lambda uc, port, size, _: seen.append(("in", port)) or 0xFF, None,
                1, 0, ux.UC_X86_INS_IN)  # fmt: skip
    uc.hook_add(UC_HOOK_INSN, lambda uc, port, size, value, _: seen.append(("out", port)), None,
                1, 0, ux.UC_X86_INS_OUT)  # fmt: skip
    uc.emu_start(kvm_probe.CODE_AT, kvm_probe.CODE_AT + len(kvm_probe.PROBE_CODE) - 1)
    assert seen == [("in", kvm_probe.IN_KERNEL_PORT)] * n + [("out", kvm_probe.DONE_PORT)]


# -- the real thing, here -----------------------------------------------------------------------


def test_the_probe_on_this_machine():
    """Runs the real probe when /dev/kvm is usable; otherwise the refusal must be one of the
    clear ones. Where kvm_pvm is loaded (this project's CI machine) it must say PVM."""
    if not os.path.exists("/dev/kvm"):
        with pytest.raises(KvmUnavailable):
            kvm_probe.probe(budget_s=0.1)
        return
    result = kvm_probe.probe(budget_s=0.2)
    assert result.userspace.exits >= 200 and result.userspace.ns_per_exit > 0
    assert result.userspace.cycles_per_exit > 0
    if result.in_kernel is not None:
        assert result.in_kernel.port == 0x4D0 and result.in_kernel.exits >= 200
    text = str(result)
    if Path("/sys/module/kvm_pvm").is_dir():
        assert result.backend.name == "pvm"
        assert "KVM backend: pvm (kvm_pvm)" in text and "emulates every IN/OUT" in text
