"""The 8259A programmable interrupt controllers (master 0x20/0x21, slave 0xA0/0xA1)."""

from __future__ import annotations

from ..errors import DeviceError
from .bus import Location


class Pic8259:
    """One Intel 8259A programmable interrupt controller (Intel datasheet 231468).

    Initialisation: a write to the even port with bit 4 set is ICW1 (bit 0 = ICW4 follows,
    bit 1 = single, no ICW3); then the odd port takes ICW2 (vector base, bits 7:3), ICW3 if
    cascaded, ICW4 if asked for. Afterwards the odd port is OCW1 (the mask, read back as is)
    and the even port OCW2 (EOI commands, bits 4:3 = 00) or OCW3 (bits 4:3 = 01: bit 1 enables
    and bit 0 picks the IRR or ISR read of the even port). No interrupt is ever requested here,
    so IRR and ISR stay 0; the model holds what firmware programs, for firmware to read back.
    OCW3's poll command (bit 2) is refused: it would need an interrupt to report.

    Location: the hypervisor (Xen's vpic.c; KVM's in-kernel irqchip, or QEMU's i8259 without
    it). Byte accesses only.
    """

    location: Location = "hypervisor"

    def __init__(self, base: int, name: str):
        self.base, self.name = base, name
        self.imr = 0xFF
        self.irr = self.isr = 0
        self.vector_base = 0
        self.icw3 = 0
        self.icw4 = 0
        self.expect: list[str] = []  # the ICWs still to come, in order
        self.read_isr = False

    @property
    def ports(self) -> range:
        return range(self.base, self.base + 2)

    def read(self, port: int, size: int) -> int:
        self._check(port, size)
        if port == self.base + 1:
            return self.imr
        return self.isr if self.read_isr else self.irr

    def write(self, port: int, size: int, value: int) -> None:
        self._check(port, size)
        if port == self.base:
            if value & 0x10:
                self.expect = ["icw2"] + ([] if value & 0x02 else ["icw3"])
                self.expect += ["icw4"] if value & 0x01 else []
                self.imr, self.isr, self.irr, self.read_isr, self.icw4 = 0, 0, 0, False, 0
            elif value & 0x18 == 0x08:
                if value & 0x04:
                    raise DeviceError(f"8259A OCW3 {value:#04x}: the poll command is not modelled")
                if value & 0x02:
                    self.read_isr = bool(value & 0x01)
            elif value & 0x20:  # OCW2 with EOI: clear the highest (or the named) in-service bit
                level = value & 0x07 if value & 0x40 else (self.isr & -self.isr).bit_length() - 1
                if level >= 0:
                    self.isr &= ~(1 << level)
            return
        if not self.expect:
            self.imr = value
            return
        step = self.expect.pop(0)
        if step == "icw2":
            self.vector_base = value & 0xF8
        elif step == "icw3":
            self.icw3 = value
        else:
            self.icw4 = value

    def _check(self, port: int, size: int) -> None:
        if size != 1:
            raise DeviceError(f"8259A port {port:#x} is 8 bits wide; refused a {size}-byte access")
