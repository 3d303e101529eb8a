"""The CMOS RAM and real-time clock at ports 0x70/0x71."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..errors import DeviceError
from .bus import Location, ones
from .pm_timer import Clock

MIB = 1 << 20
RTC_REGISTERS = 0x0E  # 0x00–0x0D: the clock's registers; then battery-backed RAM
# The clock's reading at virtual time 0: a fixed date, so every boot reads the same time.
EPOCH = datetime(2010, 3, 1, 12, 0, 0)
_TIME_FIELDS = {0x00: "second", 0x02: "minute", 0x04: "hour", 0x07: "day", 0x08: "month",
                0x09: "year"}  # fmt: skip


def _bcd(value: int) -> int:
    return (value // 10) << 4 | value % 10


def _unbcd(value: int) -> int:
    return (value >> 4) * 10 + (value & 0x0F)


class CmosRtc:
    """MC146818A real-time clock with 128 bytes of CMOS RAM (Motorola MC146818A datasheet).

    Port 0x70 selects a register (bits 6:0; bit 7 masks NMI on a PC, kept in ``nmi_masked``);
    port 0x71 reads or writes it. Registers 0x00–0x09 are the time, read from a fixed start
    date plus the machine's virtual clock, in BCD or binary and 24- or 12-hour form as
    register B (DM bit 2, 24/12 bit 1) says; a write to a time field moves the clock. UIP
    (register A bit 7) never shows: the model's update is instant. Register C (flags) clears
    on read; register D bit 7 (VRT) reports a good battery. The rest is RAM, laid out as the
    IBM PC/AT does: 0x15/0x16 base memory in KiB, 0x17/0x18 and 0x30/0x31 extended memory
    above 1 MiB in KiB (at most 65535), 0x34/0x35 memory above 16 MiB in 64 KiB units (as
    QEMU and Bochs set them, and SeaBIOS reads them), 0x32 the century in BCD.

    Location: split, as Xen splits the chip. Xen emulates the clock's own registers
    0x00–0x0D in the hypervisor (xen/arch/x86/hvm/rtc.c, whose RTC_CMOS_SIZE is 14) and
    forwards an access to the RAM behind them (0x0E–0x7F: memory sizes, the shutdown byte) to
    QEMU. So ``location`` follows the register selected when the access is made. (Xen also
    forwards a write to port 0x70 that selects the RAM; the model counts a 0x70 write by the
    register selected before it.) QEMU/KVM keep the whole chip in the device model
    (hw/rtc/mc146818rtc.c).

    Only byte accesses exist; wider ones are refused. Port 0x70 is write-only on the PC
    chipsets (reads float high).
    """

    name = "cmos"
    ports = range(0x70, 0x72)
    REG_A, REG_B, REG_C, REG_D = 0x0A, 0x0B, 0x0C, 0x0D

    def __init__(self, clock: Clock, memory_size: int = 128 * MIB):
        if memory_size < MIB or memory_size % (64 << 10):
            raise DeviceError(
                f"memory_size must be ≥ 1 MiB in whole 64 KiB units, got {memory_size}"
            )
        self.clock = clock
        self.index = 0
        self.nmi_masked = False
        self.offset = timedelta(0)  # moved by guest writes to the time fields
        self.ram = bytearray(128)
        self.ram[self.REG_A] = 0x26  # 32.768 kHz time base, 1.024 kHz periodic rate
        self.ram[self.REG_B] = 0x02  # 24-hour, BCD, no interrupts
        self.ram[self.REG_D] = 0x80  # VRT: the RAM and time are valid
        extended = min((memory_size - MIB) // 1024, 0xFFFF)
        above_16m = max(memory_size - 16 * MIB, 0) // (64 << 10)
        for index, value in ((0x15, 640), (0x17, extended), (0x30, extended),
                             (0x34, min(above_16m, 0xFFFF))):  # fmt: skip
            self.ram[index : index + 2] = value.to_bytes(2, "little")
        self.ram[0x32] = _bcd(EPOCH.year // 100)  # the century, where QEMU keeps it

    @property
    def location(self) -> Location:
        """The hypervisor while an RTC register (0x00–0x0D) is selected, else the device model."""
        return "hypervisor" if self.index < RTC_REGISTERS else "device-model"

    def now(self) -> datetime:
        return EPOCH + self.offset + timedelta(microseconds=self.clock.ns // 1000)

    def _time_byte(self, index: int) -> int:
        now, reg_b = self.now(), self.ram[self.REG_B]
        if index == 0x06:
            value = now.isoweekday() % 7 + 1  # 1 = Sunday
        elif index in (0x01, 0x03, 0x05):
            return self.ram[index]  # the alarm registers are plain storage here
        else:
            value = getattr(now, _TIME_FIELDS[index])
            if index == 0x09:
                value %= 100
        pm = 0
        if index == 0x04 and not reg_b & 0x02:  # 12-hour form: 1–12, bit 7 = PM
            pm, value = (0x80 if value >= 12 else 0), (value % 12) or 12
        return (value if reg_b & 0x04 else _bcd(value)) | pm

    def _set_time(self, index: int, value: int) -> None:
        reg_b = self.ram[self.REG_B]
        pm = index == 0x04 and not reg_b & 0x02 and value & 0x80
        number = value & 0x7F if index == 0x04 else value
        number = number if reg_b & 0x04 else _unbcd(number)
        if index == 0x04 and not reg_b & 0x02:
            number = number % 12 + (12 if pm else 0)
        field = _TIME_FIELDS[index]
        if index == 0x09:
            number += 2000
        now = self.now()
        try:
            moved = now.replace(**{field: number})
        except ValueError as e:
            raise DeviceError(
                f"CMOS time register {index:#04x} cannot hold {value:#04x}: {e}"
            ) from e
        self.offset += moved - now

    def read(self, port: int, size: int) -> int:
        self._check(port, size)
        if port == 0x70:
            return ones(1)
        index = self.index
        if index < 0x0A and index not in (0x01, 0x03, 0x05):
            return self._time_byte(index)
        value = self.ram[index]
        if index == self.REG_C:
            self.ram[index] = 0  # reading the flags acknowledges them
        return value

    def write(self, port: int, size: int, value: int) -> None:
        self._check(port, size)
        if port == 0x70:
            self.index, self.nmi_masked = value & 0x7F, bool(value & 0x80)
            return
        index = self.index
        if index in _TIME_FIELDS:
            self._set_time(index, value)
        elif index == self.REG_A:
            self.ram[index] = (self.ram[index] & 0x80) | (value & 0x7F)  # UIP is read-only
        elif index not in (self.REG_C, self.REG_D):  # C and D are read-only
            self.ram[index] = value

    def _check(self, port: int, size: int) -> None:
        if size != 1:
            raise DeviceError(f"CMOS port {port:#x} is 8 bits wide; refused a {size}-byte access")
