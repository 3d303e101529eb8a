"""The I/O bus: routing, overlap refusal, unclaimed ports, the access log, the strict edge.

The devices here are the test helpers' scripted ones (tests/support.py), written against the
device protocol alone: ``read(port, size) -> int``, ``write(port, size, value)`` and
``location``.
Unclaimed ports behave like Xen's null handler / a PCI master abort: reads return all ones
for the access size, writes are dropped (IO_EXITS.md §3 and §7.11).
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import Refusing, Scripted

from hvmio_lab import AtaDisk, Bus, BusError, DeviceError, Machine, PmTimer, PostPort, Uart16550

# ---------------------------------------------------------------- routing


def test_accesses_reach_the_device_that_claims_the_port_with_the_exact_arguments():
    bus = Bus()
    low, high = Scripted(name="low", then=0x11), Scripted(name="high", then=0x22)
    bus.attach(range(0x100, 0x104), low)
    bus.attach(range(0x200, 0x208), high)
    assert bus.read(0x102, 1) == 0x11
    assert bus.read(0x207, 1) == 0x22
    bus.write(0x100, 2, 0xBEEF)
    bus.write(0x204, 4, 0xCAFEF00D)
    assert low.log == [("in", 0x102, 1, 0x11), ("out", 0x100, 2, 0xBEEF)]
    assert high.log == [("in", 0x207, 1, 0x22), ("out", 0x204, 4, 0xCAFEF00D)]
    assert bus.device_at(0x103) is low
    assert bus.device_at(0x104) is None
    assert bus.devices == {"low": low, "high": high}


def test_the_first_port_of_an_access_decides_the_device():
    bus = Bus()
    dev = Scripted(then=0x5A)
    bus.attach(range(0x60, 0x62), dev)
    assert bus.read(0x61, 4) == 0x5A  # runs past the range, but starts inside it
    assert dev.reads == [(0x61, 4)]
    assert bus.read(0x5F, 4) == 0xFFFF_FFFF  # starts before the range: unclaimed
    assert dev.reads == [(0x61, 4)]


def test_a_device_gets_and_returns_only_size_bytes():
    # An `outb` carries one byte, not all of RAX (Hyperlight's garbled serial output).
    bus = Bus()
    dev = Scripted(then=0x1234_5678_9ABC)
    bus.attach(range(0x10, 0x11), dev)
    bus.write(0x10, 1, 0x1122_3344)
    bus.write(0x10, 2, 0x1122_3344)
    assert dev.writes == [(0x10, 1, 0x44), (0x10, 2, 0x3344)]
    assert bus.read(0x10, 1) == 0xBC
    assert bus.read(0x10, 2) == 0x9ABC
    assert bus.read(0x10, 4) == 0x5678_9ABC


def test_claimed_accesses_are_logged_with_device_and_location():
    bus = Bus()
    bus.attach(range(0x10, 0x11), Scripted(name="hv", location="hypervisor", then=3))
    bus.attach(range(0x20, 0x21), Scripted(name="dm", location="device-model"))
    bus.read(0x10, 1)
    bus.write(0x20, 2, 0x1234)
    assert [(e.port, e.size, e.is_in, e.value, e.device, e.location) for e in bus.log] == [
        (0x10, 1, True, 3, "hv", "hypervisor"),
        (0x20, 2, False, 0x1234, "dm", "device-model"),
    ]


def test_recording_off_keeps_claimed_accesses_out_of_the_log():
    bus = Bus()
    dev = Scripted(then=0x5A)
    bus.attach(range(0x10, 0x11), dev)
    bus.recording = False
    assert bus.read(0x10, 1) == 0x5A
    bus.write(0x10, 1, 1)
    assert bus.log == []
    assert len(dev.log) == 2  # the device still did the work


def test_a_refused_access_propagates_and_is_not_logged():
    bus = Bus()
    bus.attach(range(0x30, 0x32), Refusing("device-model"))
    with pytest.raises(DeviceError):
        bus.read(0x30, 2)
    with pytest.raises(DeviceError):
        bus.write(0x31, 1, 0)
    assert bus.log == []


# ---------------------------------------------------------------- attaching


def test_overlapping_ranges_are_refused_naming_both_devices():
    bus = Bus()
    first = Scripted(name="first-device")
    bus.attach(range(0x100, 0x108), first)
    for ports in (range(0x107, 0x10A), range(0xF0, 0x101), range(0x102, 0x104), range(0, 0x200)):
        with pytest.raises(BusError) as refused:
            bus.attach(ports, Scripted(name="second-device"))
        message = str(refused.value)
        assert "first-device" in message and "second-device" in message
    # the refusal left the bus as it was: no port of a refused range was claimed
    assert bus.device_at(0x109) is None and bus.device_at(0xF0) is None
    assert bus.devices == {"first-device": first}


def test_adjacent_ranges_are_fine():
    bus = Bus()
    bus.attach(range(0x100, 0x108), Scripted(name="a"))
    bus.attach(range(0x108, 0x110), Scripted(name="b"))
    bus.attach(range(0xF8, 0x100), Scripted(name="c"))
    assert [bus.device_at(p).name for p in (0xFF, 0x100, 0x107, 0x108)] == ["c", "a", "a", "b"]


class NoLocation:
    def read(self, port, size):
        return 0

    def write(self, port, size, value):
        pass


class NoWrite:
    location = "hypervisor"

    def read(self, port, size):
        return 0


def test_a_device_without_a_location_is_refused():
    bus = Bus()
    with pytest.raises(BusError, match="location"):
        bus.attach(range(0x10, 0x11), NoLocation())
    with pytest.raises(BusError, match="location"):
        bus.attach(range(0x10, 0x11), Scripted(location="kernel"))
    assert bus.device_at(0x10) is None


def test_a_device_without_the_protocol_is_refused():
    with pytest.raises(BusError, match="write"):
        Bus().attach(range(0x10, 0x11), NoWrite())


@pytest.mark.parametrize("ports", [range(0x10, 0x10), range(0x10, 0x20, 2), range(0xFFFF, 0x10001)])
def test_bad_port_ranges_are_refused(ports):
    with pytest.raises(BusError):
        Bus().attach(ports, Scripted())


def test_a_range_must_be_a_range():
    with pytest.raises(BusError):
        Bus().attach([0x10, 0x11], Scripted())


# ---------------------------------------------------------------- unclaimed ports


@pytest.mark.parametrize(("size", "ones"), [(1, 0xFF), (2, 0xFFFF), (4, 0xFFFF_FFFF)])
def test_unclaimed_reads_return_all_ones_for_the_size(size, ones):
    bus = Bus()
    assert bus.read(0x1234, size) == ones
    (event,) = bus.log
    assert (event.port, event.size, event.is_in, event.value) == (0x1234, size, True, ones)
    assert event.device == "unclaimed"


def test_unclaimed_writes_are_dropped_and_logged():
    bus = Bus()
    dev = Scripted()
    bus.attach(range(0x10, 0x11), dev)
    bus.write(0x11, 1, 0x42)
    assert dev.log == []
    (event,) = bus.log
    assert (event.port, event.size, event.is_in, event.value, event.device) == (
        0x11, 1, False, 0x42, "unclaimed",
    )  # fmt: skip
    assert "unclaimed" in str(event)


def test_nothing_is_logged_with_recording_off_not_even_unclaimed_ports():
    bus = Bus()
    bus.recording = False
    assert bus.read(0x1234, 4) == 0xFFFF_FFFF
    bus.write(0x1234, 1, 0)
    assert bus.read_many(0x1234, 1, 3) == b"\xff\xff\xff"
    assert bus.log == []
    bus.recording = True
    bus.read(0x1234, 2)
    assert [e.device for e in bus.log] == ["unclaimed"]


@pytest.mark.parametrize(("port", "size", "named"), [
    (-1, 3, "1, 2 or 4 bytes, got size 3"), (-1, 1, "0..0xffff, got -1"),
    (0x10000, 1, "got 65536"), (0x60, 8, "got size 8"), (0x60, True, "got size True"),
    (0x60, 2.0, "got size 2.0"),
])  # fmt: skip
def test_the_bus_refuses_accesses_no_cpu_can_make(port, size, named):
    bus = Bus()
    bus.attach(range(0x60, 0x61), device := Scripted())
    with pytest.raises(BusError, match=named):
        bus.read(port, size)
    with pytest.raises(BusError, match=named):
        bus.write(port, size, 0)
    assert bus.log == [] and device.log == []


def test_attach_all_is_all_or_nothing():
    bus = Bus()
    bus.attach(range(0x3F6, 0x3F7), Scripted(name="control"))
    with pytest.raises(BusError, match="0x3f6"):
        bus.attach_all(((range(0x1F0, 0x1F8), Scripted(name="a")),
                        (range(0x3F6, 0x3F7), Scripted(name="b"))))  # fmt: skip
    assert bus.device_at(0x1F0) is None and set(bus.devices) == {"control"}
    with pytest.raises(BusError, match="already claimed"):  # two claims of one batch clash
        bus.attach_all(((range(0x10, 0x12), Scripted(name="c")),
                        (range(0x11, 0x13), Scripted(name="d"))))  # fmt: skip
    assert bus.device_at(0x10) is None


def test_ata_attach_to_is_all_or_nothing():
    """Before: 0x1F0–0x1F7 stayed attached when 0x3F6 was taken."""
    bus = Bus()
    bus.attach(range(0x3F6, 0x3F7), Scripted(name="floppy-dir"))
    with pytest.raises(BusError, match="0x3f6"):
        AtaDisk(bytes(512)).attach_to(bus)
    assert all(bus.device_at(p) is None for p in range(0x1F0, 0x1F8))


def test_attach_pc_is_all_or_nothing():
    """A PM-timer port that clashes with the UART used to leave the timer attached."""
    from hvmio_lab.devices import attach_pc

    machine = Machine(64)
    with pytest.raises(BusError, match="already claimed"):
        attach_pc(machine, pm_timer_port=0x3F6)
    assert machine.bus.devices == {}


def test_read_many_equals_single_reads_and_keeps_what_came_before_a_refusal():
    from hvmio_lab.devices.bus import PartialRead

    class Tired(Scripted):
        def read(self, port, size):
            if len(self.log) == 2:
                raise DeviceError("tired")
            return super().read(port, size) + len(self.log)

    for recording in (True, False):
        bus = Bus()
        bus.recording = recording
        bus.attach(range(0x60, 0x61), Tired(then=0x1230))
        with pytest.raises(PartialRead) as caught:
            bus.read_many(0x60, 2, 5)
        assert caught.value.data == bytes.fromhex("3112 3212")
        assert len(bus.log) == (2 if recording else 0)


@given(
    port=st.integers(0, 0xFFFF).filter(lambda p: p not in range(0x3F8, 0x400)),
    size=st.sampled_from([1, 2, 4]),
)
def test_any_unclaimed_port_reads_all_ones(port, size):
    bus = Bus()
    bus.attach(range(0x3F8, 0x400), Scripted())
    assert bus.read(port, size) == (1 << (8 * size)) - 1


# ---------------------------------------------------------------- the standard PC set


def _pc(**kwargs):
    return Machine.pc(disk=bytes(512 * 4), **kwargs)


def test_the_pc_set_lives_at_the_standard_ports():
    bus = _pc().bus
    assert isinstance(bus.device_at(0x1F48), PmTimer)
    assert isinstance(bus.device_at(0x3F8), Uart16550)
    assert isinstance(bus.device_at(0x3FF), Uart16550)
    for port in (0x1F0, 0x1F7, 0x3F6):
        assert isinstance(bus.device_at(port), AtaDisk)
    assert isinstance(bus.device_at(0x80), PostPort)
    assert bus.device_at(0x3F7) is None  # only 0x3F6 of the control block is claimed
    assert bus.device_at(0xB008) is None


def test_the_pc_set_can_put_the_pm_timer_where_qemu_does():
    bus = _pc(pm_timer_port=0xB008).bus
    assert isinstance(bus.device_at(0xB008), PmTimer)
    assert bus.device_at(0x1F48) is None


def test_device_locations_in_the_pc_set():
    bus = _pc().bus
    assert bus.device_at(0x1F48).location == "hypervisor"
    assert bus.device_at(0x80).location == "hypervisor"
    assert bus.device_at(0x3F8).location == "device-model"
    assert bus.device_at(0x1F0).location == "device-model"


# ---------------------------------------------------------------- an access on a looked-up device


@given(port=st.integers(0x0F, 0x12), size=st.sampled_from([1, 2, 4]), value=st.integers(0, 2**40))
def test_read_at_and_write_at_do_what_read_and_write_do(port, size, value):
    """A dispatcher that has looked the port up gives the bus the device: the result, the
    device's view and the log must be those of the plain access (masking, all ones)."""
    results = []
    for at in (False, True):
        bus = Bus()
        dev = Scripted(then=value)
        bus.attach(range(0x10, 0x12), dev)
        if at:
            got = bus.read_at(bus.device_at(port), port, size)
            bus.write_at(bus.device_at(port), port, size, value)
        else:
            got = bus.read(port, size)
            bus.write(port, size, value)
        results.append((got, dev.log, bus.log))
    assert results[0] == results[1]
    assert results[0][0] == (value if 0x10 <= port < 0x12 else -1) & ((1 << 8 * size) - 1)


@pytest.mark.parametrize("size", [True, 2.0, 3, "4", [1]])
def test_read_at_and_write_at_refuse_what_read_and_write_refuse(size):
    bus = Bus()
    dev = Scripted()
    bus.attach(range(0x10, 0x11), dev)
    for call in (lambda: bus.read_at(dev, 0x10, size), lambda: bus.write_at(dev, 0x10, size, 1),
                 lambda: bus.read_at(None, 0x20, size)):  # fmt: skip
        with pytest.raises(BusError, match="1, 2 or 4 bytes"):
            call()
    assert dev.log == [] and bus.log == []
