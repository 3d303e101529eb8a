"""The devices PC firmware expects (issue 11, part B), each against its datasheet or spec,
driven through the bus as a guest would. Expected values come from these sources, not from
the code:
- MC146818A RTC: registers 0x00–0x09 time (BCD unless register B bit 2, 24-hour if bit 1),
  A bit 7 UIP, C flags clear on read, D bit 7 VRT; PC/AT CMOS layout: 0x30/0x31 extended
  memory in KiB (≤ 65535), 0x34/0x35 memory above 16 MiB in 64 KiB units; port 0x70 bit 7
  masks NMI.
- Intel 8254: 1.193182 MHz; control word SC 7:6, RW 5:4, M 3:1, BCD 0; mode 0 OUT low until
  terminal count; counter latch = RW 00; read-back = SC 11. Port 0x61: bit 0 gate 2, bit 5
  OUT2, bit 4 refresh toggle (15.085 µs).
- PCI 3.0 §3.2.2.3.2: CONFIG_ADDRESS bit 31 enable, bus 23:16, device 15:11, function 10:8,
  register 7:2; absent functions read all ones. i440FX 8086:1237, PIIX3 8086:7000 and
  8086:7010 (Intel datasheets 290549, 290550); QEMU's subsystem 1AF4:1100.
- QEMU fw_cfg spec (docs/specs/fw_cfg.rst): 16-bit selector at 0x510, data bytes at 0x511,
  key 0 = "QEMU", key 0x19 = file directory (big-endian count, then 64-byte entries: size,
  select, reserved, 56-byte name).
- i8042 (IBM PC/AT technical reference): status bit 0 OBF; AAh self-test → 55h; 20h/60h
  read/write the command byte; keyboard FFh → FAh AAh, F2h → FAh ABh 83h.
- 8259A (Intel 231468): ICW1 bit 4 set, bit 0 IC4, bit 1 SNGL; ICW2 vector base; OCW1 the
  mask; OCW3 bits 4:3 = 01, RR/RIS select IRR or ISR.
"""

import copy

import pytest

from hvmio_lab import BusError, DeviceError, Machine
from hvmio_lab.devices import (
    I8042,
    AtaDisk,
    Bus,
    CmosRtc,
    DebugConsole,
    EmptyAtaChannel,
    FwCfg,
    PciConfig,
    Pic8259,
    Pit8254,
    PortB,
    SystemControlA,
    attach_firmware_pc,
)
from hvmio_lab.machine import VirtualClock

MIB = 1 << 20
US = 1000
SECOND = 1_000_000_000


def on_bus(*claims):
    bus = Bus()
    bus.attach_all(claims)
    return bus


def state(value):
    """Everything a device holds (its parts too), to show a refused access changed none of it."""
    if hasattr(value, "__dict__"):
        return {k: state(v) for k, v in vars(value).items() if k not in ("pit", "clock")}
    if isinstance(value, dict):
        return {k: state(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [state(v) for v in value]
    return copy.deepcopy(value)


def refused(device, bus, access):
    before = state(device)
    with pytest.raises(DeviceError):
        access(bus)
    assert state(device) == before


# ---------------------------------------------------------------- CMOS / RTC


def cmos(memory=128 * MIB):
    clock = VirtualClock()
    rtc = CmosRtc(clock, memory)
    return clock, rtc, on_bus((range(0x70, 0x72), rtc))


def cmos_read(bus, index):
    bus.write(0x70, 1, index)
    return bus.read(0x71, 1)


@pytest.mark.parametrize(("memory", "ext_kib", "above_16m"), [
    (128 * MIB, 0xFFFF, (128 - 16) * 16),  # 127 MiB of KiB does not fit 16 bits: capped
    (8 * MIB, 7 * 1024, 0),
    (32 * MIB, 31 * 1024, 16 * 16),
])  # fmt: skip
def test_cmos_reports_memory_size_as_the_pc_at_layout_says(memory, ext_kib, above_16m):
    _, _, bus = cmos(memory)
    assert cmos_read(bus, 0x30) | cmos_read(bus, 0x31) << 8 == ext_kib
    assert cmos_read(bus, 0x34) | cmos_read(bus, 0x35) << 8 == above_16m
    assert cmos_read(bus, 0x15) | cmos_read(bus, 0x16) << 8 == 640


def test_cmos_seconds_follow_the_virtual_clock_in_bcd():
    clock, _, bus = cmos()
    start = cmos_read(bus, 0x00)
    assert start & 0x0F <= 9 and start >> 4 <= 5  # BCD digits
    clock.advance(5 * SECOND)
    seconds = lambda b: (b >> 4) * 10 + (b & 0x0F)  # noqa: E731
    assert (seconds(cmos_read(bus, 0x00)) - seconds(start)) % 60 == 5


def test_cmos_century_and_year_make_a_date_in_this_century():
    _, _, bus = cmos()
    bcd = lambda b: (b >> 4) * 10 + (b & 0x0F)  # noqa: E731
    assert 2000 <= bcd(cmos_read(bus, 0x32)) * 100 + bcd(cmos_read(bus, 0x09)) <= 2099


def test_cmos_binary_mode_and_time_writes():
    _, _, bus = cmos()
    bus.write(0x70, 1, 0x0B)
    bus.write(0x71, 1, 0x06)  # binary, 24-hour
    bus.write(0x70, 1, 0x02)
    bus.write(0x71, 1, 45)  # minutes = 45, binary
    assert cmos_read(bus, 0x02) == 45
    bus.write(0x70, 1, 0x0B)
    bus.write(0x71, 1, 0x02)  # back to BCD
    assert cmos_read(bus, 0x02) == 0x45


def test_cmos_status_registers():
    _, rtc, bus = cmos()
    assert cmos_read(bus, 0x0A) & 0x80 == 0  # UIP clear: time is readable at once
    assert cmos_read(bus, 0x0D) & 0x80  # VRT: battery good
    rtc.ram[0x0C] = 0x90  # an interrupt flag raised
    assert cmos_read(bus, 0x0C) == 0x90
    assert cmos_read(bus, 0x0C) == 0x00  # reading acknowledged it


def test_cmos_index_port_masks_nmi_and_ram_keeps_bytes():
    _, rtc, bus = cmos()
    bus.write(0x70, 1, 0x80 | 0x40)
    assert rtc.nmi_masked and rtc.index == 0x40
    bus.write(0x71, 1, 0x5A)
    assert cmos_read(bus, 0x40) == 0x5A
    assert not rtc.nmi_masked


def test_cmos_is_split_as_xen_splits_it():
    """Xen's hvm/rtc.c keeps 14 bytes (the RTC registers 0x00–0x0D) and forwards the RAM."""
    _, rtc, bus = cmos()
    for index, where in ((0x00, "hypervisor"), (0x0D, "hypervisor"), (0x0E, "device-model"),
                         (0x34, "device-model"), (0x7F, "device-model")):  # fmt: skip
        bus.write(0x70, 1, index)
        assert rtc.location == where, hex(index)
        assert bus.log[-1].location == where  # the bus logs where the access went


def test_cmos_refuses_wide_access_before_changing_anything():
    _, rtc, bus = cmos()
    bus.write(0x70, 1, 0x34)
    refused(rtc, bus, lambda b: b.write(0x70, 2, 0x0000))
    refused(rtc, bus, lambda b: b.read(0x71, 2))
    assert bus.read(0x71, 1) == (128 - 16) * 16 & 0xFF


def test_cmos_refuses_an_impossible_date_unchanged():
    _, rtc, bus = cmos()
    bus.write(0x70, 1, 0x08)  # month
    refused(rtc, bus, lambda b: b.write(0x71, 1, 0x13))  # BCD 13


# ---------------------------------------------------------------- port 0x92, debug console


def test_port92_gates_a20_and_notes_a_fast_reset():
    port = SystemControlA()
    bus = on_bus((port.ports, port))
    assert not port.a20
    bus.write(0x92, 1, bus.read(0x92, 1) | 0x02)
    assert port.a20 and bus.read(0x92, 1) & 0x02
    assert not port.reset_requested
    bus.write(0x92, 1, 0x03)
    assert port.reset_requested
    refused(port, bus, lambda b: b.write(0x92, 2, 0))


def test_debug_console_reads_back_e9_and_keeps_the_text():
    console = DebugConsole()
    bus = on_bus((console.ports, console))
    assert bus.read(0x402, 1) == 0xE9
    for byte in b"SeaBIOS\n":
        bus.write(0x402, 1, byte)
    assert console.text == "SeaBIOS\n"
    refused(console, bus, lambda b: b.write(0x402, 2, 0x4141))


# ---------------------------------------------------------------- 8254 PIT and port 0x61


def pit():
    clock = VirtualClock()
    timer = Pit8254(clock)
    port_b = PortB(timer)
    return clock, timer, on_bus((timer.ports, timer), (port_b.ports, port_b))


def test_channel2_mode0_out_goes_high_at_terminal_count_as_seen_on_port61():
    clock, _, bus = pit()
    bus.write(0x61, 1, 0x01)  # gate 2 on, speaker off
    bus.write(0x43, 1, 0b10_11_000_0)  # channel 2, LSB then MSB, mode 0, binary
    bus.write(0x42, 1, 0x00)
    bus.write(0x42, 1, 0x08)  # 2048 ticks = 1716.4 µs at 1.193182 MHz
    assert not bus.read(0x61, 1) & 0x20
    clock.advance(1716 * US)
    assert not bus.read(0x61, 1) & 0x20
    clock.advance(1 * US)
    assert bus.read(0x61, 1) & 0x20
    clock.advance(SECOND)
    assert bus.read(0x61, 1) & 0x20  # mode 0 stays high


def test_channel2_counts_only_while_its_gate_is_high():
    clock, _, bus = pit()
    bus.write(0x43, 1, 0b10_11_000_0)
    bus.write(0x42, 1, 0x00)
    bus.write(0x42, 1, 0x08)
    clock.advance(10 * 1716 * US)  # gate low all along: no count
    assert not bus.read(0x61, 1) & 0x20
    bus.write(0x61, 1, 0x01)
    clock.advance(1717 * US)
    assert bus.read(0x61, 1) & 0x20


def test_port61_refresh_bit_toggles_every_15_us():
    clock, _, bus = pit()
    first = bus.read(0x61, 1) & 0x10
    clock.advance(15_085)
    assert bus.read(0x61, 1) & 0x10 != first
    assert bus.read(0x61, 1) & 0xC0 == 0  # no parity or channel-check errors


def test_counter_latch_freezes_the_count_until_read():
    clock, _, bus = pit()
    bus.write(0x43, 1, 0b00_11_010_0)  # channel 0, both bytes, mode 2
    bus.write(0x40, 1, 0x00)
    bus.write(0x40, 1, 0x00)  # 0 = 65536
    clock.advance(1000 * US)  # 1193.182 ticks
    bus.write(0x43, 1, 0b00_00_0000)  # latch channel 0
    clock.advance(1000 * US)
    count = bus.read(0x40, 1) | bus.read(0x40, 1) << 8
    assert count == 65536 - 1193
    later = bus.read(0x40, 1) | bus.read(0x40, 1) << 8  # unlatched: the live count
    assert later == 65536 - 2386


def test_read_back_command_latches_the_selected_counters():
    clock, _, bus = pit()
    bus.write(0x43, 1, 0b01_11_010_0)  # channel 1, mode 2
    bus.write(0x41, 1, 0x10)
    bus.write(0x41, 1, 0x27)  # 10000
    clock.advance(1000 * US)
    bus.write(0x43, 1, 0b11_01_0100)  # read-back, count only, counter 1
    clock.advance(500 * US)
    assert bus.read(0x41, 1) | bus.read(0x41, 1) << 8 == 10000 - 1193


def test_pit_refuses_bcd_and_unmodelled_modes_unchanged():
    _, timer, bus = pit()
    refused(timer, bus, lambda b: b.write(0x43, 1, 0b10_11_000_1))  # BCD
    refused(timer, bus, lambda b: b.write(0x43, 1, 0b10_11_001_0))  # mode 1
    refused(timer, bus, lambda b: b.write(0x42, 2, 0x0800))


# ---------------------------------------------------------------- PCI configuration


def config_address(bus_no, device, function, register):
    return 1 << 31 | bus_no << 16 | device << 11 | function << 8 | register


def test_pci_scan_of_bus0_finds_the_i440fx_machine():
    pci = PciConfig()
    bus = on_bus((pci.ports, pci))
    found = {}
    for device in range(32):
        for function in range(8):
            bus.write(0xCF8, 4, config_address(0, device, function, 0))
            ids = bus.read(0xCFC, 4)
            if ids != 0xFFFF_FFFF:
                found[device, function] = ids
    assert found == {(0, 0): 0x1237_8086, (1, 0): 0x7000_8086, (1, 1): 0x7010_8086}


def test_pci_header_fields_by_byte_and_word():
    pci = PciConfig()
    bus = on_bus((pci.ports, pci))
    bus.write(0xCF8, 4, config_address(0, 1, 0, 0x0C))
    assert bus.read(0xCFE, 1) == 0x80  # header type: multi-function
    bus.write(0xCF8, 4, config_address(0, 0, 0, 0x08))
    assert bus.read(0xCFE, 2) == 0x0600  # class: host bridge
    bus.write(0xCF8, 4, config_address(0, 0, 0, 0x2C))
    assert (bus.read(0xCFC, 2), bus.read(0xCFE, 2)) == (0x1AF4, 0x1100)
    bus.write(0xCF8, 4, config_address(0, 1, 1, 0x08))
    assert bus.read(0xCFC, 4) >> 8 == 0x010180  # IDE, compatibility mode


def test_pci_writes_reach_only_writable_registers():
    pci = PciConfig()
    bus = on_bus((pci.ports, pci))
    bus.write(0xCF8, 4, config_address(0, 0, 0, 0x00))
    bus.write(0xCFC, 4, 0)  # IDs are read-only
    assert bus.read(0xCFC, 4) == 0x1237_8086
    bus.write(0xCF8, 4, config_address(0, 0, 0, 0x58))
    bus.write(0xCFD, 1, 0x30)  # PAM0 (0x59)
    assert bus.read(0xCFC, 4) >> 8 & 0xFF == 0x30
    bus.write(0xCF8, 4, config_address(0, 1, 1, 0x20))
    bus.write(0xCFC, 4, 0xFFFF_FFFF)  # BAR4 sizing: not implemented, reads 0
    assert bus.read(0xCFC, 4) == 0


def test_pci_disabled_or_absent_reads_all_ones_and_narrow_cf8_is_not_the_address():
    pci = PciConfig()
    bus = on_bus((pci.ports, pci))
    bus.write(0xCF8, 4, config_address(0, 0, 0, 0) & ~(1 << 31))
    assert bus.read(0xCFC, 4) == 0xFFFF_FFFF
    bus.write(0xCF8, 4, config_address(1, 0, 0, 0))
    assert bus.read(0xCFC, 2) == 0xFFFF
    bus.write(0xCF8, 1, 0)  # a byte write to 0xCF8 is ordinary I/O
    assert bus.read(0xCF8, 4) == config_address(1, 0, 0, 0)


def test_pci_refuses_a_data_access_past_0xcff_unchanged():
    pci = PciConfig()
    bus = on_bus((pci.ports, pci))
    bus.write(0xCF8, 4, config_address(0, 0, 0, 0x58))
    refused(pci, bus, lambda b: b.write(0xCFE, 4, 0xFFFF_FFFF))
    refused(pci, bus, lambda b: b.read(0xCFD, 4))


# ---------------------------------------------------------------- fw_cfg


def fw_cfg(memory=128 * MIB):
    device = FwCfg(memory)
    return device, on_bus((device.ports, device))


def item(bus, key, n):
    bus.write(0x510, 2, key)
    return bytes(bus.read(0x511, 1) for _ in range(n))


def test_fw_cfg_signature_and_end_of_item():
    _, bus = fw_cfg()
    assert item(bus, 0x0000, 6) == b"QEMU\0\0"
    assert item(bus, 0x1234, 2) == b"\0\0"  # no such item


def test_fw_cfg_file_directory_leads_to_an_e820_ram_entry():
    _, bus = fw_cfg(64 * MIB)
    count = int.from_bytes(item(bus, 0x19, 4), "big")
    directory = item(bus, 0x19, 4 + 64 * count)[4:]
    files = {}
    for i in range(count):
        entry = directory[64 * i : 64 * i + 64]
        name = entry[8:].rstrip(b"\0").decode()
        files[name] = (int.from_bytes(entry[0:4], "big"), int.from_bytes(entry[4:6], "big"))
    size, select = files["etc/e820"]
    e820 = item(bus, select, size)
    address, length, kind = (int.from_bytes(e820[0:8], "little"),
                             int.from_bytes(e820[8:16], "little"),
                             int.from_bytes(e820[16:20], "little"))  # fmt: skip
    assert (address, length, kind) == (0, 64 * MIB, 1)


def test_fw_cfg_boot_menu_is_off_and_ram_size_is_reported():
    _, bus = fw_cfg(64 * MIB)
    assert item(bus, 0x0E, 2) == b"\0\0"
    assert int.from_bytes(item(bus, 0x03, 8), "little") == 64 * MIB


def test_fw_cfg_refuses_byte_selects_without_losing_its_place():
    device, bus = fw_cfg()
    bus.write(0x510, 2, 0)
    bus.read(0x511, 1)
    refused(device, bus, lambda b: b.write(0x510, 1, 0x19))
    refused(device, bus, lambda b: b.read(0x511, 2))
    assert bus.read(0x511, 1) == ord("E")


# ---------------------------------------------------------------- i8042


def i8042():
    device = I8042()
    return device, on_bus(*device.claims)


def drain(bus):
    out = []
    while bus.read(0x64, 1) & 0x01:
        out.append(bus.read(0x60, 1))
    return out


def test_i8042_self_test_and_command_byte():
    _, bus = i8042()
    assert drain(bus) == []
    bus.write(0x64, 1, 0xAA)
    assert drain(bus) == [0x55]
    bus.write(0x64, 1, 0x60)
    bus.write(0x60, 1, 0x61)
    bus.write(0x64, 1, 0x20)
    assert drain(bus) == [0x61]


def test_i8042_keyboard_acknowledges_reset_and_identifies():
    _, bus = i8042()
    bus.write(0x60, 1, 0xFF)
    assert drain(bus) == [0xFA, 0xAA]
    bus.write(0x60, 1, 0xF2)
    assert drain(bus) == [0xFA, 0xAB, 0x83]
    bus.write(0x60, 1, 0xED)  # LEDs, then its parameter
    bus.write(0x60, 1, 0x02)
    assert drain(bus) == [0xFA, 0xFA]


def test_i8042_refuses_an_unknown_command_unchanged():
    device, bus = i8042()
    bus.write(0x64, 1, 0xAA)
    refused(device, bus, lambda b: b.write(0x64, 1, 0x55))
    refused(device, bus, lambda b: b.read(0x60, 2))
    assert drain(bus) == [0x55]


# ---------------------------------------------------------------- 8259A PICs


def test_pic_initialisation_sequence_then_mask_and_isr_read():
    master = Pic8259(0x20, "pic-master")
    bus = on_bus((master.ports, master))
    bus.write(0x20, 1, 0x11)  # ICW1: edge, cascade, ICW4 follows
    bus.write(0x21, 1, 0x08)  # ICW2: vectors 08h–0Fh
    bus.write(0x21, 1, 0x04)  # ICW3: slave on IR2
    bus.write(0x21, 1, 0x01)  # ICW4: 8086 mode
    assert master.vector_base == 0x08
    bus.write(0x21, 1, 0xFB)  # OCW1: everything masked but the cascade
    assert bus.read(0x21, 1) == 0xFB
    bus.write(0x20, 1, 0x0B)  # OCW3: read ISR
    assert bus.read(0x20, 1) == 0x00
    bus.write(0x20, 1, 0x20)  # a non-specific EOI with nothing in service


def test_pic_single_mode_skips_icw3():
    slave = Pic8259(0xA0, "pic-slave")
    bus = on_bus((slave.ports, slave))
    bus.write(0xA0, 1, 0x13)  # single, ICW4
    bus.write(0xA1, 1, 0x70)
    bus.write(0xA1, 1, 0x01)  # this is ICW4, not ICW3
    bus.write(0xA1, 1, 0xAA)  # so this is OCW1
    assert (slave.vector_base, bus.read(0xA1, 1)) == (0x70, 0xAA)


def test_pic_refuses_poll_and_wide_access_unchanged():
    pic = Pic8259(0x20, "pic-master")
    bus = on_bus((pic.ports, pic))
    refused(pic, bus, lambda b: b.write(0x20, 1, 0x0C))
    refused(pic, bus, lambda b: b.write(0x21, 2, 0))


# ---------------------------------------------------------------- the board


def test_empty_secondary_channel_reads_no_drive():
    channel = EmptyAtaChannel()
    bus = on_bus(*channel.claims)
    assert bus.read(0x177, 1) & 0x80 == 0  # not busy: a driver need not wait
    bus.write(0x176, 1, 0xA0)
    assert bus.read(0x176, 1) != 0xA0  # no drive keeps the device register


def test_firmware_pc_attaches_every_device_where_seabios_looks():
    machine = Machine(16, memory_size=16 * MIB)
    attach_firmware_pc(machine, 16 * MIB, disk=bytes(512))
    bus = machine.bus
    assert bus.read(0x402, 1) == 0xE9
    bus.write(0x510, 2, 0)
    assert bytes(bus.read(0x511, 1) for _ in range(4)) == b"QEMU"
    bus.write(0xCF8, 4, config_address(0, 0, 0, 0))
    assert bus.read(0xCFC, 4) == 0x1237_8086
    assert bus.read(0x1234, 2) == 0xFFFF  # unclaimed ports read all ones
    bus.write(0x70, 1, 0x00)  # an RTC register selected (see the CMOS test for the RAM)
    locations = {name: device.location for name, device in bus.devices.items()}
    # Xen: RTC (hvm/rtc.c), PIT with port 0x61 (emul-i8254.c), PICs (vpic.c) in the hypervisor
    hypervisor = {"cmos", "pit", "port61", "pic-master", "pic-slave", "pm-timer", "post"}
    assert {n for n, where in locations.items() if where == "hypervisor"} == hypervisor


def test_firmware_pc_attaches_all_or_nothing():
    machine = Machine(16, memory_size=16 * MIB)
    machine.bus.attach(range(0x402, 0x403), DebugConsole())
    with pytest.raises(BusError):
        attach_firmware_pc(machine, 16 * MIB)
    assert set(machine.bus.devices) == {"debugcon"}


@pytest.mark.parametrize("sectors", [1, 8, 64, 1008, 4096, 20_160])
def test_ata_identify_reports_a_bios_geometry_within_the_disk(sectors):
    """IDENTIFY words 1, 3 and 6 (ATA/ATAPI-6 §8.15: default cylinders, heads, sectors per
    track) are what BIOS int 13h CHS calls use: at most 16 heads of 63 sectors, never more
    sectors than the disk has, and all of it when the disk is whole cylinders."""
    words = AtaDisk(bytes(512 * sectors)).identify_block()
    c, h, s = (int.from_bytes(words[2 * w : 2 * w + 2], "little") for w in (1, 3, 6))
    assert 1 <= h <= 16 and 1 <= s <= 63 and c >= 1
    assert c * h * s <= sectors
    if sectors % (16 * 63) == 0:
        assert c * h * s == sectors
