"""The vCPU register file, guest memory and snapshot/diff (issue 3, part 1).

Expectations come from the architecture, not from the code under test:
- SDM Vol. 1 §3.4.1.1: in 64-bit mode a 32-bit result is zero-extended to 64 bits, while
  8- and 16-bit results leave the upper 56 / 48 bits of the destination unchanged;
- real-address mode: a segment's base is its selector × 16 (SDM Vol. 1 §3.3.6);
- protected and long mode here use flat segments (base 0);
- RFLAGS bit 1 is reserved and reads as 1, so a cleared RFLAGS is 0x2.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hvmio_lab import GuestMemoryError, Machine, Memory, PageFault, PostPort
from hvmio_lab.machine import merge_gpr

PAGE = 4096
MASK64 = (1 << 64) - 1
# the registers issue 3 names; rflags is checked separately
ISSUE_REGISTERS = (
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip",
)  # fmt: skip
SEGMENT_NAMES = ("ES", "CS", "SS", "DS", "FS", "GS")


# ---------------------------------------------------------------- register write rules


def test_8bit_write_merges_into_the_low_byte():
    assert merge_gpr(0x1122_3344_5566_7788, 0xAB, 1) == 0x1122_3344_5566_77AB


def test_16bit_write_merges_into_the_low_word():
    assert merge_gpr(0x1122_3344_5566_7788, 0xABCD, 2) == 0x1122_3344_5566_ABCD


def test_32bit_write_zero_extends_bits_63_32():
    assert merge_gpr(0xFFFF_FFFF_FFFF_FFFF, 0xDEAD_BEEF, 4) == 0x0000_0000_DEAD_BEEF
    assert merge_gpr(0x1234_5678_0000_0000, 0, 4) == 0


def test_64bit_write_replaces_the_register():
    assert merge_gpr(0x1122_3344_5566_7788, 0xFEDC_BA98_7654_3210, 8) == 0xFEDC_BA98_7654_3210


def test_value_wider_than_the_access_is_cut_to_the_access_size():
    # An `outb`/`inb` carries only one byte: the rest of the value must not leak in.
    assert merge_gpr(0, 0x1234, 1) == 0x34
    assert merge_gpr(0xFFFF_0000, 0x1_2345, 2) == 0xFFFF_2345


def _merge_by_bytes(old: int, value: int, size: int) -> int:
    """An independent formulation: overwrite the low ``size`` bytes of the little-endian
    register image; a 4-byte write also clears the upper four bytes."""
    image = bytearray(old.to_bytes(8, "little"))
    image[:size] = (value % (1 << (8 * size))).to_bytes(size, "little")
    if size == 4:
        image[4:] = bytes(4)
    return int.from_bytes(image, "little")


@given(
    old=st.integers(0, MASK64),
    value=st.integers(0, (1 << 72) - 1),
    size=st.sampled_from([1, 2, 4, 8]),
)
def test_merge_gpr_matches_a_byte_level_model(old, value, size):
    assert merge_gpr(old, value, size) == _merge_by_bytes(old, value, size)


@given(old=st.integers(0, MASK64), value=st.integers(0, MASK64), size=st.sampled_from([1, 2]))
def test_narrow_writes_keep_the_upper_bits(old, value, size):
    kept = MASK64 ^ ((1 << (8 * size)) - 1)
    assert merge_gpr(old, value, size) & kept == old & kept


# ---------------------------------------------------------------- reset state and segments


@pytest.mark.parametrize("mode", [16, 32, 64])
def test_reset_state_is_all_zero_except_rflags(mode):
    cpu = Machine(mode).cpu
    for name in ISSUE_REGISTERS:
        assert getattr(cpu, name) == 0, name
    assert cpu.rflags == 0x2
    for name in SEGMENT_NAMES:
        seg = cpu.segment(name)
        assert (seg.selector, seg.base) == (0, 0), name


def test_a_new_machine_has_at_least_1mib_and_nothing_on_the_bus():
    machine = Machine()
    assert machine.memory.size >= 1 << 20
    assert machine.bus.devices == {}
    # COM1's line status register: no UART attached, so the port floats high.
    assert machine.bus.read(0x3FD, 1) == 0xFF


@pytest.mark.parametrize("mode", [0, 8, 15, 128, "64"])
def test_unknown_mode_is_refused(mode):
    with pytest.raises(ValueError, match="mode"):
        Machine(mode)


@pytest.mark.parametrize(
    ("selector", "base"),
    [(0x0000, 0x00000), (0x07C0, 0x07C00), (0x1234, 0x12340), (0xFFFF, 0xFFFF0)],
)
def test_real_mode_segment_base_is_selector_times_16(selector, base):
    machine = Machine(16)
    machine.load_segment("DS", selector)
    assert machine.cpu.segment("DS").selector == selector
    assert machine.cpu.segment("DS").base == base
    assert machine.linear("DS", 0x10) == base + 0x10


def test_real_mode_segments_are_independent():
    machine = Machine(16)
    machine.load_segment("ES", 0x2000)
    machine.load_segment("DS", 0x3000)
    assert machine.linear("ES", 5) == 0x20005
    assert machine.linear("DS", 5) == 0x30005
    assert machine.cpu.segment("CS").base == 0


@pytest.mark.parametrize("mode", [32, 64])
def test_protected_and_long_mode_segments_are_flat(mode):
    machine = Machine(mode)
    machine.load_segment("DS", 0x10)
    assert machine.cpu.segment("DS").selector == 0x10
    assert machine.cpu.segment("DS").base == 0
    assert machine.linear("DS", 0x12345) == 0x12345


# ---------------------------------------------------------------- memory


def test_memory_smaller_than_1mib_or_not_whole_pages_is_refused():
    with pytest.raises(GuestMemoryError):
        Memory((1 << 20) - PAGE)
    with pytest.raises(GuestMemoryError):
        Memory((1 << 20) + 1)


def test_memory_starts_zeroed_and_round_trips():
    memory = Memory(1 << 20)
    assert memory.read(0x7C00, 4) == bytes(4)
    memory.write(0x7C00, b"\x55\xaa")
    assert memory.read(0x7BFF, 4) == b"\x00\x55\xaa\x00"


def test_access_past_the_end_raises_naming_the_address():
    memory = Memory(1 << 20)
    assert memory.read((1 << 20) - 2, 2) == bytes(2)  # the last two bytes are fine
    with pytest.raises(GuestMemoryError, match="0xffffe"):
        memory.read(0xFFFFE, 3)
    with pytest.raises(GuestMemoryError, match="0x100000"):
        memory.write(0x100000, b"x")
    with pytest.raises(GuestMemoryError):
        memory.read(-1, 1)


def test_out_of_bounds_write_changes_nothing():
    memory = Memory(1 << 20)
    with pytest.raises(GuestMemoryError):
        memory.write(0xFFFFE, b"abc")
    assert memory.read(0xFFFFE, 2) == bytes(2)


def test_not_present_page_faults_at_the_first_missing_byte():
    memory = Memory(1 << 20)
    memory.set_present(0x5000, False)
    with pytest.raises(PageFault) as read_fault:
        memory.read(0x4FFE, 4)  # two bytes on a present page, two on the missing one
    assert read_fault.value.address == 0x5000
    assert read_fault.value.write is False
    with pytest.raises(PageFault) as write_fault:
        memory.write(0x5123, b"x")
    assert write_fault.value.address == 0x5123
    assert write_fault.value.write is True
    # neighbours are untouched by the marking
    assert memory.read(0x4000, PAGE) == bytes(PAGE)
    assert memory.read(0x6000, 1) == b"\x00"


def test_set_present_covers_every_page_of_the_range_and_can_be_undone():
    memory = Memory(1 << 20)
    memory.set_present(0x3FFF, False, length=2)  # touches pages 3 and 4
    for addr in (0x3000, 0x3FFF, 0x4000, 0x4FFF):
        with pytest.raises(PageFault):
            memory.read(addr, 1)
    memory.set_present(0x3000, True, length=2 * PAGE)
    assert memory.read(0x3FFF, 2) == bytes(2)


def test_write_across_a_page_boundary_writes_both_pages():
    memory = Memory(1 << 20)
    memory.write(0x1FFD, b"ABCDEF")
    assert memory.read(0x1FFD, 3) == b"ABC"
    assert memory.read(0x2000, 3) == b"DEF"


def test_write_into_a_missing_second_page_writes_nothing():
    memory = Memory(1 << 20)
    memory.write(0x2FFC, b"\x11" * 4)
    memory.set_present(0x3000, False)
    with pytest.raises(PageFault) as fault:
        memory.write(0x2FFC, b"\x22" * 8)
    assert fault.value.address == 0x3000
    assert memory.read(0x2FFC, 4) == b"\x11" * 4  # the present page kept its old bytes
    memory.set_present(0x3000, True)
    assert memory.read(0x3000, 4) == bytes(4)  # and the missing one was never written


def test_contents_survive_a_not_present_spell():
    memory = Memory(1 << 20)
    memory.write(0x8000, b"kept")
    memory.set_present(0x8000, False)
    memory.set_present(0x8000, True)
    assert memory.read(0x8000, 4) == b"kept"


MEMORY_SIZE = 1 << 20


@st.composite
def placed_data(draw):
    data = draw(st.binary(min_size=1, max_size=2 * PAGE + 16))
    crossing = draw(st.booleans())
    if crossing:  # start just before a page boundary so the write spans it
        page = draw(st.integers(1, MEMORY_SIZE // PAGE - 3))
        addr = page * PAGE - draw(st.integers(1, min(len(data), PAGE)))
    else:
        addr = draw(st.integers(0, MEMORY_SIZE - len(data)))
    return addr, data


@given(placed_data())
def test_memory_write_read_round_trip(placement):
    addr, data = placement
    memory = Memory(MEMORY_SIZE)
    memory.write(addr, data)
    assert memory.read(addr, len(data)) == data
    # nothing outside the written range changed
    if addr:
        assert memory.read(addr - 1, 1) == b"\x00"
    if addr + len(data) < MEMORY_SIZE:
        assert memory.read(addr + len(data), 1) == b"\x00"


@given(placed_data(), st.integers(0, 2))
def test_faulting_write_leaves_memory_untouched(placement, which):
    addr, data = placement
    pages = range(addr // PAGE, (addr + len(data) - 1) // PAGE + 1)
    missing = pages[min(which, len(pages) - 1)]
    memory = Memory(MEMORY_SIZE)
    memory.set_present(missing * PAGE, False)
    with pytest.raises(PageFault) as fault:
        memory.write(addr, data)
    assert fault.value.address == max(addr, missing * PAGE)
    memory.set_present(missing * PAGE, True)
    assert memory.read(addr, len(data)) == bytes(len(data))


# ---------------------------------------------------------------- snapshot / diff


def test_diff_of_an_unchanged_machine_is_empty_and_falsy():
    machine = Machine()
    before = machine.snapshot()
    diff = machine.diff(before)
    assert not diff
    assert diff.registers == () and diff.memory == () and diff.events == ()
    assert str(diff) == "(no change)"


def test_diff_lists_changed_registers_with_before_and_after():
    machine = Machine(16)
    machine.cpu.rax = 0x1234
    machine.cpu.rip = 0x7C00
    before = machine.snapshot()
    machine.cpu.rax = merge_gpr(machine.cpu.rax, 0xFF, 1)
    machine.cpu.rip += 2
    machine.cpu.rbx = machine.cpu.rbx  # written but unchanged: not a change
    machine.load_segment("ES", 0x1000)
    diff = machine.diff(before)
    assert diff
    changes = {name: (b, a) for name, b, a in diff.registers}
    assert changes["rax"] == (0x1234, 0x12FF)
    assert changes["rip"] == (0x7C00, 0x7C02)
    assert "rbx" not in changes
    assert diff.register("rax") == (0x1234, 0x12FF)
    assert diff.register("rcx") is None
    # the segment change shows up too (selector and base)
    assert (0, 0x1000) in changes.values()
    assert (0, 0x10000) in changes.values()


def test_diff_coalesces_memory_changes_into_ranges():
    machine = Machine()
    machine.memory.write(0x5000, b"\xee" * 4)
    before = machine.snapshot()
    machine.memory.write(0x1FFE, b"WXYZ")  # one range across a page boundary
    machine.memory.write(0x5000, b"\xee\x01\xee\x02")  # two single bytes, gap between them
    machine.memory.write(0x6000, b"\x00\x00")  # same value: not a change
    diff = machine.diff(before)
    ranges = [(m.address, m.before, m.after) for m in diff.memory]
    assert ranges == [
        (0x1FFE, bytes(4), b"WXYZ"),
        (0x5001, b"\xee", b"\x01"),
        (0x5003, b"\xee", b"\x02"),
    ]


def test_diff_between_two_explicit_snapshots():
    machine = Machine()
    first = machine.snapshot()
    machine.cpu.rdx = 7
    second = machine.snapshot()
    machine.cpu.rdx = 9  # later changes are not in a first→second diff
    diff = machine.diff(first, second)
    assert diff.registers == (("rdx", 0, 7),)


def test_diff_lists_device_events_since_the_snapshot():
    machine = Machine()
    post = PostPort()
    machine.bus.attach(range(0x80, 0x81), post)
    machine.bus.write(0x80, 1, 0x01)  # before the snapshot: not listed
    before = machine.snapshot()
    machine.bus.write(0x80, 1, 0xAA)
    machine.bus.read(0x1234, 2)  # an unclaimed port is an event too
    diff = machine.diff(before)
    assert diff
    assert [(e.port, e.size, e.is_in, e.value) for e in diff.events] == [
        (0x80, 1, False, 0xAA),
        (0x1234, 2, True, 0xFFFF),
    ]
    assert diff.events[0].device == "post"
    assert diff.events[1].device == "unclaimed"
    assert diff.registers == () and diff.memory == ()
    assert any("0x0080" in line and "post" in line for line in diff.lines())


# ---------------------------------------------------------------- virtual clock


def test_virtual_clock_only_moves_forward():
    machine = Machine()
    assert machine.clock.ns == 0
    machine.clock.advance(1500)
    machine.clock.advance(0)
    assert machine.clock.ns == 1500
    with pytest.raises(ValueError):
        machine.clock.advance(-1)
    assert machine.clock.ns == 1500


def test_diff_of_overlapping_writes_keeps_the_oldest_bytes():
    machine = Machine()
    machine.memory.write(0x3000, b"abcd")
    before = machine.snapshot()
    machine.memory.write(0x3001, b"XY")
    machine.memory.write(0x3000, b"1234")  # covers the first write: "before" is still abcd
    machine.memory.write(0x3004, b"!")
    diff = machine.diff(before)
    assert [(m.address, m.before, m.after) for m in diff.memory] == [
        (0x3000, b"abcd\x00", b"1234!")
    ]


def test_diff_between_snapshots_ignores_writes_after_the_second():
    machine = Machine()
    first = machine.snapshot()
    machine.memory.write(0x4000, b"one")
    second = machine.snapshot()
    machine.memory.write(0x4000, b"two")
    machine.memory.write(0x4100, b"later")
    diff = machine.diff(first, second)
    assert [(m.address, m.before, m.after) for m in diff.memory] == [(0x4000, bytes(3), b"one")]
    assert [(m.address, m.after) for m in machine.diff(second).memory] == [
        (0x4000, b"two"), (0x4100, b"later")
    ]  # fmt: skip


def test_a_full_snapshot_sees_writes_that_bypass_memory():
    machine = Machine()
    tracked, full = machine.snapshot(), machine.snapshot(full=True)
    machine.memory.data[0x5000] = 0x42  # as the guest CPU stores: no journal entry
    assert not machine.diff(tracked).memory
    assert [(m.address, m.after) for m in machine.diff(full).memory] == [(0x5000, b"\x42")]


def test_journaling_stops_when_no_snapshot_is_left():
    machine = Machine()
    machine.diff(machine.snapshot())
    machine.memory.write(0x6000, b"x")  # the snapshot is gone: nothing is kept for it
    assert machine.memory._journal is None or machine.memory._journal() is None
