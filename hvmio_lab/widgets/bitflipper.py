"""BitFlipper: flip the bits of an exit-record register and watch the decode follow.

One toggle per bit, MSB on the left, grouped and coloured by field (reserved bits grey); a
hex box; the ``describe`` table of the value; the ``ExitInfoError`` message, in place, when
the value is one the manuals rule out; and a switch that shows the same access as the other
vendor would report it. Everything shown comes from ``Layout.describe``/``decode`` and the
exit records in ``hvmio_lab.exits``: the widget only wires them together, with ``observe``.

Drive it from Python as a test or a notebook would::

    bf = BitFlipper(EXITINFO1, 0x1F480241)
    bf.toggle(6)          # clear SZ32: SZ is now 0b000, not one-hot
    bf.error_text         # 'EXITINFO1 SZ (bits 6:4) must be one-hot, got 0b000'
    bf.value = 0x1F480241
    bf.table_rows         # the Layout.describe rows

CSS classes (a contract the browser tests rely on):
``hvmio-flipper`` the whole widget; ``hvmio-bit`` each per-bit toggle (bits 31:0, MSB first);
``hvmio-high`` the one toggle standing for a 64-bit register's reserved bits 63:32;
``hvmio-hex`` the hex text box; ``hvmio-decoded`` the decoded table; ``hvmio-error`` the
error message (empty while the value is valid); ``hvmio-translated`` the translation area.
"""

from __future__ import annotations

import html

import ipywidgets as W
import traitlets
from ipywidgets.widgets.widget_bool import ToggleButtonStyle
from ipywidgets.widgets.widget_string import HTMLStyle

from ..errors import ExitInfoError, InvalidValue
from ..exits import SvmIoExit, VmxIoExit
from ..fields import EXIT_QUALIFICATION, EXITINFO1, SEGMENTS, Field, Layout, Row, format_rows
from ..numbers import parse_number
from ..plots import GREY, field_colour, is_filler, tint

BIT_PX = 26  # width of one bit toggle; the bit-number row above uses the same pitch
PITCH_PX = BIT_PX + 2

# The reserved upper half of a 64-bit register is shown as one toggle, not 32.
HIGH_SHIFT = 32
CHOOSE = "— choose —"  # a translation fact the learner has not picked yet


def parse_register_text(text: str) -> int:
    """What a learner types into the box, read by the core's one rule (``hvmio_lab.numbers``:
    ``0x1f480241``, ``0b101``, ``0o17``, plain digits decimal, ``_`` between digits)."""
    try:
        return parse_number(text, "the register value")
    except InvalidValue as e:
        raise ExitInfoError(str(e)) from None


def rows_html(rows: tuple[Row, ...], caption: str = "") -> str:
    """A ``describe`` table as HTML; rows whose field breaks the rules are marked."""
    cap = f"<caption style='text-align:left'>{html.escape(caption)}</caption>" if caption else ""
    head = "<tr><th>bits</th><th>field</th><th>raw</th><th>meaning</th></tr>"
    body = "".join(
        "<tr{}><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>".format(
            "" if r.ok else " style='color:#b00000;font-weight:bold'",
            *(html.escape(x) for x in (r.bits, r.field, r.raw, r.meaning)),
        )
        for r in rows
    )
    return f"<table class='hvmio-table'>{cap}{head}{body}</table>"


def _colour_class(colour: str) -> str:
    return "hvmio-c-" + colour.lstrip("#")


def _style_sheet(layout: Layout) -> str:
    """CSS for the field colours: a clear bit in a pale tint, a set bit in the full colour."""
    rules = []
    for colour in sorted({field_colour(layout, f) for f in layout.fields}):
        cls = _colour_class(colour)
        on_text = "black" if colour == GREY else "white"
        rules.append(
            f".hvmio-flipper .{cls} {{background:{tint(colour)} !important;color:black;"
            f"padding:0 !important;margin:0 1px !important;font-weight:normal}}"
            f".hvmio-flipper .{cls}.mod-active {{background:{colour} !important;"
            f"color:{on_text} !important;font-weight:bold;box-shadow:none}}"
        )
    rules.append(
        ".hvmio-flipper .hvmio-table td, .hvmio-flipper .hvmio-table th"
        "{padding:1px 8px;text-align:left}"
        ".hvmio-flipper .hvmio-error {color:#b00000;font-weight:bold}"
    )
    return "<style>" + "".join(rules) + "</style>"


def _translation_target(layout: Layout) -> str | None:
    if layout is EXITINFO1:
        return "VMX"
    if layout is EXIT_QUALIFICATION:
        return "SVM"
    return None


class BitFlipper(W.VBox):
    """A register of ``layout`` as a row of bit toggles, with its decode and translation.

    ``value`` (an int) is the single source of truth: toggles, the hex box and the switches
    only ever set it, and every view is redrawn from it by one observer.
    """

    value = traitlets.Int(0)  # not synced to the browser: 64-bit values do not fit a JS number

    def __init__(self, layout: Layout, value: int = 0, readonly: bool = False):
        self.register = layout  # ``layout`` is taken: it is every widget's CSS layout
        self.readonly = readonly
        self._input_error = ""
        self._syncing = False
        self.bit_toggles: dict[int, W.ToggleButton] = {}
        self.high_toggle: W.ToggleButton | None = None

        # Widgets share layout and style models where they can: each model is a comm message
        # and a view to render, and a 64-bit register has dozens of toggles.
        self._shared = {
            "bit": W.Layout(width=f"{BIT_PX}px", height="26px", margin="0 1px", padding="0"),
            "high": W.Layout(width="6.5em", height="26px", margin="0 1px", padding="0"),
            "toggle_style": ToggleButtonStyle(),
            "html_style": HTMLStyle(),
            "label": W.Layout(margin="0 1px"),
            "row": W.Layout(margin="0"),
            "group": W.Layout(margin="0 4px 4px 0", align_items="stretch", flex="0 0 auto"),
        }
        head = W.HTML(
            _style_sheet(layout) + f"<b>{html.escape(layout.title)}</b> "
            f"<span style='color:#666'>({html.escape(layout.source)})</span>",
            style=self._shared["html_style"],
        )
        # One row, never wrapped, bit 0 at the far right as the text says: where the page is
        # too narrow (a file browser open at 1280 px) the row scrolls sideways instead.
        bits = W.HBox(
            [self._field_group(f) for f in reversed(layout.fields)],
            layout=W.Layout(flex_flow="row nowrap", align_items="flex-end", overflow="auto",
                            width="100%", padding="0 0 4px 0"),
        )
        bits.add_class("hvmio-bits")
        self.hex = W.Text(
            description="hex", continuous_update=False, disabled=readonly,
            layout=W.Layout(width="22em"),
        )
        self.hex.add_class("hvmio-hex")
        self.hex.observe(self._on_hex, "value")
        self.error = W.HTML("", style=self._shared["html_style"])
        self.error.add_class("hvmio-error")
        self.decoded = W.HTML(style=self._shared["html_style"])
        self.decoded.add_class("hvmio-decoded")

        children = [head, bits, self.hex, self.error, self.decoded]
        self.target = _translation_target(layout)
        if self.target:
            children.append(self._translation_box())
        super().__init__(children)
        self.add_class("hvmio-flipper")
        self.observe(self._redraw, "value")
        self.value = value
        self._redraw()

    # -- construction ---------------------------------------------------------------------

    def _field_group(self, f: Field) -> W.VBox:
        colour = field_colour(self.register, f)
        cls = _colour_class(colour)
        if f.lsb >= HIGH_SHIFT and is_filler(f):  # 63:32 as one toggle
            toggle = self._make_toggle(f"{f.bit_range} ≠ 0", cls, "high")
            toggle.tooltip = f"{f.bit_range} {f.name}: any set bit here is refused"
            toggle.add_class("hvmio-high")
            toggle.observe(self._on_high, "value")
            self.high_toggle = toggle
            numbers = f"<div style='font-size:10px;color:#444'>{f.bit_range}</div>"
            return self._group(f, colour, numbers, [toggle])
        toggles = []
        for bit in range(f.msb, f.lsb - 1, -1):
            toggle = self._make_toggle("0", cls, "bit")
            name = f.bit_names[bit - f.lsb] if f.bit_names else f.name
            toggle.tooltip = f"bit {bit}: {name}"
            toggle.add_class("hvmio-bit")
            toggle.observe(self._on_bit(bit), "value")
            self.bit_toggles[bit] = toggle
            toggles.append(toggle)
        labels = (
            [f.bit_names[b - f.lsb] for b in range(f.msb, f.lsb - 1, -1)]
            if f.bit_names
            else [str(b) for b in range(f.msb, f.lsb - 1, -1)]
        )
        numbers = (
            "<div style='display:flex;font-size:9px;color:#444'>"
            + "".join(
                f"<span style='width:{PITCH_PX}px;text-align:center;overflow:hidden'>{x}</span>"
                for x in labels
            )
            + "</div>"
        )
        return self._group(f, colour, numbers, toggles)

    def _make_toggle(self, description: str, cls: str, kind: str) -> W.ToggleButton:
        toggle = W.ToggleButton(
            description=description, disabled=self.readonly,
            layout=self._shared[kind], style=self._shared["toggle_style"],
        )
        toggle.add_class(cls)
        return toggle

    def _group(self, f: Field, colour: str, numbers: str, toggles: list) -> W.VBox:
        """A field: its name and bit range over its bit numbers (one HTML), then its toggles."""
        label = W.HTML(
            f"<div title='{html.escape(f.meaning)}' style='background:{tint(colour, 0.45)};"
            "border:1px solid #555;font-size:11px;text-align:center;white-space:nowrap;"
            f"padding:0 3px'>{html.escape(f.name)} <span style='color:#444'>"
            f"{f.bit_range}</span></div>{numbers}",
            layout=self._shared["label"], style=self._shared["html_style"],
        )
        return W.VBox(
            [label, W.HBox(toggles, layout=self._shared["row"])],
            layout=self._shared["group"],
        )

    def _translation_box(self) -> W.VBox:
        other = "VMX exit qualification" if self.target == "VMX" else "SVM EXITINFO1"
        self.switch = W.Checkbox(description=f"show as {other}", value=False, indent=False)
        # Facts the source record does not carry: the learner chooses, the widget never guesses.
        # (ipywidgets reads a None value as "nothing selected", hence the CHOOSE sentinel.)
        self.immediate_choice = W.Dropdown(
            description="port from", style={"description_width": "initial"},
            options=[(CHOOSE, CHOOSE), ("DX (bit 6 = 0)", "DX"), ("imm8 (bit 6 = 1)", "imm8")],
            value=CHOOSE,
        )
        self.address_size_choice = W.Dropdown(
            description="address size", style={"description_width": "initial"},
            options=[(CHOOSE, CHOOSE), ("16-bit", 16), ("32-bit", 32), ("64-bit", 64)],
            value=CHOOSE,
        )
        self.segment_choice = W.Dropdown(
            description="segment (string I/O)", style={"description_width": "initial"},
            options=[(CHOOSE, CHOOSE)] + [(s, s) for s in SEGMENTS],
            value=CHOOSE,
        )
        self.translated = W.HTML()
        self.translated.add_class("hvmio-translated")
        facts = (
            [self.immediate_choice]
            if self.target == "VMX"
            else [self.address_size_choice, self.segment_choice]
        )
        self._facts = W.HBox(facts)
        for w in (self.switch, *facts):
            w.observe(self._redraw_translation, "value")
        return W.VBox([self.switch, self._facts, self.translated])

    # -- input: every path ends by setting .value ------------------------------------------

    def _on_bit(self, bit: int):
        def flip(change) -> None:
            if not self._syncing:
                mask = 1 << bit
                self.value = self.value | mask if change["new"] else self.value & ~mask

        return flip

    def _on_high(self, change) -> None:
        if self._syncing:
            return
        low = self.value & ((1 << HIGH_SHIFT) - 1)
        self.value = low | (1 << HIGH_SHIFT) if change["new"] else low

    def _on_hex(self, change) -> None:
        if self._syncing:
            return
        try:
            value = self.register.check_range(parse_register_text(change["new"]))
        except ExitInfoError as e:
            self._input_error = str(e)
            self._show_error()
            return
        self._input_error = ""
        if value == self.value:
            self._redraw()
        self.value = value

    @traitlets.validate("value")
    def _validate(self, proposal) -> int:
        return self.register.check_range(proposal["value"])

    # -- the API tests and notebooks use ---------------------------------------------------

    def toggle(self, bit: int) -> None:
        """Flip one bit, as clicking its toggle would (bits ≥ 32 of a 64-bit register too)."""
        if not 0 <= bit < self.register.width:
            raise ExitInfoError(f"{self.register.name} has no bit {bit}")
        self.value ^= 1 << bit

    def type_hex(self, text: str) -> None:
        """Type ``text`` into the hex box, as a learner would (then press Enter)."""
        self.hex.value = text

    def translate(
        self,
        immediate: bool | None = None,
        address_size: int | None = None,
        segment: str | None = None,
    ) -> None:
        """Turn the vendor switch on and pick the facts the source record lacks, as the
        dropdowns would: ``immediate`` (SVM → VMX), ``address_size``/``segment`` (VMX → SVM)."""
        if not self.target:
            raise ExitInfoError(f"{self.register.name} has no other-vendor counterpart")
        if immediate is not None:
            self.immediate_choice.value = "imm8" if immediate else "DX"
        if address_size is not None:
            self.address_size_choice.value = address_size
        if segment is not None:
            self.segment_choice.value = segment
        self.switch.value = True

    @property
    def table_rows(self) -> tuple[Row, ...]:
        return self.register.describe(self.value)

    @property
    def error_text(self) -> str:
        """The message shown in place: why the value cannot be a real record, or ''."""
        return self._input_error or self._decode_error()

    @property
    def translated_value(self) -> int | None:
        """The other vendor's register for the same access, or None (invalid, or a choice is
        missing, or the switch is off)."""
        return self._translation()[0]

    @property
    def translated_text(self) -> str:
        return self._translation()[1]

    # -- output: one redraw from .value -----------------------------------------------------

    def _bit(self, bit: int) -> bool:
        return bool((self.value >> bit) & 1)

    def _decode_error(self) -> str:
        try:
            self._access()
        except ExitInfoError as e:
            return str(e)
        return ""

    def _access(self):
        """Decode ``value`` as far as the layout allows; raises ExitInfoError."""
        if self.register is EXITINFO1:  # EXITINFO2 plays no part in decoding EXITINFO1
            return SvmIoExit(self.value, 1, 0).access()
        if self.register is EXIT_QUALIFICATION:  # nor the instruction length in the qualification
            return VmxIoExit(self.value, 1, 0).access()
        return self.register.decode(self.value)

    def _redraw(self, change=None) -> None:
        self._input_error = ""
        self._syncing = True
        try:
            for bit, toggle in self.bit_toggles.items():
                on = self._bit(bit)
                toggle.value = on
                toggle.description = "1" if on else "0"
            if self.high_toggle is not None:
                self.high_toggle.value = bool(self.value >> HIGH_SHIFT)
            self.hex.value = f"{self.value:#x}"
        finally:
            self._syncing = False
        self.decoded.value = rows_html(self.table_rows) + self._access_html()
        self._show_error()
        if self.target:
            self._redraw_translation()

    def _access_html(self) -> str:
        try:
            access = self._access()
        except ExitInfoError:
            return ""
        if isinstance(access, dict):
            return ""
        return f"<div>access: <b>{html.escape(str(access))}</b></div>"

    def _show_error(self) -> None:
        text = self.error_text
        self.error.value = f"<span>✗ {html.escape(text)}</span>" if text else ""

    def _translation(self) -> tuple[int | None, str]:
        if not self.target or not self.switch.value:
            return None, ""
        try:
            self._access()
        except ExitInfoError as e:
            return None, f"nothing to translate: {e}"
        if self.target == "VMX":
            choice = self.immediate_choice.value
            if choice not in ("DX", "imm8"):
                return None, (
                    "SVM's EXITINFO1 does not say whether the port came from DX or an "
                    "immediate byte; VMX records it in bit 6. Choose 'port from' above."
                )
            imm = choice == "imm8"
            try:
                record = SvmIoExit(self.value, 1, 0).to_vmx(immediate=imm)
            except ExitInfoError as e:
                return None, f"cannot translate: {e}"
            note = "you chose: port from an imm8" if imm else "you chose: port from DX"
            return record.qualification, f"exit qualification {record.qualification:#x} ({note})"
        asize, seg = self.address_size_choice.value, self.segment_choice.value
        string = bool(EXIT_QUALIFICATION.field("string").extract(self.value))
        is_in = bool(EXIT_QUALIFICATION.field("direction").extract(self.value))
        if asize not in (16, 32, 64):
            return None, (
                "The VMX exit qualification has no address size (VMX reports it only in the "
                "instruction-information field, for INS/OUTS). Choose 'address size' above."
            )
        if string and seg not in SEGMENTS:
            return None, (
                "A string access needs its segment, which VMX reports only in the "
                "instruction-information field. Choose 'segment' above."
            )
        if string and is_in and seg != "ES":
            return None, (
                f"An INS always writes to ES:[rDI]: no segment override applies, so {seg} "
                "cannot be its segment. Choose ES."
            )
        try:
            segment = seg if string else None
            record = VmxIoExit(self.value, 1, 0).to_svm(address_size=asize, segment=segment)
        except ExitInfoError as e:
            return None, f"cannot translate: {e}"
        used = f"address size {asize}" + (f", segment {seg}" if string else "")
        return record.exitinfo1, f"EXITINFO1 {record.exitinfo1:#x} (you chose {used})"

    def _redraw_translation(self, change=None) -> None:
        on = bool(self.switch.value)
        self._facts.layout.display = None if on else "none"
        self.translated.layout.display = None if on else "none"
        value, text = self._translation()
        if value is None:
            self.translated.value = f"<i>{html.escape(text)}</i>"
            return
        other = EXIT_QUALIFICATION if self.target == "VMX" else EXITINFO1
        self.translated.value = (
            f"<div><b>{html.escape(text)}</b></div>" + rows_html(other.describe(value))
        )

    # -- static views: how the widget reads where no kernel runs ---------------------------

    def __repr__(self) -> str:
        return f"BitFlipper({self.register.name}, value={self.value:#x})"

    def text(self) -> str:
        """The current state as plain text: the value, the table, the error if any."""
        out = [f"{self.register.name} = {self.value:#x}", format_rows(self.table_rows)]
        if self.error_text:
            out.append(f"✗ {self.error_text}")
        else:
            try:
                access = self._access()
                if not isinstance(access, dict):
                    out.append(f"access: {access}")
            except ExitInfoError:
                pass
        return "\n".join(out)

    def _repr_mimebundle_(self, **kwargs):
        data = super()._repr_mimebundle_(**kwargs) or {}
        data["text/plain"] = repr(self)
        error = self.error_text
        error = f"<p style='color:#b00000'>✗ {html.escape(error)}</p>" if error else ""
        translated = self.translated_text
        translated = f"<p><i>{html.escape(translated)}</i></p>" if translated else ""
        data["text/html"] = (
            f"<div><b>{html.escape(self.register.name)} = {self.value:#x}</b>"
            f"{rows_html(self.table_rows)}{error}{translated}</div>"
        )
        return data
