"""The I/O bus: routes port accesses to devices, and what every device must provide.

A device is any object with ``read(port, size) -> int``, ``write(port, size, value)`` and a
``location``: ``"hypervisor"`` (handled in the hypervisor, like Xen's PM timer) or
``"device-model"`` (an external process, like qemu-dm's IDE disk, reached by a request and a
later completion). A device that cannot serve an access raises ``DeviceError`` before it
changes any of its state.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
from typing import Literal, NamedTuple, NoReturn, Protocol

from ..errors import BusError, DeviceError

Location = Literal["hypervisor", "device-model"]


class Clock(Protocol):
    """Guest time in ns, for the devices that keep time (``machine.VirtualClock`` is one):
    typed here so that no device imports the machine above it."""

    ns: int


class Device(Protocol):
    location: Location

    def read(self, port: int, size: int) -> int: ...
    def write(self, port: int, size: int, value: int) -> None: ...


def ones(size: int) -> int:
    """All ones for an access of ``size`` bytes: what a read from nowhere returns (master abort)."""
    return (1 << (8 * size)) - 1


class BusEvent(NamedTuple):
    """One port access as the bus saw it. A NamedTuple: the log takes one per access."""

    port: int
    size: int
    is_in: bool
    value: int
    device: str  # the device's name, or "unclaimed"
    location: str

    def __str__(self) -> str:
        arrow = "→" if self.is_in else "←"
        verb = "IN " if self.is_in else "OUT"
        value = f"{self.value:#0{2 + 2 * self.size}x}"
        where = f"({self.device}, {self.location})"
        return f"{verb} {self.port:#06x}/{self.size} {arrow} {value}  {where}"


def device_name(device: object) -> str:
    return getattr(device, "name", type(device).__name__)


_SIZES = frozenset({1, 2, 4})
ELEMENT_FORMAT = {1: "B", 2: "H", 4: "I"}  # struct's code for an element of each size
ONES = {size: ones(size) for size in _SIZES}  # ones() as a lookup, on the path of every access


def _refuse(port: object, size: object) -> NoReturn:
    """Name what is wrong with a port access the bus cannot route."""
    if size.__class__ is not int or size not in _SIZES:
        raise BusError(f"a port access is 1, 2 or 4 bytes, got size {size!r}")
    raise BusError(f"ports are 0..0xffff, got {port!r}")


class Bus:
    """Routes port accesses to devices by the first port of the access.

    Unclaimed ports read as all ones and drop writes (Xen's null handler; a PCI master abort).
    Every access is logged while ``recording`` is on, and nothing is with it off. The
    switch belongs to whoever runs the machine (the ``Hypervisor`` sets it from its own
    ``recording``); a bare bus records, so a test can watch it.
    """

    def __init__(self) -> None:
        self._ports: dict[int, Device] = {}
        self._ranges: list[tuple[range, Device]] = []
        self.log: list[BusEvent] = []
        self.recording = True
        # device_at(port): the device claiming ``port``, or None. The port table's own get,
        # with no Python call around it: every exit asks where its access goes.
        self.device_at: Callable[[int], Device | None] = self._ports.get

    def attach(self, ports: range, device: Device) -> None:
        self.attach_all(((ports, device),))

    def attach_all(self, claims: Iterable[tuple[range, Device]]) -> None:
        """Attach several (ports, device) claims at once, or none of them: every claim is
        checked, against the bus and against the others, before any is made."""
        claims = list(claims)
        taken = list(self._ranges)
        for ports, device in claims:
            self._check(ports, device, taken)
            taken.append((ports, device))
        for ports, device in claims:
            self._ranges.append((ports, device))
            self._ports.update(dict.fromkeys(ports, device))

    @staticmethod
    def _check(ports: range, device: Device, taken: list[tuple[range, Device]]) -> None:
        if not isinstance(ports, range) or ports.step != 1 or not ports:
            raise BusError(f"ports must be a non-empty range with step 1, got {ports!r}")
        if ports.start < 0 or ports.stop > 0x10000:
            raise BusError(
                f"ports must lie in 0..0xffff, got {ports.start:#x}..{ports.stop - 1:#x}"
            )
        for name in ("read", "write"):
            if not callable(getattr(device, name, None)):
                raise BusError(f"{device_name(device)} has no {name}(port, size…) method")
        if getattr(device, "location", None) not in ("hypervisor", "device-model"):
            raise BusError(
                f"{device_name(device)} must declare location 'hypervisor' or 'device-model'"
            )
        for other_ports, other in taken:
            lo, hi = max(ports.start, other_ports.start), min(ports.stop, other_ports.stop)
            if lo < hi:
                raise BusError(
                    f"ports {lo:#x}..{hi - 1:#x} of {device_name(device)} are already claimed "
                    f"by {device_name(other)} ({other_ports.start:#x}..{other_ports.stop - 1:#x})"
                )

    @property
    def devices(self) -> dict[str, Device]:
        return {device_name(d): d for _, d in self._ranges}

    def read(self, port: int, size: int) -> int:
        return self.read_at(self._ports.get(port), port, size)

    def write(self, port: int, size: int, value: int) -> None:
        self.write_at(self._ports.get(port), port, size, value)

    def read_at(self, device: Device | None, port: int, size: int) -> int:
        """``read`` for a caller that has looked the port up already: ``device`` is what
        ``device_at(port)`` returned (None where nothing claims it). A dispatcher asks where
        an access goes before doing it; this spares it asking twice, and keeps the rules
        (the size, the all-ones of an unclaimed port, the log) in one place."""
        mask = ONES.get(size) if size.__class__ is int else None  # True and 2.0 find none
        if mask is None:
            _refuse(port, size)
        if device is None:
            if port.__class__ is not int or not 0 <= port <= 0xFFFF:
                _refuse(port, size)
            if self.recording:
                self.log.append(BusEvent(port, size, True, mask, "unclaimed", "hypervisor"))
            return mask  # all ones
        value = device.read(port, size) & mask
        if self.recording:
            self.log.append(BusEvent(port, size, True, value, device_name(device), device.location))
        return value

    def write_at(self, device: Device | None, port: int, size: int, value: int) -> None:
        """``write`` on the device ``device_at(port)`` returned (see ``read_at``)."""
        mask = ONES.get(size) if size.__class__ is int else None  # True and 2.0 find none
        if mask is None:
            _refuse(port, size)
        value &= mask
        if device is None:
            if port.__class__ is not int or not 0 <= port <= 0xFFFF:
                _refuse(port, size)
            if self.recording:
                self.log.append(BusEvent(port, size, False, value, "unclaimed", "hypervisor"))
            return
        device.write(port, size, value)
        if self.recording:
            name = device_name(device)
            self.log.append(BusEvent(port, size, False, value, name, device.location))

    def read_many(self, port: int, size: int, n: int) -> bytes:
        """``n`` reads of one port, as the bytes they put in memory (little-endian elements in
        the order read): what a ``rep ins`` batch needs. With recording off the device is
        called directly, all at once if it offers ``read_many(port, size, n)`` (which must
        equal ``n`` reads); a DeviceError part-way raises ``PartialRead`` with the elements
        read before it."""
        device = self._ports.get(port)
        if size not in _SIZES or size.__class__ is not int:
            _refuse(port, size)
        if device is not None and not self.recording:
            bulk = getattr(device, "read_many", None)
            if bulk is not None:
                return bulk(port, size, n)
            read = device.read  # unmasked: _pack masks
        else:
            read = self.read
        got: list[int] = []
        try:  # element by element, in C: extend keeps what was read before an error
            got.extend(map(read, repeat(port, n), repeat(size, n)))
        except DeviceError as e:
            raise PartialRead(_pack(got, size), e) from e
        return _pack(got, size)


    def write_many(self, port: int, size: int, values: Sequence[int]) -> None:
        """Write ``values`` to one port in order (a ``rep outs`` batch); with recording off the
        device is called directly. A DeviceError part-way raises ``PartialWrite`` with the
        number of elements written before it."""
        device = self._ports.get(port)
        if size not in _SIZES or size.__class__ is not int:
            _refuse(port, size)
        write = device.write if device is not None and not self.recording else self.write
        done = 0
        try:
            for value in values:
                write(port, size, value)
                done += 1
        except DeviceError as e:
            raise PartialWrite(done, e) from e


def _pack(values: list[int], size: int) -> bytes:
    """Elements as little-endian bytes; a device called directly may answer wider than asked,
    so the values are masked (as the bus would) when struct refuses them."""
    fmt = f"<{len(values)}{ELEMENT_FORMAT[size]}"
    try:
        return struct.pack(fmt, *values)
    except struct.error:
        mask = ones(size)
        return struct.pack(fmt, *(v & mask for v in values))


class PartialWrite(DeviceError):
    """A device refused an element of a batch: ``done`` elements were written before it."""

    def __init__(self, done: int, error: DeviceError):
        super().__init__(str(error))
        self.done = done
        self.error = error


class PartialRead(DeviceError):
    """A device refused an element of a batch: ``data`` holds the elements read before it."""

    def __init__(self, data: bytes, error: DeviceError):
        super().__init__(str(error))
        self.data = data
        self.error = error
