"""The one rule for a number typed as text: a CLI argument, a widget's box, an exercise answer.

- ``0x`` (or ``0X``) starts hexadecimal, ``0b`` binary, ``0o`` octal;
- plain digits are decimal, leading zeros and all: "10" is ten in the CLI, a widget and a
  check alike (it used to be sixteen in the bit flipper);
- ``_`` may group digits (``0x1f48_0241``), and spaces around the number are ignored;
- there is no sign: what is typed is a port, a register value or a count.

Anything else raises ``InvalidValue`` naming the text and the rule.
"""

from __future__ import annotations

from .errors import InvalidValue

_BASES = {"0x": 16, "0b": 2, "0o": 8}
_EXAMPLE = "write 0x1f48 for hex, 8008 for decimal"


def parse_number(text: str, what: str = "the value") -> int:
    """``text`` as an integer ≥ 0 by the module's rule; ``what`` names it in the error."""
    if not isinstance(text, str):
        raise InvalidValue(f"{what} must be text to read as a number, got {text!r}")
    s = text.strip()
    base = _BASES.get(s[:2].lower(), 10)
    digits = s[2:] if base != 10 else s
    if digits.replace("_", "").isascii() and digits.replace("_", "").isalnum():
        try:
            return int(digits, base)
        except ValueError:
            pass
    kind = {16: "hex", 2: "binary", 8: "octal", 10: "decimal"}[base]
    raise InvalidValue(f"not a number: {what} {text!r} is not {kind} ({_EXAMPLE})")
