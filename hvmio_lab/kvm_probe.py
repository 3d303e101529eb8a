"""A live I/O-exit micro-benchmark on this machine's ``/dev/kvm``, in the spirit of
kvm-unit-tests' ``vmexit`` (IO_EXITS.md §6): ``inb`` from a port the kernel handles (ELCR
0x4d0, with the in-kernel PIC) against ``inb`` from an unclaimed port that exits to
userspace, here to this Python process (kvm-unit-tests uses 0x1234; so do we).

Straight ioctls on ``/dev/kvm``, no QEMU: a VM with one memory slot and one vCPU in real mode
running a 46-byte loop (``PROBE_CODE``, listed below) that reads the TSC around N ``in al,
dx``. Each figure is both the guest's TSC cycles per exit and the wall-clock ns per exit.

What the figures mean depends on the backend (``detect``): on kvm_intel / kvm_amd they are
hardware VM exits (nested, if this host is itself a guest); on kvm_pvm there is no hardware
exit at all: PVM runs the guest deprivileged and emulates every IN/OUT in software.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os
import platform
import signal
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import HvmioError

# The guest, 16-bit real mode at 0x1000; parameters at 0x0f00 (nasm listing):
#   8b 16 00 0f       mov dx, [0x0f00]        ; the port to read
#   66 8b 0e 04 0f    mov ecx, [0x0f04]       ; how many reads
#   0f 31             rdtsc
#   66 a3 10 0f       mov [0x0f10], eax
#   66 89 16 14 0f    mov [0x0f14], edx
#   8b 16 00 0f       mov dx, [0x0f00]
#   ec                in al, dx               ; <- the exit being measured
#   66 49             dec ecx
#   75 fb             jnz -5 (the in)
#   0f 31             rdtsc
#   66 a3 18 0f       mov [0x0f18], eax
#   66 89 16 1c 0f    mov [0x0f1c], edx
#   8b 16 02 0f       mov dx, [0x0f02]        ; the done port
#   ee                out dx, al              ; exits to us: the loop is over
#   f4                hlt
PROBE_CODE = bytes.fromhex(
    "8b16000f668b0e040f0f3166a3100f668916140f8b16000fec664975fb0f3166a3180f6689161c0f8b16020feef4"
)
CODE_AT, PARAMS_AT, MEMORY = 0x1000, 0x0F00, 0x10000
IN_KERNEL_PORT = 0x4D0  # ELCR of the in-kernel PIC (kvm-unit-tests' inl_from_kernel)
USERSPACE_PORT = 0x1234  # unclaimed: KVM_EXIT_IO to userspace (kvm-unit-tests' inl_from_qemu)
DONE_PORT = 0x1235
WATCHDOG_S = 5.0

# <linux/kvm.h>: _IO(0xAE, n) = 0xAE00 | n; _IOW/_IOR add the direction and the size.
KVM_GET_API_VERSION, KVM_CREATE_VM, KVM_GET_VCPU_MMAP_SIZE = 0xAE00, 0xAE01, 0xAE04
KVM_CREATE_VCPU, KVM_SET_TSS_ADDR, KVM_CREATE_IRQCHIP, KVM_RUN = 0xAE41, 0xAE47, 0xAE60, 0xAE80
KVM_SET_USER_MEMORY_REGION = 0x4020AE46  # _IOW(0xAE, 0x46, 32 bytes)
KVM_GET_REGS, KVM_SET_REGS = 0x8090AE81, 0x4090AE82  # struct kvm_regs, 144 bytes
KVM_GET_SREGS, KVM_SET_SREGS = 0x8138AE83, 0x4138AE84  # struct kvm_sregs, 312 bytes
KVM_EXIT_IO, KVM_EXIT_IO_IN = 2, 0
KVM_EXIT_NAMES = {0: "UNKNOWN", 1: "EXCEPTION", 2: "IO", 5: "HLT", 6: "MMIO", 8: "SHUTDOWN",
                  9: "FAIL_ENTRY", 17: "INTERNAL_ERROR"}  # fmt: skip
X86 = ("x86_64", "amd64", "i386", "i686")


class KvmUnavailable(HvmioError):
    """No KVM to probe here: one line saying why and what to do."""


class KvmProbeError(HvmioError):
    """KVM is there but the probe VM did not run as expected."""


# -- which backend ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    """Which KVM this is, from /sys/module and /proc/cpuinfo, and what its figures mean."""

    module: str | None  # "kvm_intel", "kvm_amd", "kvm_pvm", or None
    hypervisor_bit: bool  # CPUID.1:ECX[31]: this host is itself a virtual machine
    nested_param: str | None  # kvm_intel/kvm_amd "nested" parameter, as sysfs shows it
    cpu_flags: frozenset[str]

    @property
    def name(self) -> str:
        if self.module == "kvm_pvm":
            return "pvm"
        if self.module in ("kvm_intel", "kvm_amd"):
            vendor = "intel" if self.module == "kvm_intel" else "amd"
            return f"{vendor} (nested)" if self.hypervisor_bit else vendor
        return "unknown"

    @property
    def meaning(self) -> str:
        if self.module == "kvm_pvm":
            return (
                "kvm_pvm is PVM, a software virtualization backend: the guest runs "
                "deprivileged without VMX or SVM, and PVM emulates every IN/OUT in software. "
                "There is no hardware exit record and no fast path to observe here; the "
                "figures are PVM's trap-and-emulate cost, not a VMX/SVM VM exit."
                + (" This host is itself a guest (CPUID hypervisor bit), which is why a "
                   "backend that needs no VMX/SVM is the one here." if self.hypervisor_bit
                   else "")
            )  # fmt: skip
        if self.module in ("kvm_intel", "kvm_amd"):
            hw = "VMX" if self.module == "kvm_intel" else "SVM"
            text = (
                f"hardware {hw} VM exits: the in-kernel figure is exit + KVM's port handler + "
                "entry; the userspace figure adds the round trip to this process, a VMM "
                "written in Python (QEMU's round trip is shorter)."
            )
            if self.nested_param in ("Y", "1"):
                text += (f" ({self.module} has nested=Y: guests of this host may run "
                         "hypervisors of their own.)")  # fmt: skip
            if self.hypervisor_bit:
                text += (
                    " This host is itself a guest (CPUID hypervisor bit), so every exit of "
                    "the probe VM also exits to the outer hypervisor (nested virtualization): "
                    "expect several times the bare-metal cost (a 2019 nested KVM measured "
                    "~13,500 cycles in-kernel, ~45,000 to userspace; IO_EXITS.md §6)."
                )
            return text
        return "unknown KVM backend: no kvm_intel, kvm_amd or kvm_pvm module was found."


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def detect(sys_root: str | os.PathLike = "/sys", proc_root: str | os.PathLike = "/proc") -> Backend:
    """The KVM backend, from ``sys_root``/module and ``proc_root``/{modules,cpuinfo} (paths
    injectable, so a test can hand in a fake tree)."""
    modules_dir = Path(sys_root) / "module"
    loaded = {m for m in ("kvm_intel", "kvm_amd", "kvm_pvm") if (modules_dir / m).is_dir()}
    listing = _read(Path(proc_root) / "modules") or ""
    loaded |= {words[0] for words in map(str.split, listing.splitlines())
               if words and words[0] in ("kvm_intel", "kvm_amd", "kvm_pvm")}  # fmt: skip
    # PVM first: it may load beside kvm_intel/kvm_amd, and then it is the one /dev/kvm uses
    module = next((m for m in ("kvm_pvm", "kvm_intel", "kvm_amd") if m in loaded), None)
    cpuinfo = _read(Path(proc_root) / "cpuinfo") or ""
    flags: frozenset[str] = frozenset()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = frozenset(line.partition(":")[2].split())
            break
    nested = _read(modules_dir / module / "parameters" / "nested") if module else None
    return Backend(module, "hypervisor" in flags, nested, flags)


# -- the device ------------------------------------------------------------------------------


def open_kvm(device: str | os.PathLike = "/dev/kvm", machine: str | None = None,
             opener=os.open) -> int:  # fmt: skip
    """An fd on ``device``, or ``KvmUnavailable`` with one line saying why."""
    arch = (machine or platform.machine()).lower()
    if arch not in X86:
        raise KvmUnavailable(f"kvm-probe needs an x86 host; this one is {arch}: the probe "
                             "guest is x86 real-mode code")  # fmt: skip
    device = Path(device)
    if not device.exists():
        raise KvmUnavailable(f"no {device}: KVM is not available here (load kvm_intel or "
                             "kvm_amd and enable VT-x/AMD-V in the firmware, or use a host "
                             "that offers nested virtualization)")  # fmt: skip
    try:
        fd = opener(str(device), os.O_RDWR | os.O_CLOEXEC)
    except PermissionError:
        raise KvmUnavailable(
            f"no permission to open {device}: add your user to the 'kvm' "
            "group (sudo usermod -aG kvm $USER) and log in again"
        ) from None
    except OSError as e:
        raise KvmUnavailable(f"cannot open {device}: {e.strerror or e}") from None
    try:
        version = fcntl.ioctl(fd, KVM_GET_API_VERSION, 0)
    except OSError as e:
        os.close(fd)
        raise KvmUnavailable(f"{device} is not a KVM device ({e.strerror or e})") from None
    if version != 12:
        os.close(fd)
        raise KvmUnavailable(f"{device} speaks KVM API version {version}, not 12")
    return fd


# -- the probe VM ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One measured loop: N exits, the guest's TSC cycles and the wall time around them."""

    port: int
    exits: int
    tsc_cycles: int
    wall_ns: int

    @property
    def cycles_per_exit(self) -> float:
        return self.tsc_cycles / self.exits

    @property
    def ns_per_exit(self) -> float:
        return self.wall_ns / self.exits


class _Vm:
    """One VM, one vCPU, 64 KiB of memory; closed by ``close``."""

    def __init__(self, kvm: int, irqchip: bool):
        self.fds: list[int] = []
        self.memory = self._buffer = self.run = None
        try:
            self._build(kvm, irqchip)
        except BaseException:
            self.close()  # nothing half-made is left open
            raise

    def _build(self, kvm: int, irqchip: bool) -> None:
        self.vm = self._fd(self._ioctl(kvm, KVM_CREATE_VM, 0, "KVM_CREATE_VM"))
        self.memory = mmap.mmap(-1, MEMORY)
        self._buffer = ctypes.c_char.from_buffer(self.memory)
        region = struct.pack("IIQQQ", 0, 0, 0, MEMORY, ctypes.addressof(self._buffer))
        self._ioctl(self.vm, KVM_SET_USER_MEMORY_REGION, region, "KVM_SET_USER_MEMORY_REGION")
        # Intel needs a TSS area for real mode without unrestricted guest; the address does
        # not fit fcntl's C int, so libc's ioctl takes it; a refusal is harmless elsewhere.
        ctypes.CDLL(None, use_errno=True).ioctl(self.vm, KVM_SET_TSS_ADDR,
                                                ctypes.c_ulong(0xFFFBD000))  # fmt: skip
        self.irqchip = False
        if irqchip:
            try:
                fcntl.ioctl(self.vm, KVM_CREATE_IRQCHIP, 0)
                self.irqchip = True
            except OSError:
                pass
        self.vcpu = self._fd(self._ioctl(self.vm, KVM_CREATE_VCPU, 0, "KVM_CREATE_VCPU"))
        size = self._ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE")
        self.run = mmap.mmap(self.vcpu, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.memory[CODE_AT : CODE_AT + len(PROBE_CODE)] = PROBE_CODE

    def _fd(self, fd: int) -> int:
        self.fds.append(fd)
        return fd

    @staticmethod
    def _ioctl(fd: int, request: int, arg, name: str):
        try:
            return fcntl.ioctl(fd, request, arg)
        except OSError as e:
            raise KvmProbeError(f"{name} failed: {e.strerror or e}") from None

    def reset(self, port: int, count: int) -> None:
        """Real mode at CS:IP 0:0x1000, with the loop's parameters in memory."""
        sregs = bytearray(self._ioctl(self.vcpu, KVM_GET_SREGS, bytes(312), "KVM_GET_SREGS"))
        struct.pack_into("QIH", sregs, 0, 0, 0xFFFF, 0)  # CS: base 0, limit 64 KiB, selector 0
        self._ioctl(self.vcpu, KVM_SET_SREGS, bytes(sregs), "KVM_SET_SREGS")
        regs = bytearray(144)
        struct.pack_into("QQ", regs, 16 * 8, CODE_AT, 0x2)  # rip, rflags (bit 1 is always 1)
        self._ioctl(self.vcpu, KVM_SET_REGS, bytes(regs), "KVM_SET_REGS")
        struct.pack_into("HHI", self.memory, PARAMS_AT, port, DONE_PORT, count)

    def loop(self, port: int, count: int) -> Figure:
        """Run the loop to its done port, answering userspace reads with all ones."""
        self.reset(port, count)
        run, vcpu = self.run, self.vcpu
        start = time.perf_counter_ns()
        while True:
            try:
                fcntl.ioctl(vcpu, KVM_RUN, 0)
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                raise KvmProbeError(f"KVM_RUN failed: {e.strerror or e}") from None
            reason = struct.unpack_from("I", run, 8)[0]
            if reason != KVM_EXIT_IO:
                name = KVM_EXIT_NAMES.get(reason, str(reason))
                raise KvmProbeError(f"the probe VM stopped with KVM_EXIT_{name}, not an I/O exit")
            direction, size, io_port, _, offset = struct.unpack_from("BBHIQ", run, 32)
            if io_port == DONE_PORT and direction != KVM_EXIT_IO_IN:
                break
            if direction == KVM_EXIT_IO_IN:
                run[offset : offset + size] = b"\xff" * size  # an unclaimed port reads ones
        wall = time.perf_counter_ns() - start
        t0, t1 = struct.unpack_from("QQ", self.memory, PARAMS_AT + 0x10)
        return Figure(port, count, (t1 - t0) & (2**64 - 1), wall)

    def close(self) -> None:
        if self.run is not None:
            self.run.close()
        self._buffer = None  # the ctypes view must go before its mmap can close
        if self.memory is not None:
            self.memory.close()
        for fd in reversed(self.fds):
            os.close(fd)
        self.fds.clear()


@dataclass(frozen=True)
class ProbeResult:
    backend: Backend
    in_kernel: Figure | None  # None: no in-kernel PIC (KVM_CREATE_IRQCHIP refused)
    userspace: Figure

    def __str__(self) -> str:
        lines = [f"KVM backend: {self.backend.name}"
                 + (f" ({self.backend.module})" if self.backend.module else "")]  # fmt: skip
        for label, fig in (("in-kernel  inb 0x4d0 (ELCR)", self.in_kernel),
                           ("userspace  inb 0x1234     ", self.userspace)):  # fmt: skip
            if fig is None:
                lines.append(f"{label}: not measured (no in-kernel PIC on this backend)")
            else:
                lines.append(f"{label}: {fig.cycles_per_exit:>10,.0f} TSC cycles, "
                             f"{fig.ns_per_exit:>9,.0f} ns per exit "
                             f"({fig.exits:,} exits)")  # fmt: skip
        if self.in_kernel is not None:
            ratio = self.userspace.ns_per_exit / self.in_kernel.ns_per_exit
            lines.append(f"userspace / in-kernel: {ratio:.1f}× (a 2019 nested KVM: ~3×)")
        lines.append(self.backend.meaning)
        lines.append(f"measured here: {platform.node() or 'this host'}, {os.cpu_count()} CPUs")
        return "\n".join(lines)


def _sized(vm: _Vm, port: int, budget_s: float, cap: int) -> Figure:
    """A short trial, then three runs sized to ``budget_s`` together; the median one (the
    machine may be busy: one run alone would carry whatever else ran meanwhile)."""
    trial = vm.loop(port, 200)
    n = int(budget_s / 3 * 1e9 / max(trial.ns_per_exit, 1.0))
    runs = sorted((vm.loop(port, max(200, min(n, cap))) for _ in range(3)),
                  key=lambda f: f.ns_per_exit)  # fmt: skip
    return runs[1]


def probe(budget_s: float = 0.8, device: str | os.PathLike = "/dev/kvm",
          sys_root: str | os.PathLike = "/sys", proc_root: str | os.PathLike = "/proc",
          machine: str | None = None) -> ProbeResult:  # fmt: skip
    """Measure both loops in about ``budget_s`` seconds (a watchdog stops a stuck VM)."""
    kvm = open_kvm(device, machine)
    backend = detect(sys_root, proc_root)
    watchdog = threading.current_thread() is threading.main_thread()
    if watchdog:

        def stuck(signum, frame):
            raise KvmProbeError(f"the probe VM ran for over {WATCHDOG_S:.0f} s; stopped it")

        previous = signal.signal(signal.SIGALRM, stuck)
        signal.setitimer(signal.ITIMER_REAL, WATCHDOG_S)
    try:
        with_pic = _Vm(kvm, irqchip=True)
        try:
            in_kernel = (_sized(with_pic, IN_KERNEL_PORT, budget_s / 2, 5_000_000)
                         if with_pic.irqchip else None)  # fmt: skip
        finally:
            with_pic.close()
        plain = _Vm(kvm, irqchip=False)
        try:
            userspace = _sized(plain, USERSPACE_PORT, budget_s / 2, 1_000_000)
        finally:
            plain.close()
    finally:
        if watchdog:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        os.close(kvm)
    return ProbeResult(backend, in_kernel, userspace)
