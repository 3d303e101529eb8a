"""The i8042 keyboard controller (ports 0x60/0x64) with a keyboard that answers commands."""

from __future__ import annotations

from collections import deque

from ..errors import DeviceError
from .bus import Location

OBF, IBF, SYS, CMD, UNLOCKED = 0x01, 0x02, 0x04, 0x08, 0x10
CTR_KBD_DISABLE, CTR_AUX_DISABLE, CTR_SYS = 0x10, 0x20, 0x04
ACK, BAT_OK, RESEND = 0xFA, 0xAA, 0xFE
_PARAMETER_COMMANDS = (0xED, 0xF0, 0xF3)  # LEDs, scan-code set, typematic: one byte follows
_KEYBOARD_REPLIES = {0xFF: (ACK, BAT_OK), 0xF2: (ACK, 0xAB, 0x83), 0xEE: (0xEE,)}


class I8042:
    """An 8042-compatible keyboard controller and an MF-II keyboard, no mouse.

    Sources: the IBM PC/AT Technical Reference (keyboard controller commands and status
    register) and the IBM "Keyboard and Auxiliary Device Controller" command set as QEMU's
    hw/input/pckbd.c also implements it. Status (0x64 read): bit 0 output buffer full, bit 1
    input buffer full (always clear: the model takes bytes at once), bit 2 system flag, bit 3
    last write was a command, bit 4 keyboard not inhibited. Controller commands (0x64 write):
    20h read and 60h write the command byte, A7h/A8h aux off/on, A9h/ABh interface tests (00h =
    good), AAh self-test (55h), ADh/AEh keyboard off/on, D0h/D1h output port, FEh pulse reset
    (noted in ``reset_requested``). Bytes written to 0x60 otherwise go to the keyboard, which
    ACKs (FAh) each command, adds AAh after a reset (FFh) and its ID (ABh 83h) after F2h, and
    takes one parameter after EDh/F0h/F3h. Bytes sent to the absent mouse (after D4h) get no
    answer. Other controller commands are refused. No IRQ1 is raised (no interrupt line here).

    Location: the device model (QEMU emulates the i8042 for Xen HVM guests and for KVM).
    Byte accesses only.
    """

    location: Location = "device-model"
    name = "i8042"

    def __init__(self) -> None:
        self.output: deque[int] = deque()
        self.last = 0x00
        self.ctr = 0x50 | CTR_SYS  # translation on, keyboard disabled until firmware enables it
        self.status_flags = UNLOCKED
        self.pending: int | None = None  # a controller command waiting for its data byte
        self.keyboard_pending = False  # the keyboard awaits a command's parameter
        self.output_port = 0x03  # A20 on, not in reset
        self.reset_requested = False

    @property
    def claims(self) -> tuple[tuple[range, I8042], ...]:
        """Two ports, 0x60 and 0x64: 0x61 between them is port B (``pit.PortB``)."""
        return (range(0x60, 0x61), self), (range(0x64, 0x65), self)

    def read(self, port: int, size: int) -> int:
        self._check(port, size)
        if port == 0x64:
            return self.status_flags | (self.ctr & CTR_SYS) | (OBF if self.output else 0)
        if self.output:
            self.last = self.output.popleft()
        return self.last

    def write(self, port: int, size: int, value: int) -> None:
        self._check(port, size)
        if port == 0x64:
            self._command(value)
        else:
            self.status_flags &= ~CMD
            self._data(value)

    def _command(self, command: int) -> None:
        replies = {0x20: (self.ctr,), 0xAA: (0x55,), 0xA9: (0x00,), 0xAB: (0x00,),
                   0xD0: (self.output_port,)}  # fmt: skip
        if command in replies:
            self.output.extend(replies[command])
        elif command in (0x60, 0xD1, 0xD2, 0xD4):
            self.pending = command
        elif command in (0xA7, 0xA8):
            off = command == 0xA7
            self.ctr = self.ctr | CTR_AUX_DISABLE if off else self.ctr & ~CTR_AUX_DISABLE
        elif command in (0xAD, 0xAE):
            off = command == 0xAD
            self.ctr = self.ctr | CTR_KBD_DISABLE if off else self.ctr & ~CTR_KBD_DISABLE
        elif command >= 0xF0:
            self.reset_requested |= not command & 0x01  # bit 0 low pulses the reset line
        else:
            raise DeviceError(f"i8042 controller command {command:#04x} is not modelled")
        self.status_flags |= CMD

    def _data(self, value: int) -> None:
        pending, self.pending = self.pending, None
        if pending == 0x60:
            self.ctr = value
        elif pending == 0xD1:
            self.output_port = value
        elif pending == 0xD2:
            self.output.append(value)  # "write keyboard output buffer": echoed as if typed
        elif pending == 0xD4:
            pass  # to the mouse, which is absent: no answer
        elif self.keyboard_pending:
            self.keyboard_pending = False
            self.output.append(ACK)
        else:
            self.keyboard_pending = value in _PARAMETER_COMMANDS
            if value in _PARAMETER_COMMANDS or value in (0xF4, 0xF5, 0xF6):
                self.output.append(ACK)
            else:
                self.output.extend(_KEYBOARD_REPLIES.get(value, (RESEND,)))

    @staticmethod
    def _check(port: int, size: int) -> None:
        if size != 1:
            raise DeviceError(f"i8042 port {port:#x} is 8 bits wide; refused a {size}-byte access")
