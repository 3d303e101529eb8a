"""Exit records (SvmIoExit, VmxIoExit) and IoAccess: real samples, refusals, round trips.

The expected decodes of the real samples are facts from IO_EXITS.md §2 and CURRICULUM.md
(public traces), not outputs of this code.
"""

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvmio_lab import EXITINFO1, ExitInfoError, IoAccess, SvmIoExit, VmxIoExit
from hvmio_lab.exits import access_from_exitinfo1, access_from_qualification
from hvmio_lab.fields import SEGMENTS

U64 = (1 << 64) - 1
RIP = 0xFFFF_F000  # any RIP; samples are position-independent


# -- real samples ---------------------------------------------------------------------------


def test_svm_sample_out_dx_eax_to_pci_config_address():
    # 0xCF80140 with EXITINFO2 = RIP + 1: `out dx, eax` to 0xCF8 (CURRICULUM 02).
    exit_ = SvmIoExit(0xCF80140, RIP + 1, RIP)
    a = exit_.access()
    assert (a.port, a.size, a.is_in, a.string, a.rep) == (0xCF8, 4, False, False, False)
    assert a.address_size == 32  # bit 8: A32
    assert a.immediate is None  # SVM does not report it
    assert exit_.instruction_length == 1  # EF
    assert exit_.next_rip == RIP + 1


@pytest.mark.parametrize(
    ("qualification", "port", "size", "is_in", "immediate", "what"),
    [
        (0x600048, 0x60, 1, True, True, "in al, 0x60: keyboard controller"),
        (0x5658000B, 0x5658, 4, True, False, "in eax, dx: VMware backdoor"),
        (0x3FD0008, 0x3FD, 1, True, False, "UART LSR poll (COM1 base 0x3F8 + 5)"),
    ],
)
def test_vmx_real_samples(qualification, port, size, is_in, immediate, what):
    a = VmxIoExit(qualification, 2 if immediate else 1, RIP).access()
    assert (a.port, a.size, a.is_in, a.immediate) == (port, size, is_in, immediate), what
    assert not a.string and not a.rep
    assert a.address_size is None and a.segment is None  # VMX does not report them for IN/OUT


def test_in_eax_dx_from_pm_timer_both_vendors():
    svm = SvmIoExit(0x1F480241, 0x1001, 0x1000).access()
    vmx = VmxIoExit(0x1F48000B, 1, 0x1000).access()
    for a in (svm, vmx):
        assert (a.port, a.size, a.is_in, a.string) == (0x1F48, 4, True, False)
    assert svm.address_size == 64


def test_vmx_string_access_reads_instruction_information():
    # rep outsb to 0x3F8: size−1 = 0, OUT, string, REP (0x30); info: 32-bit (1 << 7), DS (3 << 15)
    a = VmxIoExit(0x3F80030, 2, RIP, (1 << 7) | (3 << 15)).access()
    assert (a.string, a.rep, a.is_in, a.address_size, a.segment) == (True, True, False, 32, "DS")
    # INS always writes ES:[rDI]; the manual leaves its segment bits undefined
    a = VmxIoExit(0x3F80038, 2, RIP, (2 << 7) | (7 << 15)).access()
    assert (a.is_in, a.address_size, a.segment) == (True, 64, "ES")


def test_svm_string_access_has_segment_only_for_string_io():
    # rep outsw to 0x1F0 with SEG = FS: STR, REP, SZ16, A32, SEG 4 (TYPE 0 = OUT)
    a = SvmIoExit((0x1F0 << 16) | (4 << 10) | (1 << 8) | (1 << 5) | 0b1100, RIP + 3, RIP).access()
    assert (a.string, a.rep, a.size, a.segment, a.address_size) == (True, True, 2, "FS", 32)
    a = SvmIoExit(0x1F480241 | (3 << 10), RIP + 1, RIP).access()
    assert a.segment is None


def test_an_ins_record_writes_es_whatever_its_seg_bits_say():
    """IO_EXITS.md §2-§3: INS always writes ES:(R)DI, and SEG is only reliable with
    DecodeAssists; as the VMX instruction-information's segment bits of an INS, SEG = DS on
    an INS says nothing (rep insw from 0x1F0: TYPE, STR, REP, SZ16, A32, SEG 3)."""
    a = SvmIoExit((0x1F0 << 16) | (3 << 10) | (1 << 8) | (1 << 5) | 0b1101, RIP + 2, RIP).access()
    assert (a.is_in, a.string, a.segment) == (True, True, "ES")


@pytest.mark.parametrize("segment", ["CS", "SS", "DS", "FS", "GS"])
def test_ioaccess_refuses_an_ins_whose_segment_is_not_es(segment):
    """INS always writes ES:(R/E)DI (SDM Vol. 2, INS; IO_EXITS.md §3): no override applies,
    so an access that says otherwise describes no instruction. OUTS may use any segment."""
    with pytest.raises(ExitInfoError, match=rf"INS must be ES.*got '{segment}'"):
        IoAccess(0x1F0, 2, True, True, True, 32, segment)
    assert IoAccess(0x1F0, 2, True, True, True, 32, "ES").segment == "ES"
    assert IoAccess(0x1F0, 2, True, True, True, 32).segment is None  # not reported: fine
    assert IoAccess(0x1F0, 2, False, True, True, 32, segment).segment == segment


def test_vmx_to_svm_refuses_a_segment_other_than_es_for_an_ins():
    """The segment a learner passes for an INS without instruction-information can only be
    ES; encoding SEG = FS would describe an instruction that cannot exist."""
    ins = VmxIoExit(0x3F80038, 2, RIP)  # rep insb from 0x3F8, no instruction-information
    with pytest.raises(ExitInfoError, match=r"SEG .* INS is ES.*got segment='FS'"):
        ins.to_svm(address_size=64, segment="FS")
    assert ins.to_svm(address_size=64, segment="ES").access().segment == "ES"
    with pytest.raises(ExitInfoError, match=r"INS is ES"):
        SvmIoExit.from_access(ins.access(), RIP, RIP + 2, address_size=32, segment="DS")


# -- refusals of whole records ---------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 16, 100])
def test_svm_instruction_length_outside_1_to_15(length):
    with pytest.raises(ExitInfoError, match=rf"EXITINFO2 − RIP.*\b{length}\b"):
        SvmIoExit(0x1F480241, RIP + length, RIP).access()


def test_svm_exitinfo2_below_rip_is_refused():
    with pytest.raises(ExitInfoError, match="EXITINFO2 − RIP"):
        SvmIoExit(0x1F480241, RIP - 1, RIP).access()


@pytest.mark.parametrize("length", [0, 16, -1])
def test_vmx_instruction_length_outside_1_to_15(length):
    with pytest.raises(ExitInfoError, match=r"instruction length"):
        VmxIoExit(0x1F48000B, length, RIP).access()


@pytest.mark.parametrize("length", [1, 15])
def test_instruction_length_bounds_are_accepted(length):
    assert SvmIoExit(0x1F480241, RIP + length, RIP).instruction_length == length
    assert VmxIoExit(0x1F48000B, length, RIP).next_rip == RIP + length


@pytest.mark.parametrize(
    ("e1", "field"),
    [(0x1F480243, "reserved"), (0x1F480261, "SZ"), (0x1F480341, "A"), (0x1F481A41, "SEG")],
)
def test_svm_access_refuses_bad_exitinfo1(e1, field):
    with pytest.raises(ExitInfoError, match=field):
        SvmIoExit(e1, RIP + 1, RIP).access()


@pytest.mark.parametrize(("q", "field"), [(0x1F48000A, "size"), (0x1F48008B, "reserved")])
def test_vmx_access_refuses_bad_qualification(q, field):
    with pytest.raises(ExitInfoError, match=field):
        VmxIoExit(q, 1, RIP).access()


def test_vmx_string_with_immediate_operand_is_refused():
    # INS/OUTS always take the port from DX: bit 4 set with bit 6 set cannot happen.
    with pytest.raises(ExitInfoError, match="operand encoding"):
        VmxIoExit(0x3F80050, 1, RIP).access()


@pytest.mark.parametrize("bad", [-1, 1 << 64, "0x1f480241", 1.5, None])
def test_records_refuse_non_64_bit_values(bad):
    with pytest.raises(ExitInfoError):
        SvmIoExit(bad, 1, 0)
    with pytest.raises(ExitInfoError):
        VmxIoExit(bad, 1, 0)


# -- fuzz: any value decodes or raises ExitInfoError, nothing else ---------------------------------

any_u64 = st.integers(0, U64)
mostly_valid_e1 = st.one_of(any_u64, st.integers(0, 0xFFFF_FFFF))


@settings(deadline=None)
@given(mostly_valid_e1, any_u64, any_u64)
def test_svm_fuzz_decodes_or_refuses(e1, e2, rip):
    exit_ = SvmIoExit(e1, e2, rip)
    try:
        a = exit_.access()
    except ExitInfoError:
        return
    assert isinstance(a, IoAccess) and a.size in (1, 2, 4) and 0 <= a.port <= 0xFFFF
    assert 1 <= exit_.instruction_length <= 15


@settings(deadline=None)
@given(mostly_valid_e1, st.integers(-(1 << 70), 1 << 70), any_u64,
       st.none() | st.integers(0, 0xFFFF_FFFF))  # fmt: skip
def test_vmx_fuzz_decodes_or_refuses(q, length, rip, info):
    exit_ = VmxIoExit(q, length, rip, info)
    try:
        a = exit_.access()
    except ExitInfoError:
        return
    assert isinstance(a, IoAccess) and a.size in (1, 2, 4)


@settings(deadline=None)
@given(any_u64)
def test_layout_decode_fuzz_raises_only_exit_info_error(x):
    with contextlib.suppress(ExitInfoError):
        EXITINFO1.decode(x)
    assert len(EXITINFO1.describe(x)) == len(EXITINFO1.fields)


# -- IoAccess --------------------------------------------------------------------------------------


def test_io_access_is_immutable():
    a = IoAccess(0x60, 1, True)
    with pytest.raises(AttributeError):
        a.port = 0x61  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"port": 0x10000, "size": 1, "is_in": True},
        {"port": -1, "size": 1, "is_in": True},
        {"port": 0x60, "size": 3, "is_in": True},
        {"port": 0x60, "size": 8, "is_in": True},
        {"port": 0x60, "size": 1, "is_in": True, "address_size": 8},
        {"port": 0x60, "size": 1, "is_in": True, "segment": "XS"},
    ],
)
def test_io_access_refuses_impossible_accesses(kwargs):
    with pytest.raises(ExitInfoError):
        IoAccess(**kwargs)


# -- encoding and translation round trips ----------------------------------------------------------

ports = st.integers(0, 0xFFFF)
sizes = st.sampled_from((1, 2, 4))
address_sizes = st.sampled_from((16, 32, 64))
segments = st.sampled_from(SEGMENTS)


@st.composite
def svm_accesses(draw):
    """Accesses as SVM reports them: address size always, segment for string I/O only,
    no immediate bit (INS: always ES)."""
    string, is_in = draw(st.booleans()), draw(st.booleans())
    return IoAccess(
        port=draw(ports), size=draw(sizes), is_in=is_in, string=string,
        rep=draw(st.booleans()) if string else False, address_size=draw(address_sizes),
        segment=("ES" if is_in else draw(segments)) if string else None,
    )  # fmt: skip


@st.composite
def vmx_accesses(draw):
    """Accesses as VMX reports them: the immediate bit always (DX for string I/O); address size
    and segment only for INS/OUTS with instruction information (INS: always ES)."""
    string, is_in = draw(st.booleans()), draw(st.booleans())
    with_info = string and draw(st.booleans())
    immediate = False if string else draw(st.booleans())
    return IoAccess(
        port=draw(st.integers(0, 0xFF) if immediate else ports), size=draw(sizes), is_in=is_in,
        string=string,
        rep=draw(st.booleans()) if string else False,
        address_size=draw(address_sizes) if with_info else None,
        segment=("ES" if is_in else draw(segments)) if with_info else None,
        immediate=immediate,
    )  # fmt: skip


@settings(deadline=None)
@given(svm_accesses(), st.integers(0, U64 - 15), st.integers(1, 15))
def test_svm_from_access_round_trip(access, rip, length):
    exit_ = SvmIoExit.from_access(access, rip, rip + length)
    assert exit_.access() == access
    assert exit_.instruction_length == length
    assert SvmIoExit.from_access(exit_.access(), rip, rip + length) == exit_


@settings(deadline=None)
@given(vmx_accesses(), st.integers(0, U64), st.integers(1, 15))
def test_vmx_from_access_round_trip(access, rip, length):
    exit_ = VmxIoExit.from_access(access, rip, length)
    assert exit_.access() == access
    assert exit_.next_rip == (rip + length) & U64


SHARED = ("port", "size", "is_in", "string", "rep")


def shared(a: IoAccess) -> tuple:
    return tuple(getattr(a, name) for name in SHARED)


@settings(deadline=None)
@given(svm_accesses(), st.integers(0, U64 - 15), st.integers(1, 15), st.booleans())
def test_svm_to_vmx_to_svm_is_lossless_for_shared_fields(access, rip, length, imm):
    svm = SvmIoExit.from_access(access, rip, rip + length)
    vmx = svm.to_vmx(immediate=imm and not access.string and access.port <= 0xFF)
    assert shared(vmx.access()) == shared(access)
    assert vmx.instruction_length == length and vmx.rip == rip
    back = vmx.to_svm(address_size=access.address_size, segment=access.segment)
    assert back == svm  # what VMX dropped (address size, segment) was given back


@settings(deadline=None)
@given(vmx_accesses(), st.integers(0, U64 - 15), st.integers(1, 15))
def test_vmx_to_svm_to_vmx_is_lossless_for_shared_fields(access, rip, length):
    vmx = VmxIoExit.from_access(access, rip, length)
    outs = access.string and not access.is_in
    segment = access.segment or ("DS" if outs else None)  # an OUTS segment is never guessed
    svm = vmx.to_svm(address_size=access.address_size or 64, segment=segment)
    assert shared(svm.access()) == shared(access)
    assert svm.instruction_length == length
    again = svm.to_vmx(immediate=access.immediate)
    assert again.qualification == vmx.qualification
    assert shared(again.access()) == shared(access)


def test_translation_refuses_to_guess():
    # SVM has no immediate bit: translating a non-string access needs it said.
    with pytest.raises(ExitInfoError, match="operand encoding"):
        SvmIoExit(0x1F480241, 0x1001, 0x1000).to_vmx()
    # VMX has no address size for IN/OUT: translating to SVM needs it said.
    with pytest.raises(ExitInfoError, match="address size"):
        VmxIoExit(0x1F48000B, 1, 0x1000).to_svm()


def test_translate_the_pci_sample_to_vmx():
    # out dx, eax to 0xCF8: size−1 = 3, OUT, DX → 0x0CF80003 (SDM table, by hand)
    vmx = SvmIoExit(0xCF80140, RIP + 1, RIP).to_vmx(immediate=False)
    assert (vmx.qualification, vmx.instruction_length) == (0x0CF80003, 1)


def test_translate_keyboard_sample_to_svm():
    # in al, 0x60 → TYPE 1, SZ8 (bit 4), A64 chosen (bit 9), PORT 0x60 → 0x00600211
    svm = VmxIoExit(0x600048, 2, RIP).to_svm(address_size=64)
    assert svm.exitinfo1 == 0x00600211 and svm.exitinfo2 == RIP + 2


def test_an_immediate_port_must_fit_its_imm8():
    """Bit 6 = 1 means the port came from an imm8, so no CPU can report a port above 0xFF."""
    from hvmio_lab import ExitInfoError, VmxIoExit

    ok = VmxIoExit((0xFF << 16) | (1 << 6) | 0x8, 2, 0x1000)
    assert ok.access().port == 0xFF and ok.access().immediate
    with pytest.raises(ExitInfoError, match=r"port.*imm8.*0x100"):
        VmxIoExit((0x100 << 16) | (1 << 6) | 0x8, 2, 0x1000).access()


# -- the strict edge (issue 12): each of these was accepted before -------------------------


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"size": True}, "size must be 1, 2 or 4 bytes, got True"),
        ({"size": 2.0}, "size must be 1, 2 or 4 bytes, got 2.0"),
        ({"is_in": "no"}, "is_in must be True or False, got 'no'"),
        ({"is_in": 1}, "is_in must be True or False, got 1"),
        ({"string": 0}, "string must be True or False, got 0"),
        ({"rep": None}, "rep must be True or False, got None"),
        ({"immediate": 1}, "immediate must be True, False or None, got 1"),
    ],
)
def test_io_access_refuses_values_that_only_look_right(kwargs, named):
    """``'no'`` is truthy and ``True == 1``: accepting them would read 'no' as IN."""
    fields = {"port": 0x60, "size": 1, "is_in": True, **kwargs}
    with pytest.raises(ExitInfoError, match=named):
        IoAccess(**fields)


def test_svm_from_access_refuses_an_instruction_longer_than_15_bytes():
    access = IoAccess(0x60, 1, True)
    with pytest.raises(ExitInfoError, match=r"1\.\.15 bytes, got 100"):
        SvmIoExit.from_access(access, 0, 100, address_size=64)
    with pytest.raises(ExitInfoError, match=r"1\.\.15 bytes, got 0"):
        SvmIoExit.from_access(access, 0x1000, 0x1000, address_size=64)
    assert SvmIoExit.from_access(access, 0, 15, address_size=64).instruction_length == 15


def test_vmx_to_svm_asks_for_the_segment_of_an_outs_without_instruction_information():
    """OUTS reads DS:[rSI] unless overridden (SDM), so ES would be a wrong guess; INS always
    writes ES:[rDI], so it needs nothing."""
    outs = VmxIoExit(0x3F80030, 2, RIP)  # rep outsb to 0x3F8, no instruction-information
    with pytest.raises(ExitInfoError, match=r"SEG .* OUTS is unknown"):
        outs.to_svm(address_size=64)
    assert outs.to_svm(address_size=64, segment="FS").access().segment == "FS"
    ins = VmxIoExit(0x3F80038, 2, RIP)  # rep insb
    assert ins.to_svm(address_size=64).access().segment == "ES"


def test_a_bare_exitinfo1_or_qualification_decodes_without_a_fake_record():
    # IO_EXITS.md §2: 0x1F480241 is a 32-bit IN (bit 6) from 0x1F48 with A64 (bit 9); 0x600048 is
    # in al, 0x60 (size−1 = 0, IN, immediate).
    assert access_from_exitinfo1(0x1F480241) == IoAccess(0x1F48, 4, True, False, False, 64)
    assert access_from_qualification(0x600048) == IoAccess(0x60, 1, True, immediate=True)
    outsb = access_from_qualification(0x3F80030, (1 << 7) | (3 << 15))
    assert (outsb.address_size, outsb.segment, outsb.rep) == (32, "DS", True)
    for bad in (1.0, True, "0x1f480241"):
        with pytest.raises(ExitInfoError, match="must be an integer"):
            access_from_exitinfo1(bad)
        with pytest.raises(ExitInfoError, match="must be an integer"):
            access_from_qualification(bad)
    with pytest.raises(ExitInfoError, match="instruction-information must fit in 32 bits"):
        access_from_qualification(0x3F80030, 1 << 32)
