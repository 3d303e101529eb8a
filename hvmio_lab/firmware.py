"""Real firmware on the guest CPU: find SeaBIOS where distributions install it, read its
version, and boot it on the unicorn vCPU (``guest.Guest``) with the firmware PC's devices,
through our own boot sector (data/boot) on the ATA disk.

SeaBIOS is an installed dependency, never shipped here. It is looked for in ``HVMIO_SEABIOS``,
then where Debian/Ubuntu (``seabios``), QEMU's packages, Fedora's ``seabios-bin`` and
Homebrew's qemu put it.

What the boot needs besides port I/O, and how it is given here (found by running SeaBIOS
1.16.2; the devices are ``devices.attach_firmware_pc``):
- the whole image just below 4 GiB, where a PC's flash sits, and its RAM copy already made
  below 1 MiB (a 128 KiB bios.bin at 0xE0000, a 256 KiB one at 0xC0000). The BIOS area is
  RAM from power-on and the i440FX's PAM registers say so, so SeaBIOS does not run from the
  4 GiB alias to make that copy (``devices.pci.i440fx_host_bridge``); code there would be
  outside the guest memory the exit paths read;
- 128 MiB of RAM, reported by CMOS and by fw_cfg's ``etc/e820``;
- the local APIC and I/O APIC register pages as plain memory: SeaBIOS enables the APIC and
  sends an INIT/SIPI that no other CPU answers. That is MMIO, outside this workbook: it never
  exits;
- real-mode ``int n`` through the IVT (unicorn does not vector it). The teletype call
  (int 10h, AH=0Eh) is also kept as screen text, standing in for a VGA BIOS, whose absence
  makes SeaBIOS's own int 10h do nothing. SeaBIOS calls its handlers directly (no ``int``)
  for its own screen text, which it writes to the debug port 0x402 as well;
- time: the machine's virtual clock moves 1 µs per exit (``guest.EXIT_QUANTUM_NS``) and a
  little per RDTSC, and the TSC counts it at 1 GHz. PIT channel 2 counts the same clock, so
  SeaBIOS's TSC calibration (polling port 0x61 until channel 2 expires) ends, and every run
  makes the same exits: fast, emulate and seed2010 can be compared exit for exit.
"""

from __future__ import annotations

import ctypes
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter_ns

from unicorn import UC_HOOK_INSN, UC_PROT_READ, UC_PROT_WRITE, Uc, UcError
from unicorn import x86_const as ux

from . import resources
from .devices import AtaDisk, attach_firmware_pc, device_name
from .errors import GuestRunaway, HvmioError
from .guest import Guest, Program
from .machine import Machine, register_values

ENV = "HVMIO_SEABIOS"
SEARCH = (
    Path("/usr/share/seabios/bios.bin"),  # Debian, Ubuntu: apt-get install seabios
    Path("/usr/share/qemu/bios.bin"),  # QEMU packages, Fedora seabios-bin
    Path("/usr/share/qemu/bios-256k.bin"),
    Path("/opt/homebrew/share/qemu/bios.bin"),  # Homebrew qemu (Apple silicon, then Intel)
    Path("/usr/local/share/qemu/bios.bin"),
    Path("/opt/homebrew/share/qemu/bios-256k.bin"),
    Path("/usr/local/share/qemu/bios-256k.bin"),
)
INSTALL_HINT = (
    "SeaBIOS is not installed: apt-get install seabios (or set HVMIO_SEABIOS to a bios.bin)"
)
MIB = 1 << 20
MEMORY_SIZE = 128 * MIB  # what SeaBIOS on QEMU's i440FX machine expects
MIN_IMAGE, MAX_IMAGE = 128 << 10, 256 << 10  # bios.bin and bios-256k.bin
LAPIC_PAGE, IOAPIC_PAGE = 0xFEE0_0000, 0xFEC0_0000
RESET_CS, RESET_IP = 0xF000, 0xFFF0
RDTSC_QUANTUM_NS = 100  # model: virtual time that passes per RDTSC; the TSC counts 1 GHz of it
EXIT_LIMIT = 100_000  # a boot takes about 6,300 exits: far past that, the firmware is spinning
SUCCESS_POST = 0xAA  # what data/boot/boot.asm writes to port 0x80 once stage 2 checks out
_VERSION = re.compile(rb"(?:rel-)?\d+\.\d+(?:\.\d+)?(?:[-~+.][0-9A-Za-z_.~+-]*)?\Z")


class SeabiosMissing(HvmioError):
    """SeaBIOS is not where it is looked for; the message is one line saying how to get it."""


@dataclass(frozen=True)
class Seabios:
    """A SeaBIOS image found on this machine: where, its bytes and the version it carries."""

    path: Path
    image: bytes = field(repr=False)
    version: str

    @property
    def banner(self) -> str:
        """The first line SeaBIOS prints, as it builds it from its version string."""
        return f"SeaBIOS (version {self.version})"


def seabios_path(environ: dict[str, str] | None = None, path: Path | None = None) -> Path:
    """The SeaBIOS image to boot: ``path`` if given, else ``HVMIO_SEABIOS`` if set (either
    must exist), else the first of the distributions' places. Raises SeabiosMissing with a
    one-line hint."""
    environ = os.environ if environ is None else environ
    if path is not None:
        if not Path(path).is_file():
            raise SeabiosMissing(f"{path} is not a file (want a SeaBIOS bios.bin)")
        return Path(path)
    chosen = environ.get(ENV)
    if chosen:
        if not Path(chosen).is_file():
            raise SeabiosMissing(f"{ENV}={chosen} is not a file (unset it to look in the usual "
                                 "places, or: apt-get install seabios)")  # fmt: skip
        return Path(chosen)
    for path in SEARCH:
        if path.is_file():
            return path
    raise SeabiosMissing(INSTALL_HINT)


def seabios_version(image: bytes) -> str:
    """The version string SeaBIOS embeds (its build's ``VERSION``), read from the image.

    SeaBIOS prints it in its banner through the format "SeaBIOS (version %s)", so it is the
    NUL-terminated string in the image that looks like a release: digits.digits, then the
    build's suffix (``1.16.2-debian-1.16.2-1``, ``rel-1.16.3-0-g…``)."""
    if b"SeaBIOS (version %s)" not in image:
        raise HvmioError("this image is not SeaBIOS: it has no 'SeaBIOS (version %s)' banner")
    candidates = [s for s in image.split(b"\0") if 3 <= len(s) <= 100 and _VERSION.match(s)]
    if not candidates:
        raise HvmioError("SeaBIOS image carries no version string")
    return max(candidates, key=len).decode("ascii")


def find_seabios(environ: dict[str, str] | None = None, path: Path | None = None) -> Seabios:
    """Find SeaBIOS and read it (see ``seabios_path``)."""
    path = seabios_path(environ, path)
    image = path.read_bytes()
    if len(image) not in (MIN_IMAGE, MAX_IMAGE):
        raise HvmioError(f"{path} is {len(image)} bytes: a SeaBIOS image is 128 or 256 KiB")
    return Seabios(path, image, seabios_version(image))


def boot_disk() -> bytes:
    """Our disk: data/boot/disk.img, whose first sectors are data/boot/boot.bin."""
    return resources.data("boot", "disk.img").read_bytes()


class RecordingDisk(AtaDisk):
    """The ATA disk, noting each READ SECTORS command (first LBA, sector count) it accepts."""

    def __init__(self, image: bytes | None = None, busy_polls: int = 1):
        self.reads: list[tuple[int, int]] = []
        super().__init__(image, busy_polls)

    def write(self, port: int, size: int, value: int) -> None:
        command = port == 0x1F7 and size == 1 and value == 0x20 and not self.drive & self.DEV
        lba, count = self.lba(), self.count or 256
        super().write(port, size, value)
        if command and self.error == 0:
            self.reads.append((lba, count))


@dataclass(frozen=True)
class BootResult:
    """What a SeaBIOS boot did, for a summary, a chart or a test."""

    version: str
    vendor: str
    path: str
    console: str  # the debug port 0x402
    teletype: str  # int 10h AH=0Eh output (our boot sector's text)
    exits: int
    by_port: Counter
    by_device: Counter
    by_path: dict[str, int]
    string_exits: int
    ports: tuple[int, ...]  # the port of every exit, in order: where exits cluster
    device_names: dict[int, str]  # port → the device there ("unclaimed" for none)
    post_codes: tuple[int, ...]
    disk_reads: tuple[tuple[int, int], ...]
    registers: dict[str, int]
    halted: bool
    wall_ns: int

    @property
    def success(self) -> bool:
        return self.halted and self.post_codes[-1:] == (SUCCESS_POST,)

    def runs(self, least: int = 50) -> list[tuple[int, int, int]]:
        """(first exit, exits, port) of each stretch of at least ``least`` exits in a row on
        one port: the polling loops."""
        stretches, start = [], 0
        ports = self.ports
        for i in range(1, len(ports) + 1):
            if i == len(ports) or ports[i] != ports[start]:
                if i - start >= least:
                    stretches.append((start + 1, i - start, ports[start]))
                start = i
        return stretches

    def summary(self, top: int = 8, timed: bool = True) -> str:
        ports = ", ".join(f"{port:#x} {n}" for port, n in self.by_port.most_common(top))
        devices = ", ".join(f"{name} {n}" for name, n in self.by_device.most_common(top))
        paths = ", ".join(f"{k} {v}" for k, v in sorted(self.by_path.items()))
        status = "success" if self.success else ("halted" if self.halted else "stopped")
        sectors = sum(n for _, n in self.disk_reads)
        return "\n".join((
            f"SeaBIOS {self.version} ({self.vendor}, {self.path}): {status} after "
            f"{self.exits:,} exits" + (f" in {self.wall_ns / 1e9:.2f} s" if timed else "")
            + f" [{paths}]",
            f"string I/O exits: {self.string_exits:,}; disk reads: {len(self.disk_reads)} "
            f"({sectors} sectors); POST {[hex(c) for c in self.post_codes]}",
            f"top ports: {ports}",
            f"top devices: {devices}",
        ))  # fmt: skip


# ---------------------------------------------------------------- the boot

# Ports firmware polls in a loop, and what it waits for there: the words of a runaway error.
SPINS = {
    0x61: "the guest is calibrating its TSC against PIT channel 2, whose OUT2 (bit 5) it polls",
    0x64: "the guest waits on the i8042 keyboard controller",
    0x1F7: "the guest waits on the ATA disk's status",
    0x3FD: "the guest waits for the UART's transmitter",
}


class FirmwareGuest(Guest):
    """SeaBIOS on the unicorn vCPU (``guest.Guest``), every IN/OUT/INS/OUTS exiting to the
    hypervisor before it executes, with the firmware PC's devices and our boot disk.

    On top of ``Guest``: the image's RAM copy ending at 1 MiB and the image itself ending at
    4 GiB, entry at F000:FFF0, real-mode interrupts through the IVT (teletype text kept), the
    APIC register pages, a virtual TSC, and counts of exits by port, device and string I/O.
    """

    def __init__(self, firmware: Seabios | None = None, vendor: str = "svm",
                 path: str = "fast", recording: bool = False, disk: bytes | None = None,
                 memory_size: int = MEMORY_SIZE, exit_limit: int = EXIT_LIMIT,
                 timed: bool | None = None):  # fmt: skip
        self.firmware = firmware if firmware is not None else find_seabios()
        self._disk_image = boot_disk() if disk is None else bytes(disk)
        image = self.firmware.image
        # The program is the image's RAM copy, ending at 1 MiB. code_size 0: no capstone
        # sweep of 128 KiB for a listing (display only anyway, and wrong for relocated code).
        program = Program(f"SeaBIOS {self.firmware.version}", 16, 0x10_0000 - len(image), 0,
                          image, f"SeaBIOS from {self.firmware.path}", SUCCESS_POST,
                          {"code_size": 0})  # fmt: skip
        super().__init__(program, vendor, path, recording, timed=timed,
                         memory_size=memory_size, attach=self._attach,
                         roms={0x1_0000_0000 - len(image): image},
                         entry=(RESET_CS, RESET_IP), interrupts=self._interrupt,
                         exit_limit=exit_limit)  # fmt: skip

    def _attach(self, machine: Machine) -> None:
        self.disk = RecordingDisk(self._disk_image)
        attach_firmware_pc(machine, self.memory_size, disk=self.disk)

    def reset(self) -> None:
        """Power on again: ``Guest.reset`` builds a fresh CPU, memory and devices; then the
        APIC pages and the virtual TSC go onto the new CPU."""
        super().reset()
        for page in (LAPIC_PAGE, IOAPIC_PAGE):  # plain memory: see the module docstring
            self.uc.mem_map(page, 0x1000, UC_PROT_READ | UC_PROT_WRITE)
        self.virtual_tsc = _hook_rdtsc(self.uc, self._on_rdtsc)
        self.teletype = bytearray()
        self.by_port: Counter[int] = Counter()
        self.by_device: Counter[str] = Counter()
        self.string_exits = 0
        self.ports: list[int] = []

    def _interrupt(self, guest: Guest, vector: int) -> None:
        eax = self.uc.reg_read(ux.UC_X86_REG_EAX)
        if vector == 0x10 and eax >> 8 & 0xFF == 0x0E:  # teletype: what a VGA BIOS would show
            self.teletype.append(eax & 0xFF)
        self.deliver_real_mode(vector)

    def _on_rdtsc(self, uc: Uc) -> int:
        """RDTSC reads the virtual clock (1 GHz), which moves a little for each read, so that
        the firmware's delays and timeouts end after the same instructions on every run."""
        clock = self.machine.clock
        clock.advance(RDTSC_QUANTUM_NS)
        uc.reg_write_batch([(ux.UC_X86_REG_EAX, clock.ns & 0xFFFF_FFFF),
                            (ux.UC_X86_REG_EDX, clock.ns >> 32)])  # fmt: skip
        return 1  # skip the instruction: its result is written

    def step(self):
        try:
            outcome = super().step()
        except GuestRunaway as e:
            raise GuestRunaway(self._explain(e)) from e
        if outcome is not None and outcome.access is not None:
            access = outcome.access
            self.by_port[access.port] += 1
            self.by_device[self._device_name(access.port)] += 1
            self.string_exits += access.string
            self.ports.append(access.port)
        return outcome

    def _explain(self, runaway: GuestRunaway) -> str:
        if not self.by_port:
            return str(runaway)
        port, n = self.by_port.most_common(1)[0]
        why = SPINS.get(port, "the guest polls it in a loop")
        return f"{runaway}; {n:,} of {self.exits:,} exits were on port {port:#x}: {why}"

    def _device_name(self, port: int) -> str:
        device = self.machine.bus.device_at(port)
        return "unclaimed" if device is None else device_name(device)

    def boot(self) -> BootResult:
        """Run until the firmware (or our boot sector) halts."""
        start = perf_counter_ns()
        while self.step() is not None:
            pass
        return self.boot_result(perf_counter_ns() - start)

    def boot_result(self, wall_ns: int = 0) -> BootResult:
        counters = self.hypervisor.counters
        devices = self.devices
        return BootResult(
            version=self.firmware.version, vendor=self.vendor, path=self.path,
            console=devices["debugcon"].text, teletype=self.teletype.decode("latin-1"),
            exits=self.exits, by_port=Counter(self.by_port), by_device=Counter(self.by_device),
            by_path={k: counters[k] for k in ("fast", "emulate") if counters[k]},
            string_exits=self.string_exits, ports=tuple(self.ports),
            device_names={port: self._device_name(port) for port in self.by_port},
            post_codes=tuple(devices["post"].codes),
            disk_reads=tuple(self.disk.reads), registers=register_values(self.cpu),
            halted=self.halted, wall_ns=wall_ns,
        )  # fmt: skip


def _hook_rdtsc(uc: Uc, callback) -> bool:
    """Hook RDTSC; False where this unicorn cannot. The C library (2.x) hooks RDTSC like
    CPUID, but the Python binding 2.1 maps only IN, OUT, SYSCALL and CPUID, so the hook goes
    in through the binding's own CPUID-shaped callback type. Without it the TSC is the host's
    clock and a boot's exit count varies from run to run (its console and ending do not)."""
    try:
        from unicorn.unicorn_py3.arch.intel import HOOK_INSN_CPUID_CFUNC
        from unicorn.unicorn_py3.unicorn import uccallback

        wrapped = uccallback(uc, HOOK_INSN_CPUID_CFUNC)(lambda u, key: callback(u))
        uc._Uc__do_hook_add(UC_HOOK_INSN, wrapped, 1, 0, ctypes.c_int(ux.UC_X86_INS_RDTSC))
    except (ImportError, AttributeError, TypeError, UcError):
        return False
    return True


def boot(vendor: str = "svm", path: str = "fast", firmware: Seabios | None = None,
         disk: bytes | None = None, exit_limit: int = EXIT_LIMIT) -> BootResult:  # fmt: skip
    """Boot SeaBIOS through our boot sector, recording off. Raises SeabiosMissing (one line:
    how to install it) where there is no SeaBIOS."""
    return FirmwareGuest(firmware, vendor, path, disk=disk, exit_limit=exit_limit).boot()
