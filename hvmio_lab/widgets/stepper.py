"""ExitStepper: watch a real guest program trap, exit by exit.

The guest runs on unicorn until it reaches an I/O instruction; the CPU stops *before* it, the
"hardware" builds the exit record, the hypervisor handles it and the guest resumes. The widget
shows each part of that loop:

- the disassembly (capstone), the line at RIP highlighted, I/O instructions marked;
- the exit record as bits, with the BitFlipper's rendering made read-only (EXITINFO1 for SVM,
  the exit qualification for VMX), plus EXITINFO2 / the instruction length and the path taken;
- what happened, in words (``hvmio_lab.outcome.narrate``);
- the registers at the exit and after it, the changed ones highlighted (from the state diff);
- the device log and the UART console.

Stage times are deliberately not shown: they vary from run to run.

Drive it from Python as a test or a notebook would::

    stepper = ExitStepper(Guest("uart_hello"))
    stepper.step()            # run to the first exit and handle it: the LSR poll
    stepper.rip_line          # the highlighted listing line, where the guest resumes
    stepper.run(10)           # ten more exits (fewer if the guest halts)
    stepper.console_text      # what the guest has written to the UART so far
    stepper.path_select.value = "emulate"   # a new guest, same program, emulator path
    stepper.reset()

CSS classes (a contract the browser tests rely on):
``hvmio-stepper`` the whole widget; ``hvmio-step``, ``hvmio-run``, ``hvmio-reset`` the
buttons and ``hvmio-run-n`` the N box; ``hvmio-vendor`` and ``hvmio-path`` the selectors;
``hvmio-listing`` the listing, in which each line is a ``hvmio-line``, the line at RIP is
``hvmio-rip``, I/O instructions are ``hvmio-io`` and the instruction of the last exit is
``hvmio-exited``; ``hvmio-record`` the exit record; ``hvmio-narrative`` the story of the last
exit; ``hvmio-regs`` the register table, whose changed rows are ``hvmio-changed``;
``hvmio-log`` the device log; ``hvmio-console`` the UART console; ``hvmio-status`` the exit
count and the halt message; ``hvmio-error`` an error message (empty while all is well).
"""

from __future__ import annotations

import html
from collections import deque

import ipywidgets as W

from ..errors import HvmioError
from ..fields import EXIT_QUALIFICATION, EXITINFO1
from ..guest import Guest
from ..hardware import IO_INSTRUCTIONS, disassembler
from ..hypervisor import PATHS, VENDORS
from ..machine import GPRS
from ..outcome import Outcome, narrate
from .bitflipper import BitFlipper

LOG_LINES = 200  # device-log lines kept
LOG_SHOWN = 14  # of which the widget shows the newest
LISTING_WINDOW = 28  # a longer listing shows this many lines around RIP (no scrolling needed)
EVENTS_PER_EXIT = 4  # a string exit moves hundreds of elements: show a few, count the rest
RUN_MAX = 100_000

_PATH_LABELS = {
    "fast": "fast: from the exit record",
    "emulate": "emulate: decode the bytes",
    "seed2010": "seed2010: the 2010 patch",
}
_VENDOR_LABELS = {"svm": "AMD SVM", "vmx": "Intel VMX"}

_CSS = """<style>
.hvmio-stepper .hvmio-listing {font-family:monospace;font-size:12px;line-height:1.45;
  border:1px solid #ccc;padding:4px 0}
.hvmio-stepper .hvmio-gap {color:#777;padding:0 6px;font-style:italic}
.hvmio-stepper .hvmio-line {white-space:pre;padding:0 6px}
.hvmio-stepper .hvmio-io {color:#8a3b00;font-weight:bold}
.hvmio-stepper .hvmio-exited {box-shadow:inset 3px 0 0 #c00000}
.hvmio-stepper .hvmio-rip {background:#ffe066}
.hvmio-stepper .hvmio-regs table {font-family:monospace;font-size:12px;border-collapse:collapse}
.hvmio-stepper .hvmio-regs td, .hvmio-stepper .hvmio-regs th {padding:0 8px;text-align:left}
.hvmio-stepper .hvmio-regs tr.hvmio-changed td {background:#ffd6d6;font-weight:bold}
.hvmio-stepper .hvmio-narrative pre, .hvmio-stepper .hvmio-log pre
  {white-space:pre-wrap;font-size:12px;margin:0}
.hvmio-stepper .hvmio-console pre {background:#1e1e1e;color:#9fef00;padding:4px 8px;
  min-height:2.5em;margin:0;white-space:pre-wrap}
.hvmio-stepper .hvmio-error {color:#b00000;font-weight:bold}
</style>"""


def register_names(mode: int) -> tuple[tuple[str, str], ...]:
    """(our name, the name the mode's programmers use) for the registers the table shows."""
    order = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp")
    gprs = order + tuple(r for r in GPRS if r not in order and mode == 64)
    if mode == 64:
        shown = [(r, r) for r in gprs]
    elif mode == 32:
        shown = [(r, "e" + r[1:]) for r in gprs]
    else:
        shown = [(r, r[1:]) for r in gprs]
    flags = {64: "rflags", 32: "eflags", 16: "flags"}[mode]
    ip = {64: "rip", 32: "eip", 16: "ip"}[mode]
    return (*shown, ("rip", ip), ("rflags", flags))


class ExitStepper(W.VBox):
    """Step a guest program from one VM exit to the next and see what each exit did."""

    def __init__(self, guest: Guest | str, run_n: int = 10):
        if isinstance(guest, str):
            guest = Guest(guest)
        if not guest.recording:  # the register table needs the state diff of each exit
            guest.recording = True
            guest.hypervisor.recording = True
        self.guest = guest
        self.last: Outcome | None = None
        self.error_text = ""
        self._log: deque[str] = deque(maxlen=LOG_LINES)
        self._flippers: dict[str, BitFlipper] = {}
        self._program_listing = guest.program.listing()

        self.step_button = self._button("Step", "hvmio-step", "run to the next VM exit, handle it")
        self.run_button = self._button("Run N", "hvmio-run", "run N exits (stops at HLT)")
        self.reset_button = self._button("Reset", "hvmio-reset", "reload the program")
        self.run_count = W.BoundedIntText(
            value=run_n, min=1, max=RUN_MAX, description="N",
            layout=W.Layout(width="10em"), style={"description_width": "1.5em"},
        )  # fmt: skip
        self.run_count.add_class("hvmio-run-n")
        self.vendor_select = W.Dropdown(
            options=[(_VENDOR_LABELS[v], v) for v in VENDORS], value=guest.vendor,
            description="vendor", layout=W.Layout(width="14em"),
        )  # fmt: skip
        self.vendor_select.add_class("hvmio-vendor")
        self.path_select = W.Dropdown(
            options=[(_PATH_LABELS[p], p) for p in PATHS], value=guest.path,
            description="path", layout=W.Layout(width="20em"),
        )  # fmt: skip
        self.path_select.add_class("hvmio-path")
        self.step_button.on_click(lambda _: self.step())
        self.run_button.on_click(lambda _: self.run(self.run_count.value))
        self.reset_button.on_click(lambda _: self.reset())
        self.vendor_select.observe(self._on_setting, "value")
        self.path_select.observe(self._on_setting, "value")

        self.status_view = self._html("hvmio-status")
        self.error_view = self._html("hvmio-error")
        self.listing_view = self._html("hvmio-listing", W.Layout(min_width="30em"))
        self.narrative_view = self._html("hvmio-narrative")
        self.record_extra = self._html("hvmio-record-extra")
        self.record_box = W.VBox([])
        self._no_exit = W.HTML("<i>no exit yet</i>")
        self.record_box.add_class("hvmio-record")
        self.registers_view = self._html("hvmio-regs")
        self.log_view = self._html("hvmio-log")
        self.console_view = self._html("hvmio-console")

        prog = guest.program
        title = W.HTML(
            f"<b>{html.escape(prog.name)}</b> ({prog.mode}-bit) — {html.escape(prog.description)}"
        )
        controls = W.HBox([self.step_button, self.run_count, self.run_button, self.reset_button,
                           self.vendor_select, self.path_select],
                          layout=W.Layout(flex_flow="row wrap"))  # fmt: skip
        right = W.VBox([self._heading("registers (at the exit → after)"), self.registers_view,
                        self._heading(self.console_name), self.console_view,
                        self._heading("device log"), self.log_view])  # fmt: skip
        top = W.HBox([W.VBox([self._heading("guest code (▶ = RIP)"), self.listing_view]), right],
                     layout=W.Layout(flex_flow="row wrap", grid_gap="12px"))  # fmt: skip
        super().__init__([
            W.HTML(_CSS), title, controls, self.status_view, self.error_view, top,
            self._heading("what happened"), self.narrative_view,
            self._heading("the exit record"), self.record_box,
        ])  # fmt: skip
        self.add_class("hvmio-stepper")
        self._show()

    # -- construction ----------------------------------------------------------------------

    @staticmethod
    def _button(text: str, cls: str, tooltip: str) -> W.Button:
        button = W.Button(description=text, tooltip=tooltip, layout=W.Layout(width="7em"))
        button.add_class(cls)
        return button

    @staticmethod
    def _html(cls: str, layout: W.Layout | None = None) -> W.HTML:
        widget = W.HTML(layout=layout) if layout is not None else W.HTML()
        widget.add_class(cls)
        return widget

    @staticmethod
    def _heading(text: str) -> W.HTML:
        return W.HTML(f"<div style='font-weight:bold;margin-top:6px'>{html.escape(text)}</div>")

    def _flipper(self, vendor: str, value: int) -> BitFlipper:
        """The read-only bit view for ``vendor``'s record, made on first use."""
        flipper = self._flippers.get(vendor)
        if flipper is None:
            layout = EXITINFO1 if vendor == "svm" else EXIT_QUALIFICATION
            flipper = self._flippers[vendor] = BitFlipper(layout, value, readonly=True)
        flipper.value = value
        return flipper

    # -- the API: what the buttons call ----------------------------------------------------

    @property
    def halted(self) -> bool:
        return self.guest.halted

    def step(self) -> Outcome | None:
        """Run the guest to its next I/O exit and handle it; None (and a message) once it has
        halted or when an error stopped it."""
        outcome = self._advance(1)
        self._show()
        return outcome

    def run(self, n: int) -> Outcome | None:
        """Up to ``n`` exits, stopping at HLT; the view shows the last one."""
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= RUN_MAX:
            self.error_text = f"Run N needs a whole number N from 1 to {RUN_MAX:,}; got {n!r}"
            self._show()
            return None
        outcome = self._advance(n)
        self._show()
        return outcome

    def reset(self) -> None:
        """Reload the program: fresh memory, registers and devices, no exits yet."""
        try:
            self.guest.reset()
            self.error_text = ""
        except HvmioError as e:
            self.error_text = str(e)
        self.last = None
        self._log.clear()
        self._show()

    def configure(self, vendor: str | None = None, path: str | None = None) -> None:
        """Switch vendor and/or path: the guest starts again with the new setting."""
        if vendor is not None:
            self.vendor_select.value = vendor  # the observer resets
        if path is not None:
            self.path_select.value = path

    def _on_setting(self, change) -> None:
        vendor, path = self.vendor_select.value, self.path_select.value
        if vendor not in VENDORS or path not in PATHS:  # e.g. set to None from code
            self.error_text = (f"pick a vendor ({', '.join(VENDORS)}) and a path "
                               f"({', '.join(PATHS)}); the guest is unchanged")  # fmt: skip
            self._show()
            return
        self.guest.vendor = vendor
        self.guest.path = path
        self.reset()

    def _advance(self, n: int) -> Outcome | None:
        self.error_text = ""
        outcome = None
        for _ in range(n):
            try:
                outcome = self.guest.step()
            except HvmioError as e:
                self.error_text = str(e)
                return None
            if outcome is None:
                return None
            self.last = outcome
            self._remember(outcome)
        return outcome

    def _remember(self, outcome: Outcome) -> None:
        events = outcome.events
        head = f"exit {self.guest.exits:>3}:"
        shown = events[:EVENTS_PER_EXIT] if len(events) > EVENTS_PER_EXIT + 1 else events
        for i, event in enumerate(shown):
            self._log.append(f"{head if i == 0 else ' ' * len(head)} {event}")
        if len(shown) < len(events):
            self._log.append(f"{' ' * len(head)} … {len(events) - len(shown)} more like these")
        if not events:
            self._log.append(f"{head} (no device access)")

    # -- what the widget shows, readable from Python ---------------------------------------

    @property
    def rip(self) -> int:
        return self.guest.cpu.rip

    def _linear(self, rip: int) -> int:
        return self.guest.machine.linear("CS", rip)

    def _rip_address(self) -> int:
        """The listing line to highlight, as a linear address (listings are linear, so CS ≠ 0
        and relocated code highlight the right line): RIP, or the HLT behind it once halted."""
        rip = self._linear(self.rip)
        return rip - 1 if self.halted else rip

    def _exited_address(self) -> int | None:
        return self._linear(self.last.exit.rip) if self.last is not None else None

    def _listing(self) -> tuple[list[tuple[int, str, str]], set[int]]:
        """(address, bytes, text) lines and the I/O lines among them. The program's own
        listing while RIP is in it; elsewhere (firmware, code relocated or written at run
        time) the instructions in memory from RIP on, in the mode the vCPU is in now."""
        rip = self._rip_address()
        static = self._program_listing
        if any(address == rip for address, _, _ in static):
            return static, set(self.guest.io_sites)
        memory, mode = self.guest.machine.memory, self.guest.machine.mode
        code = bytes(memory.data[rip : rip + 15 * LISTING_WINDOW])
        lines, io = [], set()
        for insn in disassembler(mode).disasm(code, rip, LISTING_WINDOW):
            text = f"{insn.mnemonic} {insn.op_str}".strip()
            lines.append((insn.address, insn.bytes.hex(" "), text))
            if insn.id in IO_INSTRUCTIONS:
                io.add(insn.address)
        return lines, io

    def listing_lines(self) -> list[tuple[int, str]]:
        """(address, text) of each listing line, as the widget prints it."""
        rip = self._rip_address()
        exited = self._exited_address()
        listing, io = self._listing()
        digits = len(f"{listing[-1][0]:x}") if listing else 4
        width = max((len(code) for _, code, _ in listing), default=0)
        lines = []
        for address, code, text in listing:
            mark = "▶" if address == rip else " "
            tag = ""
            if address in io:
                tag = "  ⇦ I/O: VM exit" + ("  (last exit)" if address == exited else "")
            where = f"{address:#0{digits + 2}x}"
            lines.append((address, f"{mark} {where}  {code:<{width}}  {text}{tag}"))
        return lines

    @property
    def rip_line(self) -> str:
        """The highlighted line of the listing (where the guest will resume), or ''."""
        rip = self._rip_address()
        return next((text for address, text in self.listing_lines() if address == rip), "")

    @property
    def narrative(self) -> str:
        if self.last is None:
            return (
                "No exit yet. Press Step: the guest runs until it reaches an I/O "
                "instruction, and the CPU exits to the hypervisor before executing it."
            )
        return narrate(self.last, self.guest.io_sites.get(self.last.exit.rip))

    @property
    def changed_registers(self) -> tuple[str, ...]:
        """Names (as in the table) of the registers the last exit changed."""
        if self.last is None or self.last.diff is None:
            return ()
        names = dict(register_names(self.guest.machine.mode))
        return tuple(names[n] for n, _, _ in self.last.diff.registers if n in names)

    @property
    def registers_html(self) -> str:
        mode = self.guest.machine.mode
        digits = mode // 4
        cpu = self.guest.cpu
        now = {ours: getattr(cpu, ours) for ours, _ in register_names(mode)}
        diff = self.last.diff if self.last is not None else None
        if diff is None:
            title = "at the start (no exit yet)" if self.last is None else "now"
            rows = "".join(
                f"<tr><td>{shown}</td><td>{now[ours]:#0{digits + 2}x}</td></tr>"
                for ours, shown in register_names(mode)
            )
            return f"<table><tr><th>register</th><th>{title}</th></tr>{rows}</table>"
        before = {name: b for name, b, _ in diff.registers}
        rows = []
        for ours, shown in register_names(mode):
            after = now[ours]
            if ours in before:
                rows.append(f"<tr class='hvmio-changed'><td>{shown}</td>"
                            f"<td>{before[ours]:#0{digits + 2}x}</td>"
                            f"<td>{after:#0{digits + 2}x}</td><td>◀ changed</td></tr>")  # fmt: skip
            else:
                rows.append(f"<tr><td>{shown}</td><td>{after:#0{digits + 2}x}</td>"
                            f"<td>{after:#0{digits + 2}x}</td><td></td></tr>")  # fmt: skip
        head = "<tr><th>register</th><th>at the exit</th><th>after</th><th></th></tr>"
        return f"<table>{head}{''.join(rows)}</table>"

    @property
    def console_text(self) -> str:
        """What the guest printed: the debug console where there is one (firmware writes its
        log there), else the UART."""
        devices = self.guest.devices
        return (devices.get("debugcon") or devices["uart"]).text

    @property
    def console_name(self) -> str:
        return "debug console" if "debugcon" in self.guest.devices else "UART console"

    @property
    def log_text(self) -> str:
        """The newest device-log lines, as shown."""
        return "\n".join(list(self._log)[-LOG_SHOWN:])

    @property
    def record(self) -> BitFlipper | None:
        """The read-only bit view of the last exit record (None before the first exit)."""
        return self._flippers.get(self.last.exit.vendor) if self.last is not None else None

    @property
    def record_text(self) -> str:
        """EXITINFO2 / the instruction length and the path that handled the last exit."""
        if self.last is None:
            return ""
        exit, rip = self.last.exit, self.last.exit.rip
        if exit.vendor == "svm":
            text = (f"EXITINFO2 = {exit.exitinfo2:#x}: the next RIP "
                    f"(instruction length = EXITINFO2 − RIP = {exit.exitinfo2 - rip})")  # fmt: skip
        else:
            length = exit.instruction_length
            text = (
                f"VM-exit instruction length = {length} "
                f"(next RIP = {rip:#x} + {length} = {exit.next_rip:#x})"
            )
            if exit.instruction_info is not None:
                text += f"; VM-exit instruction information = {exit.instruction_info:#x}"
        how = {"fast": "the fast path (the record alone)",
               "emulate": "the emulator (the instruction bytes)"}[self.last.path]  # fmt: skip
        setting = f"path setting {self.guest.path!r}"
        return f"{text}\nhandled by {how}, {setting}"

    @property
    def message(self) -> str:
        """The status line: the exit count, and what happened when the guest halted."""
        g = self.guest
        counters = g.hypervisor.counters
        paths = ", ".join(f"{k} {counters[k]}" for k in ("fast", "emulate") if counters[k])
        line = f"{g.exits} exit{'s' if g.exits != 1 else ''}" + (f" ({paths})" if paths else "")
        line += f" · {_VENDOR_LABELS[g.vendor]} · path {g.path}"
        if g.halted:
            result = g.result()
            verdict = ""
            if result.post_codes:
                outcome = "success" if result.success else "failure"
                verdict = f", POST {result.post_codes[-1]:#x} ({outcome})"
            line += (f" — the guest executed HLT and has stopped{verdict}. "
                     "Press Reset to run it again.")  # fmt: skip
        return line

    # -- drawing ---------------------------------------------------------------------------

    def _window(self, lines: list[tuple[int, str]], rip: int) -> tuple[int, int]:
        """The slice of a long listing to show: RIP's line with some context above it."""
        if len(lines) <= LISTING_WINDOW:
            return 0, len(lines)
        at = next((i for i, (address, _) in enumerate(lines) if address >= rip), len(lines) - 1)
        start = max(0, min(at - LISTING_WINDOW // 3, len(lines) - LISTING_WINDOW))
        return start, start + LISTING_WINDOW

    def _show(self) -> None:
        rip = self._rip_address()
        exited = self._exited_address()
        io = self._listing()[1]
        all_lines = self.listing_lines()
        start, end = self._window(all_lines, rip)
        lines = [f"<div class='hvmio-gap'>  ⋮ {start} lines above</div>"] if start else []
        for address, text in all_lines[start:end]:
            classes = ["hvmio-line"]
            if address in io:
                classes.append("hvmio-io")
            if address == exited:
                classes.append("hvmio-exited")
            if address == rip:
                classes.append("hvmio-rip")
            lines.append(f"<div class='{' '.join(classes)}'>{html.escape(text)}</div>")
        if end < len(all_lines):
            lines.append(f"<div class='hvmio-gap'>  ⋮ {len(all_lines) - end} lines below</div>")
        self.listing_view.value = "".join(lines)
        self.narrative_view.value = f"<pre>{html.escape(self.narrative)}</pre>"
        self.registers_view.value = self.registers_html
        console = html.escape(self.console_text) or "<span style='color:#777'>(nothing yet)</span>"
        self.console_view.value = f"<pre>{console}</pre>"
        log = html.escape(self.log_text) or "(no device access yet)"
        self.log_view.value = f"<pre>{log}</pre>"
        self.status_view.value = f"<span>{html.escape(self.message)}</span>"
        error = self.error_text
        self.error_view.value = f"<span>✗ {html.escape(error)}</span>" if error else ""
        done = self.halted
        self.step_button.disabled = done
        self.run_button.disabled = done
        self._show_record()

    def _show_record(self) -> None:
        if self.last is None:
            self.record_box.children = (self._no_exit,)
            return
        exit = self.last.exit
        flipper = self._flipper(
            exit.vendor, exit.exitinfo1 if exit.vendor == "svm" else exit.qualification
        )
        self.record_extra.value = f"<pre>{html.escape(self.record_text)}</pre>"
        self.record_box.children = (self.record_extra, flipper)

    # -- static views ----------------------------------------------------------------------

    def __repr__(self) -> str:
        g = self.guest
        return (f"ExitStepper({g.program.name}, {g.vendor}, {g.path}: {g.exits} exits, "
                f"RIP {self.rip:#x}{', halted' if g.halted else ''})")  # fmt: skip

    def text(self) -> str:
        """The current state as plain text, for a page where widgets do not render."""
        out = [self.message]
        if self.error_text:
            out.append(f"✗ {self.error_text}")
        out += ["", self.rip_line.strip() or "(RIP is outside the listing)", "", self.narrative]
        if self.last is not None and self.last.diff is not None:
            names = dict(register_names(self.guest.machine.mode))
            changes = [f"{names.get(n, n)} {b:#x} → {a:#x}" for n, b, a in self.last.diff.registers
                       if n in names]  # fmt: skip
            out += ["", "registers changed: " + (", ".join(changes) or "none")]
        out += ["", f"{self.console_name}: {self.console_text!r}"]
        return "\n".join(out)

    def _repr_mimebundle_(self, **kwargs):
        data = super()._repr_mimebundle_(**kwargs) or {}
        data["text/plain"] = repr(self)
        data["text/html"] = (
            f"<div><b>{html.escape(repr(self))}</b><pre>{html.escape(self.text())}</pre></div>"
        )
        return data
