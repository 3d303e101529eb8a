"""Each device against its spec, driven through the bus as a guest would.

Sources for the expected values (written here, not read back from the code):
- ACPI PM timer: ACPI 6.5 §4.8.3.3, 3.579545 MHz; 32-bit with TMR_VAL_EXT; Xen returns ~0
  for reads of other than 4 bytes (IO_EXITS.md §3); Xen port 0x1F48, QEMU PIIX4 0xB008.
- 16550 UART: PC16550D datasheet register map (RBR/THR 0, IER 1, IIR/FCR 2, LCR 3, MCR 4,
  LSR 5, MSR 6, SCR 7; DLAB = LCR bit 7 maps offsets 0/1 to the divisor latch; LSR bit 0 DR,
  bit 5 THRE, bit 6 TEMT). An idle LSR of 0x60 matters (IO_EXITS.md §7.11).
- ATA: ATA/ATAPI-6 (T13/1410D): status BSY 7, DRDY 6, DRQ 3, ERR 0; error ABRT 2, IDNF 4;
  IDENTIFY DEVICE word 0 bit 15 = 0 for ATA, word 49 bit 9 = LBA, words 60–61 = LBA28
  sector count, words 10–19 serial, 23–26 firmware, 27–46 model (ATA strings: two characters
  per word, the first in bits 15:8); sector count 0 means 256; Device register bit 6 = LBA,
  bits 3:0 = LBA 27:24; Device Control bit 2 = SRST; the reset signature is error 01h,
  sector count 01h, LBA low 01h, LBA mid/high 00h.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvmio_lab import AtaDisk, Bus, DeviceError, Machine, PmTimer, PostPort, Uart16550
from hvmio_lab.machine import VirtualClock

SECOND = 1_000_000_000

# ---------------------------------------------------------------- ACPI PM timer


def _timer(port=0x1F48):
    clock = VirtualClock()
    timer = PmTimer(clock, port)
    bus = Bus()
    bus.attach(range(port, port + 4), timer)
    return clock, timer, bus


def test_pm_timer_counts_3579545_ticks_per_virtual_second():
    clock, _, bus = _timer()
    assert bus.read(0x1F48, 4) == 0
    clock.advance(SECOND)
    assert bus.read(0x1F48, 4) == 3_579_545
    clock.advance(SECOND)
    assert bus.read(0x1F48, 4) == 7_159_090


def test_pm_timer_ticks_in_whole_periods():
    clock, _, bus = _timer()
    clock.advance(1_000_000)  # 1 ms = 3579.545 periods: the counter shows the whole ones
    assert bus.read(0x1F48, 4) == 3579
    clock.advance(279)  # one period is 279.365 ns: 3579.545 + 0.999 periods, still 3580
    assert bus.read(0x1F48, 4) == 3580


def test_pm_timer_does_not_move_without_the_clock():
    _, _, bus = _timer()
    readings = {bus.read(0x1F48, 4) for _ in range(10)}
    assert readings == {0}


def test_pm_timer_wraps_at_2_to_the_32():
    clock, _, bus = _timer()
    clock.advance(1200 * SECOND)  # 1200 s × 3 579 545 Hz = 4 295 454 000 ticks
    assert bus.read(0x1F48, 4) == 4_295_454_000 - 2**32


@given(st.lists(st.integers(0, 10 * SECOND), min_size=1, max_size=20))
def test_pm_timer_matches_elapsed_time_modulo_2_32(steps):
    clock, _, bus = _timer()
    for step in steps:
        clock.advance(step)
    elapsed_ns = sum(steps)
    # ticks = floor(seconds × 3 579 545), written with the frequency in Hz as a fraction
    expected = (elapsed_ns * 3579545) // SECOND % 2**32
    assert bus.read(0x1F48, 4) == expected


def test_pm_timer_narrow_reads_return_all_ones():
    clock, _, bus = _timer()
    clock.advance(SECOND)
    assert bus.read(0x1F48, 1) == 0xFF
    assert bus.read(0x1F48, 2) == 0xFFFF
    assert bus.read(0x1F49, 1) == 0xFF
    assert bus.read(0x1F4A, 2) == 0xFFFF


def test_pm_timer_is_read_only():
    clock, _, bus = _timer()
    clock.advance(SECOND)
    bus.write(0x1F48, 4, 0)
    assert bus.read(0x1F48, 4) == 3_579_545


def test_pm_timer_port_is_configurable():
    clock, timer, bus = _timer(port=0xB008)
    clock.advance(SECOND)
    assert bus.read(0xB008, 4) == 3_579_545
    assert bus.read(0x1F48, 4) == 0xFFFF_FFFF  # nothing at Xen's port now
    assert timer.location == "hypervisor"


def test_pm_timer_in_the_pc_set_follows_the_machine_clock():
    machine = Machine.pc(disk=bytes(512))
    machine.clock.advance(SECOND // 2)
    assert machine.bus.read(0x1F48, 4) == 3_579_545 // 2


# ---------------------------------------------------------------- 16550 UART

THR = RBR = DLL = 0x3F8
IER = DLM = 0x3F9
IIR = 0x3FA
LCR = 0x3FB
MCR = 0x3FC
LSR = 0x3FD
SCR = 0x3FF
DR, THRE, TEMT = 0x01, 0x20, 0x40


def _uart(input=b""):
    uart = Uart16550(input=input)
    bus = Bus()
    bus.attach(range(0x3F8, 0x400), uart)
    return uart, bus


def test_uart_thr_writes_append_to_the_output():
    uart, bus = _uart()
    for ch in b"hi\n":
        bus.write(THR, 1, ch)
    assert uart.text == "hi\n"
    assert bytes(uart.output) == b"hi\n"


def test_uart_lsr_idles_at_thre_and_temt():
    _, bus = _uart()
    assert bus.read(LSR, 1) == THRE | TEMT == 0x60
    bus.write(THR, 1, ord("x"))  # transmits instantly: still empty afterwards
    assert bus.read(LSR, 1) == 0x60


def test_uart_input_is_consumed_exactly_once():
    uart, bus = _uart(input=b"ab")
    assert bus.read(LSR, 1) & DR
    assert bus.read(RBR, 1) == ord("a")
    assert bus.read(LSR, 1) & DR  # 'b' still waiting
    assert bus.read(RBR, 1) == ord("b")
    assert bus.read(LSR, 1) == 0x60  # DR clear: nothing more
    bus.read(RBR, 1)  # a stray read of an empty RBR (its value is not specified)...
    uart.feed(b"c")
    assert bus.read(RBR, 1) == ord("c")  # ...took nothing: the next byte is the next input
    assert bus.read(LSR, 1) & DR == 0


def test_uart_lsr_reads_do_not_consume_input():
    _, bus = _uart(input=b"z")
    for _ in range(5):
        assert bus.read(LSR, 1) == 0x61
    assert bus.read(RBR, 1) == ord("z")


def test_uart_feed_queues_more_input():
    uart, bus = _uart()
    assert bus.read(LSR, 1) & DR == 0
    uart.feed(b"ok")
    assert bus.read(LSR, 1) & DR
    assert bytes([bus.read(RBR, 1), bus.read(RBR, 1)]) == b"ok"


@given(st.binary(max_size=64))
def test_uart_a_polling_reader_receives_each_input_byte_once_in_order(data):
    _, bus = _uart(input=data)
    received = bytearray()
    while bus.read(LSR, 1) & DR:
        received.append(bus.read(RBR, 1))
    assert bytes(received) == data


def test_uart_dlab_switches_offsets_0_and_1_to_the_divisor_latch():
    uart, bus = _uart(input=b"q")
    bus.write(LCR, 1, 0x83)  # DLAB = 1, 8N1
    bus.write(DLL, 1, 0x01)  # divisor 1: 115200 baud
    bus.write(DLM, 1, 0x00)
    assert bus.read(DLL, 1) == 0x01
    assert bus.read(DLM, 1) == 0x00
    assert uart.output == b""  # the DLL write was not a character
    assert bus.read(LSR, 1) & DR  # and the DLL read did not take the input byte
    bus.write(LCR, 1, 0x03)  # DLAB = 0
    assert bus.read(LCR, 1) == 0x03
    bus.write(THR, 1, ord("!"))
    assert uart.text == "!"
    assert bus.read(RBR, 1) == ord("q")
    bus.write(LCR, 1, 0x80)
    assert (bus.read(DLM, 1) << 8 | bus.read(DLL, 1)) == 1  # the divisor was kept


def test_uart_divisor_high_byte_is_not_ier():
    _, bus = _uart()
    bus.write(IER, 1, 0x00)
    bus.write(LCR, 1, 0x80)
    bus.write(DLM, 1, 0x12)
    bus.write(DLL, 1, 0x34)
    bus.write(LCR, 1, 0x00)
    assert bus.read(IER, 1) == 0x00
    bus.write(LCR, 1, 0x80)
    assert (bus.read(DLM, 1), bus.read(DLL, 1)) == (0x12, 0x34)


def test_uart_scratch_register_round_trips():
    _, bus = _uart()
    bus.write(SCR, 1, 0xA5)
    assert bus.read(SCR, 1) == 0xA5


def test_uart_iir_says_no_interrupt_pending():
    _, bus = _uart()
    assert bus.read(IIR, 1) & 0x01  # bit 0 set = no interrupt pending


@pytest.mark.parametrize("size", [2, 4])
def test_uart_wide_access_is_refused_and_changes_nothing(size):
    uart, bus = _uart(input=b"xy")
    with pytest.raises(DeviceError):
        bus.read(RBR, size)
    with pytest.raises(DeviceError):
        bus.write(THR, size, 0x4142)
    with pytest.raises(DeviceError):
        bus.write(LCR, size, 0x80)
    assert list(uart.input) == [ord("x"), ord("y")]
    assert uart.output == b""
    assert bus.read(LCR, 1) == 0  # DLAB still clear
    assert bus.read(RBR, 1) == ord("x")
    assert [e.size for e in bus.log] == [1, 1]  # the refused accesses left no event


def test_uart_lives_in_the_device_model():
    assert Uart16550().location == "device-model"


# ---------------------------------------------------------------- ATA/IDE disk

DATA, ERROR, COUNT, LBA_LO, LBA_MID, LBA_HI, DEVICE, STATUS = range(0x1F0, 0x1F8)
COMMAND = STATUS
ALT_STATUS = CONTROL = 0x3F6
BSY, DRDY, DRQ, ERR = 0x80, 0x40, 0x08, 0x01
ABRT, IDNF = 0x04, 0x10
IDENTIFY, READ_SECTORS = 0xEC, 0x20


def make_image(sectors: int) -> bytes:
    """Every sector different, and no two bytes of a sector's first words alike."""
    out = bytearray()
    for s in range(sectors):
        head = f"test sector {s:04d}\n".encode()
        body = bytes((s * 31 + i * 7 + (i >> 8)) & 0xFF for i in range(512 - len(head)))
        out += head + body
    return bytes(out)


def _disk(sectors=8, busy_polls=1, image=None):
    disk = AtaDisk(make_image(sectors) if image is None else image, busy_polls=busy_polls)
    bus = Bus()
    bus.attach(range(0x1F0, 0x1F8), disk)
    bus.attach(range(0x3F6, 0x3F7), disk)
    return disk, bus


def wait_not_busy(bus, port=STATUS, limit=100):
    """Poll like a driver; return (number of BSY reads, final status)."""
    for polls in range(limit):
        status = bus.read(port, 1)
        if not status & BSY:
            return polls, status
    raise AssertionError("the drive stayed busy")


def issue_read(bus, lba, count):
    bus.write(DEVICE, 1, 0xE0 | (lba >> 24) & 0x0F)
    bus.write(COUNT, 1, count & 0xFF)
    bus.write(LBA_LO, 1, lba & 0xFF)
    bus.write(LBA_MID, 1, (lba >> 8) & 0xFF)
    bus.write(LBA_HI, 1, (lba >> 16) & 0xFF)
    bus.write(COMMAND, 1, READ_SECTORS)


def read_block(bus, width=2):
    return b"".join(bus.read(DATA, width).to_bytes(width, "little") for _ in range(512 // width))


def read_sectors(bus, lba, count):
    issue_read(bus, lba, count)
    data = bytearray()
    for _ in range(count or 256):
        _, status = wait_not_busy(bus)
        assert status & (DRQ | DRDY | ERR) == DRQ | DRDY
        data += read_block(bus)
    return bytes(data)


def ata_string(words):
    """Decode an ATA string: each word holds two characters, the first in bits 15:8."""
    return "".join(chr(w >> 8) + chr(w & 0xFF) for w in words)


def identify_words(bus):
    bus.write(DEVICE, 1, 0xE0)
    bus.write(COMMAND, 1, IDENTIFY)
    _, status = wait_not_busy(bus)
    assert status & (DRQ | DRDY | ERR) == DRQ | DRDY
    return [bus.read(DATA, 2) for _ in range(256)]


def test_identify_reports_an_lba_ata_disk_of_the_image_size():
    _, bus = _disk(sectors=8)
    words = identify_words(bus)
    assert words[0] & 0x8000 == 0  # bit 15 clear: an ATA device
    assert words[0] & 0x0004 == 0  # bit 2 clear: the response is complete
    assert words[49] & 0x0200  # LBA supported
    assert words[60] | words[61] << 16 == 8
    assert bus.read(STATUS, 1) & (BSY | DRQ | DRDY) == DRDY  # all 256 words taken


def test_identify_sector_count_spans_words_60_and_61():
    _, bus = _disk(image=bytes(512 * 0x1_0005), busy_polls=0)
    words = identify_words(bus)
    assert (words[60], words[61]) == (0x0005, 0x0001)


def test_identify_strings_are_byte_swapped_ata_strings():
    _, bus = _disk()
    words = identify_words(bus)
    model = ata_string(words[27:47])
    assert len(model) == 40
    assert model.rstrip(" ") == AtaDisk.MODEL
    assert model == model.rstrip(" ").ljust(40)  # padded with spaces, not NULs
    for field in (words[10:20], words[23:27]):  # serial number, firmware revision
        text = ata_string(field)
        assert text.isprintable() and text.strip()


def test_each_disk_identifies_with_its_own_size_and_model():
    """The IDENTIFY block is worked out once per size and kept: a disk of another size, or a
    disk class with another model string, must still answer with its own words 60-61 and 27-46,
    in either order of first use."""

    class OtherDisk(AtaDisk):
        MODEL = "ANOTHER DISK"

    for sectors, kind in ((8, AtaDisk), (16, AtaDisk), (8, OtherDisk), (8, AtaDisk)):
        disk = kind(make_image(sectors))
        bus = Bus()
        disk.attach_to(bus)
        words = identify_words(bus)
        assert words[60] | words[61] << 16 == sectors
        assert ata_string(words[27:47]).rstrip(" ") == kind.MODEL


def test_identify_block_as_bytes_puts_the_first_character_second():
    # In memory (little-endian words) the model's first two characters appear swapped.
    _, bus = _disk()
    raw = b"".join(w.to_bytes(2, "little") for w in identify_words(bus))
    model_bytes = raw[54:94]
    assert model_bytes[:2] == AtaDisk.MODEL[1::-1].encode()


def test_multi_sector_read_matches_the_image_byte_for_byte():
    image = make_image(8)
    _, bus = _disk(image=image)
    assert read_sectors(bus, 2, 3) == image[2 * 512 : 5 * 512]
    assert bus.read(STATUS, 1) == DRDY  # DRQ clear after the last word, no BSY, no ERR


def test_lba28_uses_the_device_register_low_nibble():
    image = make_image(4)
    disk, bus = _disk(image=image)
    bus.write(DEVICE, 1, 0xE0)
    bus.write(LBA_LO, 1, 3)
    bus.write(LBA_MID, 1, 0)
    bus.write(LBA_HI, 1, 0)
    assert disk.lba() == 3
    issue_read(bus, 1 << 24, 1)  # LBA 0x1000000: far past a 4-sector image
    _, status = wait_not_busy(bus)
    assert status & ERR and bus.read(ERROR, 1) & IDNF


def test_32_bit_data_reads_stream_the_same_bytes():
    image = make_image(4)
    _, bus = _disk(image=image)
    issue_read(bus, 1, 2)
    data = b""
    for _ in range(2):
        wait_not_busy(bus)
        data += read_block(bus, width=4)
    assert data == image[512 : 3 * 512]


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_any_in_range_read_matches_the_image(data):
    sectors = 12
    image = make_image(sectors)
    lba = data.draw(st.integers(0, sectors - 1))
    count = data.draw(st.integers(1, sectors - lba))
    polls = data.draw(st.integers(0, 3))
    _, bus = _disk(image=image, busy_polls=polls)
    assert read_sectors(bus, lba, count) == image[lba * 512 : (lba + count) * 512]


def test_sector_count_zero_means_256_sectors():
    image = make_image(260)
    _, bus = _disk(image=image, busy_polls=0)
    assert read_sectors(bus, 3, 0) == image[3 * 512 : 259 * 512]
    assert bus.read(STATUS, 1) == DRDY


def test_sector_count_zero_past_a_small_image_is_idnf():
    _, bus = _disk(sectors=100)
    issue_read(bus, 0, 0)  # 256 sectors from a 100-sector disk
    _, status = wait_not_busy(bus)
    assert status & (ERR | DRQ) == ERR
    assert bus.read(ERROR, 1) & IDNF


def test_status_sequence_bsy_then_drq_then_ready():
    image = make_image(4)
    _, bus = _disk(image=image, busy_polls=3)
    issue_read(bus, 0, 2)
    statuses = []
    for _ in range(2):
        statuses.append([bus.read(STATUS, 1) for _ in range(4)])
        read_block(bus)
    final = bus.read(STATUS, 1)
    for sector in statuses:  # each sector: busy_polls BSY reads, then data ready
        assert [s & BSY for s in sector] == [BSY, BSY, BSY, 0]
        assert sector[3] & (DRDY | DRQ | ERR) == DRDY | DRQ
    assert final & (BSY | DRQ | ERR) == 0 and final & DRDY


def test_alternate_status_shows_the_same_sequence():
    _, bus = _disk(busy_polls=2)
    issue_read(bus, 0, 1)
    seq = [bus.read(ALT_STATUS, 1), bus.read(STATUS, 1), bus.read(ALT_STATUS, 1)]
    assert [s & BSY for s in seq] == [BSY, BSY, 0]
    assert seq[2] & DRQ


def test_data_reads_while_busy_float_high_and_do_not_advance():
    image = make_image(2)
    _, bus = _disk(image=image, busy_polls=1)
    issue_read(bus, 0, 1)
    assert bus.read(DATA, 2) == 0xFFFF  # still BSY: no data phase yet
    wait_not_busy(bus)
    assert read_block(bus) == image[:512]


def test_identify_also_goes_busy_first():
    _, bus = _disk(busy_polls=2)
    bus.write(COMMAND, 1, IDENTIFY)
    polls, status = wait_not_busy(bus)
    assert polls == 2 and status & DRQ


def test_out_of_range_lba_is_idnf():
    _, bus = _disk(sectors=8)
    for lba, count in ((8, 1), (7, 2), (100, 1)):
        issue_read(bus, lba, count)
        _, status = wait_not_busy(bus)
        assert status & ERR
        assert status & DRQ == 0
        assert bus.read(ERROR, 1) & IDNF
        assert bus.read(DATA, 2) == 0xFFFF  # nothing to transfer


def test_last_sector_is_in_range():
    image = make_image(8)
    _, bus = _disk(image=image)
    assert read_sectors(bus, 7, 1) == image[7 * 512 :]


@pytest.mark.parametrize("command", [0x00, 0x30, 0xFE])
def test_unknown_command_aborts(command):
    _, bus = _disk()
    bus.write(COMMAND, 1, command)
    _, status = wait_not_busy(bus)
    assert status & (ERR | DRQ) == ERR
    assert bus.read(ERROR, 1) & ABRT


def test_next_command_clears_the_error():
    image = make_image(2)
    _, bus = _disk(image=image)
    bus.write(COMMAND, 1, 0xFE)
    assert bus.read(STATUS, 1) & ERR
    assert read_sectors(bus, 0, 1) == image[:512]
    assert bus.read(ERROR, 1) == 0
    assert bus.read(STATUS, 1) & ERR == 0


def test_registers_read_back():
    _, bus = _disk()
    bus.write(COUNT, 1, 0x12)
    bus.write(LBA_LO, 1, 0x34)
    bus.write(LBA_MID, 1, 0x56)
    bus.write(LBA_HI, 1, 0x78)
    bus.write(DEVICE, 1, 0xE9)
    assert [bus.read(p, 1) for p in (COUNT, LBA_LO, LBA_MID, LBA_HI, DEVICE)] == [
        0x12, 0x34, 0x56, 0x78, 0xE9,
    ]  # fmt: skip


def test_srst_resets_the_drive_mid_transfer():
    image = make_image(4)
    _, bus = _disk(image=image)
    bus.write(COMMAND, 1, 0xFE)  # leave an error behind too
    issue_read(bus, 0, 3)
    wait_not_busy(bus)
    for _ in range(10):
        bus.read(DATA, 2)
    bus.write(CONTROL, 1, 0x04)  # SRST = 1
    bus.write(CONTROL, 1, 0x00)  # SRST = 0
    _, status = wait_not_busy(bus)
    assert status & (DRQ | ERR) == 0 and status & DRDY
    assert bus.read(DATA, 2) == 0xFFFF  # the transfer is gone
    # the reset signature of an ATA (not PACKET) device, diagnostic code "passed"
    assert [bus.read(p, 1) for p in (ERROR, COUNT, LBA_LO, LBA_MID, LBA_HI)] == [1, 1, 1, 0, 0]
    assert read_sectors(bus, 2, 1) == image[2 * 512 : 3 * 512]  # and it works again


def test_control_writes_without_srst_do_not_reset():
    _, bus = _disk(busy_polls=0)
    issue_read(bus, 0, 1)
    bus.write(CONTROL, 1, 0x02)  # nIEN only
    assert bus.read(STATUS, 1) & DRQ


@pytest.mark.parametrize(("port", "size"), [(STATUS, 2), (ERROR, 4), (DATA, 1)])
def test_wrong_width_reads_are_refused_and_change_nothing(port, size):
    image = make_image(2)
    _, bus = _disk(image=image, busy_polls=2)
    issue_read(bus, 0, 1)
    with pytest.raises(DeviceError):
        bus.read(port, size)
    polls, _ = wait_not_busy(bus)
    assert polls == 2  # a refused status read did not count as a poll
    first = bus.read(DATA, 2)
    with pytest.raises(DeviceError):
        bus.read(DATA, 1)
    rest = b"".join(bus.read(DATA, 2).to_bytes(2, "little") for _ in range(255))
    assert first.to_bytes(2, "little") + rest == image[:512]
    assert bus.read(STATUS, 1) & DRQ == 0


@pytest.mark.parametrize(("port", "size"), [(COMMAND, 2), (COUNT, 4), (DATA, 1)])
def test_wrong_width_writes_are_refused_and_change_nothing(port, size):
    _, bus = _disk()
    bus.write(COUNT, 1, 5)
    with pytest.raises(DeviceError):
        bus.write(port, size, 0x20)
    assert bus.read(COUNT, 1) == 5
    assert bus.read(STATUS, 1) & (BSY | DRQ | ERR) == 0  # no command was started


def test_word_writes_to_the_data_port_are_accepted():
    # The data register is 16 bits wide: a word OUT is a legal access, ignored without a
    # write command, and must not be refused as if the port were 8 bits wide.
    image = make_image(2)
    _, bus = _disk(image=image, busy_polls=0)
    bus.write(DATA, 2, 0x1234)
    bus.write(DATA, 4, 0x1234_5678)
    assert read_sectors(bus, 0, 1) == image[:512]


def test_there_is_no_device_1():
    # Only the master exists: selecting device 1 (DEV, bit 4) must not show a phantom copy
    # of it to a driver probing the channel. Status reads 00h, commands are not executed.
    image = make_image(2)
    _, bus = _disk(image=image, busy_polls=0)
    bus.write(DEVICE, 1, 0xF0)
    assert bus.read(STATUS, 1) == 0x00
    assert bus.read(ALT_STATUS, 1) == 0x00
    bus.write(COMMAND, 1, IDENTIFY)
    assert bus.read(STATUS, 1) == 0x00
    bus.write(DEVICE, 1, 0xE0)  # back to the master: it did not run the IDENTIFY
    assert bus.read(STATUS, 1) & (BSY | DRQ | ERR) == 0
    assert read_sectors(bus, 1, 1) == image[512:]


def test_image_must_be_whole_sectors():
    with pytest.raises(DeviceError):
        AtaDisk(bytes(513))


def test_ata_lives_in_the_device_model():
    assert AtaDisk(bytes(512)).location == "device-model"


# ---------------------------------------------------------------- POST port


def test_post_port_records_codes_in_order():
    post = PostPort()
    bus = Bus()
    bus.attach(range(0x80, 0x81), post)
    for code in (0x01, 0x02, 0xAA):
        bus.write(0x80, 1, code)
    assert post.codes == [0x01, 0x02, 0xAA]
    assert post.location == "hypervisor"


def test_post_port_reads_float_high():
    bus = Bus()
    post = PostPort()
    bus.attach(range(0x80, 0x81), post)
    bus.write(0x80, 1, 0x55)
    assert bus.read(0x80, 1) == 0xFF
    assert post.codes == [0x55]


# ---------------------------------------------------------------- the strict edge (issue 12)


def test_a_command_while_drq_is_set_is_not_accepted():
    """ATA/ATAPI-6: the host writes the Command register only with BSY and DRQ clear; QEMU's
    ide_exec_cmd ignores anything but DEVICE RESET then. Before, IDENTIFY replaced the data."""
    image = make_image(4)
    _, bus = _disk(image=image, busy_polls=0)
    issue_read(bus, 1, 1)
    first = bus.read(DATA, 2)
    bus.write(COMMAND, 1, IDENTIFY)  # mid-transfer: ignored
    bus.write(COMMAND, 1, 0x00)  # NOP would abort; ignored too
    rest = b"".join(bus.read(DATA, 2).to_bytes(2, "little") for _ in range(255))
    assert first.to_bytes(2, "little") + rest == image[512:1024]
    assert bus.read(STATUS, 1) & (BSY | DRQ | ERR) == 0


def test_a_command_while_bsy_is_set_is_not_accepted():
    image = make_image(4)
    _, bus = _disk(image=image, busy_polls=2)
    issue_read(bus, 2, 1)
    bus.write(COMMAND, 1, READ_SECTORS)  # BSY: ignored (even the same command)
    bus.write(LBA_LO, 1, 0)
    bus.write(COMMAND, 1, READ_SECTORS)
    wait_not_busy(bus)
    assert read_block(bus) == image[1024:1536]


def test_srst_still_resets_while_busy():
    _, bus = _disk(busy_polls=5)
    issue_read(bus, 0, 1)
    bus.write(CONTROL, 1, 0x04)
    bus.write(CONTROL, 1, 0x00)
    assert bus.read(STATUS, 1) & (BSY | DRQ) == 0
    bus.write(COMMAND, 1, IDENTIFY)  # accepted again
    wait_not_busy(bus)
    assert bus.read(STATUS, 1) & DRQ


def test_mixing_16_and_32_bit_data_reads_never_leaves_drq_stuck():
    """Before: a 4-byte read with one word left returned all ones and left DRQ set forever
    for a driver reading dwords."""
    image = make_image(2)
    _, bus = _disk(image=image, busy_polls=0)
    issue_read(bus, 0, 1)
    data = bus.read(DATA, 2).to_bytes(2, "little")  # one word, then dwords only
    for _ in range(127):
        data += bus.read(DATA, 4).to_bytes(4, "little")
    assert data == image[:510]
    last = bus.read(DATA, 4)
    assert last & 0xFFFF == int.from_bytes(image[510:512], "little")
    assert bus.read(STATUS, 1) & (BSY | DRQ) == 0  # the block is over


def test_a_negative_busy_poll_count_is_refused():
    with pytest.raises(DeviceError, match=r"busy_polls .* got -1"):
        AtaDisk(make_image(1), busy_polls=-1)
    with pytest.raises(DeviceError, match=r"got 1\.5"):
        AtaDisk(make_image(1), busy_polls=1.5)


@settings(deadline=None, max_examples=40)
@given(
    widths=st.lists(st.sampled_from([2, 4]), min_size=1, max_size=12),
    batches=st.lists(st.integers(1, 300), min_size=1, max_size=6),
    busy=st.integers(0, 2),
)
def test_ata_read_many_equals_that_many_single_reads(widths, batches, busy):
    """The bulk read a `rep insw` takes with recording off, against the per-word model."""
    image = make_image(3)
    one, _ = _disk(image=image, busy_polls=busy)
    many, _ = _disk(image=image, busy_polls=busy)
    for disk in (one, many):
        disk.write(DEVICE, 1, 0xE0)
        disk.write(COUNT, 1, 3)
        disk.write(LBA_LO, 1, 0)
        disk.write(COMMAND, 1, READ_SECTORS)
    for i, n in enumerate(batches):
        width = widths[i % len(widths)]
        single = b"".join(one.read(DATA, width).to_bytes(width, "little") for _ in range(n))
        assert many.read_many(DATA, width, n) == single
        if i % 2:  # a status poll between batches ends BSY on both
            assert one.read(STATUS, 1) == many.read(STATUS, 1)
    assert (one.pos, one.remaining, one.status, one.busy_left) == (
        many.pos, many.remaining, many.status, many.busy_left)  # fmt: skip


def test_uart_ier_bits_7_to_4_read_zero():
    """PC16550D: IER bits 4–7 are always 0."""
    _, bus = _uart()
    bus.write(IER, 1, 0xFF)
    assert bus.read(IER, 1) == 0x0F


@pytest.mark.parametrize(("port", "value", "named"), [
    (0x3F8, 0x100, "a byte 0..0xff, got 256"), (0x3F8, -1, "got -1"),
    (0x3F8, 1.0, "got 1.0"), (0x400, 0x41, "got 0x400"),
])  # fmt: skip
def test_uart_direct_writes_out_of_range_are_a_device_error(port, value, named):
    uart = Uart16550()
    with pytest.raises(DeviceError, match=named):
        uart.write(port, 1, value)
    assert uart.output == b"" and uart.regs == Uart16550().regs


@pytest.mark.parametrize("ns", [-5, 1.5, True, "0"])
def test_the_virtual_clock_refuses_a_start_or_a_step_it_cannot_take(ns):
    from hvmio_lab.errors import InvalidValue

    with pytest.raises(InvalidValue, match=f"got {ns!r}"):
        VirtualClock(ns)
    clock = VirtualClock(10)
    with pytest.raises(InvalidValue, match=f"got {ns!r}"):
        clock.advance(ns)
    assert clock.ns == 10
