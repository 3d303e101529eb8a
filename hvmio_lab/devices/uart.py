"""The 16550 UART on COM1."""

from __future__ import annotations

from collections import deque

from ..errors import DeviceError
from .bus import Location

_LSR_IDLE = 0x60  # THRE | TEMT: the transmitter is always empty


class Uart16550:
    """A 16550 UART (PC16550D datasheet, Table II register map), DLAB = 0 view plus divisor.

    THR writes append to ``output``; RBR reads consume ``input`` one byte at a time (the
    side-effecting read that must never be replayed). LSR reports data ready (bit 0) and an
    always-empty transmitter (THRE bit 5, TEMT bit 6): like QEMU's emulated UART, the model
    transmits instantly, so LSR idles at 0x60. Registers are 8 bits wide: wider accesses, and
    values or ports that do not fit, are refused with DeviceError. IER bits 7:4 are not
    implemented on a 16550 and read 0 (datasheet, Table II).
    """

    location: Location = "device-model"
    name = "uart"
    LSR_DR, LSR_THRE, LSR_TEMT = 0x01, 0x20, 0x40

    def __init__(self, base: int = 0x3F8, input: bytes = b""):
        self.base = base
        self.input: deque[int] = deque(input)
        self.output = bytearray()
        self.regs = {1: 0, 3: 0, 4: 0, 7: 0}  # IER, LCR, MCR, SCR
        self.divisor = 12  # 9600 baud from the 1.8432 MHz crystal

    @property
    def ports(self) -> range:
        return range(self.base, self.base + 8)

    @property
    def text(self) -> str:
        return self.output.decode("latin-1")

    def feed(self, data: bytes) -> None:
        self.input.extend(data)

    def _check(self, port: int, size: int) -> int:
        valid = port.__class__ is int
        offset = port - self.base if valid else -1
        if size != 1 or not 0 <= offset < 8:  # the message is worded only when it is needed
            shown = f"{port:#x}" if valid else repr(port)
            if size != 1:
                raise DeviceError(
                    f"16550 registers are 8 bits wide; refused a {size}-byte access to {shown}"
                )
            last = self.base + 7
            raise DeviceError(f"the UART has ports {self.base:#x}..{last:#x}, got {shown}")
        return offset

    def read(self, port: int, size: int) -> int:
        offset = self._check(port, size)
        if offset == 5:  # LSR first, the register a driver polls (DLAB does not touch it)
            return _LSR_IDLE | self.LSR_DR if self.input else _LSR_IDLE
        if offset < 2 and self.regs[3] & 0x80:  # DLAB: the divisor latch
            return (self.divisor >> (8 * offset)) & 0xFF
        if offset == 0:
            return self.input.popleft() if self.input else 0
        if offset == 2:
            return 0x01  # IIR: no interrupt pending
        if offset == 6:
            return 0xB0  # MSR: DCD, DSR and CTS asserted
        return self.regs[offset]

    def write(self, port: int, size: int, value: int) -> None:
        offset = self._check(port, size)
        if value.__class__ is not int or not 0 <= value <= 0xFF:
            raise DeviceError(f"a 16550 register takes a byte 0..0xff, got {value!r}")
        if offset < 2 and self.regs[3] & 0x80:  # DLAB: the divisor latch
            shift = 8 * offset
            self.divisor = (self.divisor & ~(0xFF << shift)) | (value << shift)
        elif offset == 0:
            self.output.append(value)
        elif offset == 1:
            self.regs[1] = value & 0x0F  # IER bits 7:4 are always 0
        elif offset in self.regs:
            self.regs[offset] = value
        # FCR (2), LSR (5) and MSR (6) writes have no modelled effect
