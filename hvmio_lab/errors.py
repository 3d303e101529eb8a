"""The project's exceptions: every refusal names the field or byte and the value it saw."""


class HvmioError(Exception):
    """Base class, so callers (widgets, the CLI) can catch everything this package raises."""


class ExitInfoError(HvmioError, ValueError):
    """An exit record that the manuals say cannot happen (reserved bits, non-one-hot sizes…)."""


class InvalidInstruction(HvmioError, ValueError):
    """Instruction bytes that are not a valid IN/OUT/INS/OUTS (or are cut short)."""


class BusError(HvmioError, ValueError):
    """A device attachment that would make two devices claim one port."""


class DeviceError(HvmioError):
    """A device refused an access (an unsupported size, say); nothing was changed."""


class GuestMemoryError(HvmioError):
    """A guest-physical access outside the machine's memory."""


class PageFault(HvmioError):
    """A guest access touched a page that is marked not present; the CPU would raise #PF."""

    def __init__(self, address: int, write: bool):
        self.address = address
        self.write = write
        kind = "write to" if write else "read from"
        super().__init__(f"#PF: {kind} not-present page at {address:#x}")


class NotAnIoExit(HvmioError):
    """The instruction at RIP does not cause an I/O exit, so there is nothing to handle."""


class GuestRunaway(HvmioError):
    """A guest ran past its instruction budget without an I/O exit or HLT."""


class InvalidValue(HvmioError, ValueError):
    """An argument outside what it may be (a negative clock, text that is not a number)."""
