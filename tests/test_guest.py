"""Real guest code on unicorn: every program, every vendor and path, same guest-visible result."""

import pytest

from hvmio_lab import GuestRunaway, HvmioError
from hvmio_lab.guest import Guest, Program, load_program, programs

VENDORS = ["svm", "vmx"]
PATHS = ["fast", "emulate", "seed2010"]
SECTOR = 512


@pytest.fixture(scope="module")
def runs():
    """Each program run once per vendor and path, with recording off (as a throughput run)."""
    out = {}
    for name in programs():
        for vendor in VENDORS:
            for path in PATHS:
                guest = Guest(name, vendor, path, recording=False)
                out[name, vendor, path] = (guest, guest.run())
    return out


def test_the_catalogue():
    assert programs() == ["ata_read", "pmtimer_poll", "port_hammer", "uart_hello"]
    with pytest.raises(HvmioError, match="no guest program"):
        load_program("nope")


@pytest.mark.parametrize("name", ["ata_read", "pmtimer_poll", "port_hammer", "uart_hello"])
def test_every_path_reaches_success_with_the_same_guest_view(runs, name):
    views = set()
    for vendor in VENDORS:
        for path in PATHS:
            guest, result = runs[name, vendor, path]
            assert result.success, result
            assert result.halted and result.post_codes[-1] == 0xAA
            memory = guest.machine.memory
            result_word = memory.read(0x9008 if name == "port_hammer" else 0x9000, 8)  # not TSC
            views.add((result.uart_text, result.post_codes, result.exits, result_word,
                       memory.read(0x20000, 2 * 4096)))  # fmt: skip
    assert len(views) == 1  # UART text, POST codes, exit count, result word, buffers


def test_uart_hello_exit_count_follows_the_program(runs):
    """Per character: one LSR poll (the model's transmitter is always empty) and one THR write;
    then one POST write."""
    message = load_program("uart_hello").params["message"]
    _, result = runs["uart_hello", "svm", "fast"]
    assert result.uart_text == message
    assert result.exits == 2 * len(message) + 1
    assert result.by_path == {"fast": 2 * len(message) + 1}


def test_port_hammer_exit_count(runs):
    params = load_program("port_hammer").params
    guest, result = runs["port_hammer", "vmx", "fast"]
    assert result.exits == params["iterations"] + 1
    assert guest.read_u64(params["iterations_addr"]) == params["iterations"]


def test_pmtimer_poll_result_is_the_lcg(runs):
    p = load_program("pmtimer_poll").params
    value = p["lcg_seed"]
    for _ in range(p["rounds"] * p["work_per_round"]):
        value = (value * p["lcg_multiplier"] + p["lcg_increment"]) % (1 << 64)
    guest, result = runs["pmtimer_poll", "svm", "emulate"]
    assert guest.read_u64(p["result_addr"]) == value == p["expected_result"]
    assert result.exits == p["rounds"] + 1


def test_ata_read_reads_the_disk_and_batches_by_page(runs):
    p = load_program("ata_read").params
    guest, result = runs["ata_read", "svm", "fast"]
    image = guest.devices["ata"].image
    count, lba = p["sector_count"], p["lba"]
    buffer = guest.machine.memory.read(p["buffer"], count * SECTOR)
    assert buffer == image[lba * SECTOR : (lba + count) * SECTOR]
    # 1 IDENTIFY block + `count` sectors, each one `rep insw` whose 512 bytes sit in one page:
    # one emulated exit each; everything else is a non-string IN/OUT on the fast path.
    assert result.by_path["emulate"] == 1 + count


def test_stepping_shows_what_each_exit_did():
    guest = Guest("uart_hello", "svm", "fast")
    first = guest.step()
    assert first.access.port == 0x3FD and first.access.is_in  # the LSR poll comes first
    site = next(a for a, text in guest.program.io_instructions().items() if text == "in al, dx")
    assert first.diff.register("rip") == (site, site + 1)  # past the one byte EC
    second = guest.step()
    assert second.access.port == 0x3F8 and not second.access.is_in
    assert guest.devices["uart"].text == "h"
    guest.reset()
    assert guest.devices["uart"].text == "" and guest.exits == 0


def test_a_guest_without_exits_is_stopped():
    spin = Program("spin", 64, 0x10000, 0x80000, b"\xeb\xfe", "jmp $", 0xAA, {})
    guest = Guest(spin)
    with pytest.raises(GuestRunaway, match="without an I/O exit"):
        guest.step()
