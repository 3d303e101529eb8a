"""The ExitStepper driven from Python, as a learner's clicks would drive it; and ``narrate``,
the story of one exit it prints."""

import re

import pytest

from hvmio_lab import EXIT_QUALIFICATION, EXITINFO1
from hvmio_lab.guest import Guest, Program, load_program
from hvmio_lab.outcome import narrate
from hvmio_lab.widgets import ExitStepper

HELLO = load_program("uart_hello")
MESSAGE = HELLO.params["message"]
LSR, THR = HELLO.params["lsr_port"], HELLO.params["thr_port"]


def line_after(text: str) -> tuple[int, str]:
    """(address, text) of the listing line after the first instruction reading ``text``."""
    listing = HELLO.listing()
    i = next(i for i, (_, _, t) in enumerate(listing) if t == text)
    return listing[i + 1][0], listing[i + 1][2]


def changed_rows(html: str) -> list[str]:
    """The register names in the rows the table marks as changed."""
    return re.findall(r"<tr class='hvmio-changed'><td>(\w+)</td>", html)


@pytest.fixture
def stepper():
    return ExitStepper(Guest("uart_hello", "svm", "fast"))


def test_before_any_exit_rip_is_at_the_entry_point(stepper):
    entry = HELLO.listing()[0]
    assert stepper.rip_line.startswith("▶")
    assert f"{HELLO.load:#x}" in stepper.rip_line and entry[2] in stepper.rip_line
    assert "hvmio-rip" in stepper.listing_view.value
    assert stepper.record is None and stepper.console_text == ""
    assert not stepper.step_button.disabled


def test_io_instructions_are_marked_in_the_listing(stepper):
    io_lines = re.findall(r"<div class='hvmio-line hvmio-io[^']*'>([^<]*)</div>",
                          stepper.listing_view.value)  # fmt: skip
    assert len(io_lines) == len(stepper.guest.io_sites) == 3  # in (LSR), out (THR), out (POST)
    assert all("I/O" in line for line in io_lines)


def test_first_step_is_the_lsr_poll_and_rip_resumes_after_it(stepper):
    regs_before, rip_before = stepper.registers_html, stepper.rip_line
    outcome = stepper.step()
    assert outcome.access.port == LSR and outcome.access.is_in
    address, text = line_after("in al, dx")
    assert f"{address:#x}" in stepper.rip_line and text in stepper.rip_line
    assert stepper.rip_line != rip_before and stepper.registers_html != regs_before
    # the hypervisor wrote the LSR value into AL and advanced IP: both rows are marked
    assert (
        set(changed_rows(stepper.registers_html)) == {"ax", "ip"} == set(stepper.changed_registers)
    )
    assert "hvmio-exited" in stepper.listing_view.value  # the line the exit came from


def test_the_register_table_shows_before_and_after(stepper):
    outcome = stepper.step()
    before, after = outcome.diff.register("rax")
    row = re.search(r"<tr class='hvmio-changed'><td>ax</td><td>(\w+)</td><td>(\w+)</td>",
                    stepper.registers_html)  # fmt: skip
    assert (int(row[1], 16), int(row[2], 16)) == (before, after)
    assert after & 0xFF & 0x20  # THRE: the transmitter can take a byte


def test_two_steps_put_the_first_character_on_the_console(stepper):
    stepper.step()
    assert stepper.console_text == ""  # a poll writes nothing
    outcome = stepper.step()
    assert outcome.access.port == THR and not outcome.access.is_in
    assert stepper.console_text == MESSAGE[0] == "h"
    assert "h" in stepper.console_view.value
    assert f"{THR:#06x}" in stepper.log_text and f"{LSR:#06x}" in stepper.log_text


def test_the_record_is_the_bitflipper_read_only(stepper):
    outcome = stepper.step()
    flipper = stepper.record
    assert flipper.register is EXITINFO1 and flipper.readonly
    assert flipper.value == outcome.exit.exitinfo1
    assert all(t.disabled for t in flipper.bit_toggles.values())
    assert flipper.error_text == ""  # a record real hardware built decodes cleanly
    assert f"EXITINFO2 = {outcome.exit.exitinfo2:#x}" in stepper.record_text
    assert "length = EXITINFO2 − RIP = 1" in stepper.record_text
    assert "fast path" in stepper.record_text


def test_narrative_tells_stop_report_handling_and_resume(stepper):
    outcome = stepper.step()
    lines = stepper.narrative.splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["stopped", "reported", "handled", "resumed"]
    assert "`in al, dx`" in lines[0] and f"{outcome.exit.rip:#x}" in lines[0]
    assert f"{outcome.exit.exitinfo1:#x}" in lines[1]
    assert "fast path" in lines[2] and "AL" in lines[2]
    assert f"{outcome.exit.exitinfo2:#x}" in lines[3] and "hypervisor" in lines[3]
    assert stepper.narrative_view.value.count("resumed:") == 1


def test_run_n_takes_n_exits(stepper):
    stepper.run(5)  # poll, write, poll, write, poll
    assert stepper.guest.exits == 5
    assert stepper.console_text == MESSAGE[:2]
    assert stepper.log_text.count("exit ") == 5


def test_running_to_the_end_halts_with_a_message_not_an_error(stepper):
    stepper.run(10 * len(MESSAGE))
    assert stepper.halted
    assert stepper.guest.exits == 2 * len(MESSAGE) + 1
    assert stepper.console_text == MESSAGE
    assert "HLT" in stepper.message and "success" in stepper.message
    assert "hlt" in stepper.rip_line
    assert stepper.step_button.disabled and stepper.run_button.disabled
    assert stepper.step() is None  # pressing Step again: still no exception
    assert stepper.error_text == "" and "HLT" in stepper.status_view.value


def test_reset_starts_over(stepper):
    stepper.run(4)
    stepper.reset()
    assert stepper.guest.exits == 0 and stepper.console_text == ""
    assert f"{HELLO.load:#x}" in stepper.rip_line
    assert stepper.record is None and stepper.log_text == ""
    assert not stepper.step_button.disabled


def test_switching_vendor_resets_and_shows_the_vmx_record(stepper):
    stepper.run(3)
    stepper.vendor_select.value = "vmx"
    assert stepper.guest.vendor == "vmx" and stepper.guest.exits == 0
    assert stepper.console_text == ""
    outcome = stepper.step()
    assert stepper.record.register is EXIT_QUALIFICATION
    assert stepper.record.value == outcome.exit.qualification
    assert "instruction length = 1" in stepper.record_text
    assert "instruction length 1" in stepper.narrative


def test_switching_path_resets_and_uses_the_emulator(stepper):
    stepper.step()
    stepper.configure(path="emulate")
    assert stepper.guest.path == "emulate" and stepper.guest.exits == 0
    stepper.run(2)
    assert stepper.guest.hypervisor.counters["emulate"] == 2
    assert "emulator" in stepper.narrative and "emulator" in stepper.record_text
    assert stepper.console_text == "h"  # same guest-visible result down either path


def test_buttons_call_the_same_methods(stepper):
    stepper.step_button.click()
    assert stepper.guest.exits == 1
    stepper.run_count.value = 3
    stepper.run_button.click()
    assert stepper.guest.exits == 4
    stepper.reset_button.click()
    assert stepper.guest.exits == 0


def test_a_bad_run_count_is_a_message(stepper):
    stepper.run(0)
    assert "N" in stepper.error_text and stepper.guest.exits == 0
    assert "hvmio-error" in stepper.error_view._dom_classes


def test_an_hvmio_error_shows_in_place():
    # mov dx, 0x3f8; in ax, dx: the 16550's registers are 8 bits wide, so the access fails
    wide = Program("wide", 16, 0x7C00, 0x7000, bytes.fromhex("baf803ed f4"),
                   "a 16-bit read of the UART", 0xAA, {})  # fmt: skip
    stepper = ExitStepper(Guest(wide))
    assert stepper.step() is None
    assert "#GP" in stepper.error_text
    assert "#GP" in stepper.error_view.value
    stepper.reset()
    assert stepper.error_text == ""


def test_a_rep_batch_stays_on_its_instruction():
    # mov dx, 0x3f8; mov di, 0xff0; mov cx, 0x20; rep insb: 32 bytes, the first 16 up to the
    # page end in one exit, the rest in the next (batches stop at a page boundary)
    code = bytes.fromhex("baf803 bff00f b92000 f36c f4")
    prog = Program("rep", 16, 0x7C00, 0x7000, code, "rep insb across a page", 0xAA, {})
    stepper = ExitStepper(Guest(prog, uart_input=b"x" * 32))
    first = stepper.step()
    assert not first.done
    assert "rep insb" in stepper.rip_line  # RIP has not moved
    assert "RIP stays at" in stepper.narrative and "again" in stepper.narrative
    assert "more like these" in stepper.log_text  # 16 elements, summarised
    stepper.step()
    assert "hlt" in stepper.rip_line


def test_a_guest_with_recording_off_is_switched_on():
    stepper = ExitStepper(Guest("uart_hello", recording=False))
    stepper.step()
    assert stepper.changed_registers  # the table needs the state diff


def test_text_view_for_static_pages(stepper):
    stepper.run(2)
    text = stepper.text()
    assert "2 exits" in text and "resumed:" in text and repr("h") in text
    bundle = stepper._repr_mimebundle_()
    assert bundle["text/plain"].startswith("ExitStepper(uart_hello")
    assert " at 0x" not in bundle["text/plain"]  # no object address: outputs stay comparable


# -- narrate: the core function behind the story ------------------------------------------------


def test_narrate_vmx_uses_the_instruction_length():
    guest = Guest("uart_hello", "vmx", "fast")
    guest.step()
    outcome = guest.step()  # the THR write
    text = narrate(outcome, "out dx, al")
    assert "exit qualification" in text and "instruction length 1" in text
    assert "'h'" in text  # the character the guest wrote
    assert f"{outcome.exit.rip + 1:#x}" in text.splitlines()[3]


def test_narrate_says_the_2010_patch_re_emulated():
    guest = Guest("uart_hello", "svm", "seed2010")
    outcome = guest.step()
    assert outcome.reemulated
    assert "2010" in narrate(outcome)


@pytest.mark.parametrize("which", ["vendor_select", "path_select"])
def test_a_setting_set_to_none_from_code_is_a_message(which):
    stepper = ExitStepper(Guest("uart_hello"))
    stepper.step()
    before = (stepper.guest.vendor, stepper.guest.path, stepper.rip)
    getattr(stepper, which).value = None  # must not raise out of the observer
    assert "pick a vendor" in stepper.error_text
    assert (stepper.guest.vendor, stepper.guest.path, stepper.rip) == before
    getattr(stepper, which).value = "vmx" if which == "vendor_select" else "emulate"
    assert stepper.error_text == ""
    assert stepper.step() is not None  # not stuck


# -- code outside the shipped listing: CS ≠ 0, firmware ------------------------------------

# jmp 0x07C0:0x0005 (EA iw iw), then at linear 0x7C05: mov dx, 0x3FD; in al, dx; mov al, 0xAA;
# out 0x80, al; hlt. After the far jump, IP offsets are 0x7C00 lower than linear addresses.
FAR_JUMP = bytes.fromhex("ea0500c007" "bafd03" "ec" "b0aa" "e680" "f4")


def test_after_a_far_jump_the_highlight_follows_cs_base_plus_ip():
    stepper = ExitStepper(Guest.from_code(FAR_JUMP, mode=16, origin=0x7C00))
    stepper.step()  # the IN at 07C0:0008, linear 0x7C08
    assert stepper.rip == 0x9 and stepper.guest.cpu.segment("CS").selector == 0x07C0
    assert "0x7c09" in stepper.rip_line and "mov al, 0xaa" in stepper.rip_line
    assert "hvmio-rip" in stepper.listing_view.value


def test_firmware_shows_its_code_from_memory_its_registers_and_its_debug_console():
    from hvmio_lab.firmware import FirmwareGuest, find_seabios  # CI installs seabios

    stepper = ExitStepper(FirmwareGuest(find_seabios(), recording=True))
    stepper.run(6)  # CMOS, A20, then the first two banner bytes on the debug port
    assert stepper.console_name == "debug console" and stepper.console_text == "Se"
    linear = stepper.guest.machine.linear("CS", stepper.rip)
    assert stepper.rip_line.startswith("▶") and f"{linear:#x}" in stepper.rip_line
    mode = stepper.guest.machine.mode
    assert ("<td>eax</td>" in stepper.registers_html) == (mode == 32)
