"""The I/O bus: routes port accesses to devices, and what every device must provide.

A device is any object with ``read(port, size) -> int``, ``write(port, size, value)`` and a
``location``: ``"hypervisor"`` (handled in the hypervisor, like Xen's PM timer) or
``"device-model"`` (an external process, like qemu-dm's IDE disk, reached by a request and a
later completion). A device that cannot serve an access raises ``DeviceError`` before it
changes any of its state.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, Protocol

from ..errors import BusError

Location = Literal["hypervisor", "device-model"]


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


class Bus:
    """Routes port accesses to devices by the first port of the access.

    Unclaimed ports read as all ones and drop writes (Xen's null handler; a PCI master abort),
    and every such access is logged. Claimed accesses are logged while ``recording`` is on.
    """

    def __init__(self) -> None:
        self._ports: dict[int, Device] = {}
        self._ranges: list[tuple[range, Device]] = []
        self.log: list[BusEvent] = []
        self.recording = True

    def attach(self, ports: range, device: Device) -> None:
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
        for other_ports, other in self._ranges:
            lo, hi = max(ports.start, other_ports.start), min(ports.stop, other_ports.stop)
            if lo < hi:
                raise BusError(
                    f"ports {lo:#x}..{hi - 1:#x} of {device_name(device)} are already claimed "
                    f"by {device_name(other)} ({other_ports.start:#x}..{other_ports.stop - 1:#x})"
                )
        self._ranges.append((ports, device))
        self._ports.update(dict.fromkeys(ports, device))

    def device_at(self, port: int) -> Device | None:
        return self._ports.get(port)

    @property
    def devices(self) -> dict[str, Device]:
        return {device_name(d): d for _, d in self._ranges}

    def read(self, port: int, size: int) -> int:
        device = self._ports.get(port)
        if device is None:
            value = ones(size)
            self.log.append(BusEvent(port, size, True, value, "unclaimed", "hypervisor"))
            return value
        value = device.read(port, size) & ones(size)
        if self.recording:
            self.log.append(BusEvent(port, size, True, value, device_name(device), device.location))
        return value

    def write(self, port: int, size: int, value: int) -> None:
        value &= ones(size)
        device = self._ports.get(port)
        if device is None:
            self.log.append(BusEvent(port, size, False, value, "unclaimed", "hypervisor"))
            return
        device.write(port, size, value)
        if self.recording:
            name = device_name(device)
            self.log.append(BusEvent(port, size, False, value, name, device.location))
