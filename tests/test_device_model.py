"""The device-model round trip: a request now, the register write and RIP at completion."""

import pytest
from support import CODE_AT, Scripted, machine_with

from hvmio_lab import HvmioError
from hvmio_lab.hypervisor import Hypervisor


def pending_in(path, vendor="svm"):
    machine = machine_with(b"\xed")  # in eax, dx
    device = Scripted([0xCAFE], location="device-model")
    machine.bus.attach(range(0x3F8, 0x400), device)
    machine.cpu.rdx, machine.cpu.rax = 0x3FD, 0xFFFF_0000_0000_0000
    hv = Hypervisor(machine, vendor, path, complete_immediately=False)
    return machine, device, hv, hv.step()


@pytest.mark.parametrize("path", ["fast", "emulate"])
@pytest.mark.parametrize("vendor", ["svm", "vmx"])
def test_request_then_completion(path, vendor):
    machine, device, hv, first = pending_in(path, vendor)
    assert not first.completed and first.request is not None
    assert first.request.access.port == 0x3FD and first.request.device == "scripted"
    assert device.reads == []  # nothing has reached the device model yet
    assert machine.cpu.rip == CODE_AT and machine.cpu.rax == 0xFFFF_0000_0000_0000
    with pytest.raises(HvmioError, match="outstanding"):
        hv.step()
    second = hv.complete()
    assert second.completed and second.done and not second.reemulated
    assert device.reads == [(0x3FD, 4)]
    assert machine.cpu.rax == 0xCAFE and machine.cpu.rip == CODE_AT + 1
    assert second.path == path
    if path == "fast":
        assert second.instruction is None  # completed from the request, not by re-emulating


def test_complete_without_a_request_is_refused():
    hv = Hypervisor(machine_with(b"\xed"))
    with pytest.raises(HvmioError, match="no device-model request"):
        hv.complete()


def test_out_to_device_model_completes_with_its_data():
    machine = machine_with(b"\xee")  # out dx, al
    device = Scripted(location="device-model")
    machine.bus.attach(range(0x3F8, 0x400), device)
    machine.cpu.rdx, machine.cpu.rax = 0x3F8, 0x1234_5641
    hv = Hypervisor(machine, "vmx", "fast", complete_immediately=False)
    first = hv.step()
    assert first.request.data == 0x41 and device.writes == []
    hv.complete()
    assert device.writes == [(0x3F8, 1, 0x41)] and machine.cpu.rip == CODE_AT + 1
