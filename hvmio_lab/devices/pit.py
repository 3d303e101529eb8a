"""The 8254 programmable interval timer (ports 0x40–0x43) and port 0x61, which gates channel 2
and shows its output."""

from __future__ import annotations

from ..errors import DeviceError
from .bus import Location
from .pm_timer import Clock

PIT_HZ = 1_193_182  # the PC's 14.31818 MHz crystal divided by 12
MODES = (0, 2, 3, 4)  # the modes modelled: no hardware-triggered one-shots (1 and 5)
REFRESH_NS = 15_085  # port 0x61 bit 4 toggles every 15.085 µs (IBM PC/AT technical reference)


class _Channel:
    """One counter: its mode, reload value, when counting (re)started, and read/write state."""

    def __init__(self) -> None:
        self.mode, self.access = 0, 3  # access: 1 = LSB, 2 = MSB, 3 = LSB then MSB
        self.reload = 0x10000
        self.loaded = False
        self.start_ns = 0
        self.frozen: int | None = None  # ticks counted when the gate went low
        self.write_low: int | None = None  # the LSB of a two-byte count, waiting for its MSB
        self.read_msb = False  # the read flip-flop of a two-byte count
        self.latched: list[int] = []  # bytes a latch command froze, read first

    def ticks(self, ns: int) -> int:
        if self.frozen is not None:
            return self.frozen
        return (ns - self.start_ns) * PIT_HZ // 1_000_000_000

    def count(self, ns: int) -> int:
        """The counting element now (datasheet: CE), 16 bits, 0 standing for 65536."""
        if not self.loaded:
            return self.reload & 0xFFFF
        n, t = self.reload, self.ticks(ns)
        if self.mode in (0, 4):
            return (n - t) & 0xFFFF  # after terminal count the counter keeps wrapping
        step = 2 if self.mode == 3 else 1
        return (n - (t * step) % n) & 0xFFFF

    def out(self, ns: int) -> bool:
        if not self.loaded:
            return self.mode != 0  # mode 0 drives OUT low from the control word on
        n, t = self.reload, self.ticks(ns)
        if self.mode == 0:
            return t >= n  # high at terminal count, and stays high
        if self.mode == 4:
            return t != n  # one low tick at terminal count
        phase = t % n
        if self.mode == 2:
            return phase != n - 1  # low for the last tick of each period
        return phase < (n + 1) // 2  # mode 3: high for the first half of each period


class Pit8254:
    """Intel 8254 programmable interval timer (Intel datasheet 231164), the PC's three counters.

    Counts at 1.193182 MHz of the machine's virtual clock, so a guest that polls it sees time
    pass only as exits advance that clock. Channel 0 is the system tick, channel 2 the speaker
    and the calibration counter firmware times its TSC against (through port 0x61, see
    ``PortB``). Modelled: control words (counter select, LSB/MSB/both, modes 0, 2, 3 and 4,
    binary counting), counter latch commands and the read-back command's count latch. Refused
    (DeviceError, nothing changed): BCD counting and modes 1 and 5, which need a gate edge,
    and accesses wider than a byte. Interrupts are not delivered (no IRQ0 line here).

    Location: the hypervisor. Xen emulates the PIT and port 0x61 itself
    (xen/arch/x86/emul-i8254.c, formerly hvm/i8254.c); QEMU/KVM do it in KVM's
    in-kernel PIT or in QEMU's hw/timer/i8254.c.
    """

    location: Location = "hypervisor"
    name = "pit"
    ports = range(0x40, 0x44)

    def __init__(self, clock: Clock):
        self.clock = clock
        self.channels = (_Channel(), _Channel(), _Channel())
        self.gate2 = False

    def out2(self) -> bool:
        return self.channels[2].out(self.clock.ns)

    def set_gate2(self, high: bool) -> None:
        channel, ns = self.channels[2], self.clock.ns
        if high and not self.gate2:
            if channel.mode == 0 and channel.frozen is not None:
                channel.start_ns = ns - channel.frozen * 1_000_000_000 // PIT_HZ
            else:
                channel.start_ns = ns  # modes 2, 3 and 4 restart on the gate's rising edge
            channel.frozen = None
        elif not high and self.gate2:
            channel.frozen = channel.ticks(ns)
        self.gate2 = high

    def read(self, port: int, size: int) -> int:
        self._check(port, size)
        if port == 0x43:
            return 0xFF  # the control word register cannot be read
        channel = self.channels[port - 0x40]
        if channel.latched:
            return channel.latched.pop(0)
        count = channel.count(self.clock.ns)
        if channel.access == 1:
            return count & 0xFF
        if channel.access == 2:
            return count >> 8
        byte = count >> 8 if channel.read_msb else count & 0xFF
        channel.read_msb = not channel.read_msb
        return byte

    def write(self, port: int, size: int, value: int) -> None:
        self._check(port, size)
        if port == 0x43:
            self._control(value)
            return
        channel = self.channels[port - 0x40]
        if channel.access == 3 and channel.write_low is None:
            channel.write_low = value
            return
        if channel.access == 3:
            count = channel.write_low | value << 8
        elif channel.access == 1:
            count = value
        else:
            count = value << 8
        channel.write_low = None
        channel.reload, channel.loaded = count or 0x10000, True
        channel.start_ns = self.clock.ns
        gated_off = port == 0x42 and not self.gate2
        channel.frozen = 0 if gated_off else None

    def _control(self, value: int) -> None:
        select, access = value >> 6, (value >> 4) & 3
        if select == 3:
            if not value & 0x20:  # read-back: latch the counts of the selected counters
                for i in range(3):
                    if value & (2 << i):
                        self._latch(self.channels[i])
            return
        channel = self.channels[select]
        if access == 0:
            self._latch(channel)
            return
        mode = (value >> 1) & 7
        mode = mode - 4 if mode in (6, 7) else mode  # 6 and 7 are modes 2 and 3
        if value & 1:
            raise DeviceError(f"8254 control word {value:#04x}: BCD counting is not modelled")
        if mode not in MODES:
            raise DeviceError(f"8254 control word {value:#04x}: mode {mode} is not modelled")
        channel.mode, channel.access, channel.loaded = mode, access, False
        channel.write_low, channel.read_msb, channel.latched = None, False, []

    def _latch(self, channel: _Channel) -> None:
        if channel.latched:
            return  # a second latch before the first is read is ignored (datasheet)
        count = channel.count(self.clock.ns)
        channel.latched = {1: [count & 0xFF], 2: [count >> 8]}.get(
            channel.access, [count & 0xFF, count >> 8]
        )

    @staticmethod
    def _check(port: int, size: int) -> None:
        if size != 1:
            raise DeviceError(f"8254 port {port:#x} is 8 bits wide; refused a {size}-byte access")


class PortB:
    """Port 0x61, the PC/AT's "port B" (PIIX3 datasheet 290550: NMI Status and Control).

    Bit 0 gates PIT channel 2, bit 1 enables the speaker data; bits 2 and 3 are the parity and
    I/O channel check enables. Read back: those four bits, bit 4 the refresh toggle, bit 5
    channel 2's OUT (what firmware polls to time its TSC), bits 6 and 7 clear (no parity or
    channel errors). Byte accesses only.

    Location: the hypervisor, with the PIT (Xen's i8254.c handles port 0x61 too).
    """

    location: Location = "hypervisor"
    name = "port61"
    ports = range(0x61, 0x62)

    def __init__(self, pit: Pit8254):
        self.pit = pit
        self.bits = 0x00

    def read(self, port: int, size: int) -> int:
        self._check(size)
        refresh = (self.pit.clock.ns // REFRESH_NS) & 1
        return self.bits | refresh << 4 | self.pit.out2() << 5

    def write(self, port: int, size: int, value: int) -> None:
        self._check(size)
        self.bits = value & 0x0F
        self.pit.set_gate2(bool(value & 0x01))

    @staticmethod
    def _check(size: int) -> None:
        if size != 1:
            raise DeviceError(f"port 0x61 is 8 bits wide; refused a {size}-byte access")
