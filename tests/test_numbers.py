"""The one number rule (hvmio_lab.numbers), and that the CLI, the bit flipper and the checks
all read text by it: "10" used to be 16 in the bit flipper and 10 in the CLI."""

import pytest

from hvmio_lab.errors import HvmioError, InvalidValue
from hvmio_lab.numbers import parse_number


@pytest.mark.parametrize(("text", "value"), [
    ("0x1f48", 0x1F48), ("0X1F48", 0x1F48), ("0b101", 5), ("0B101", 5), ("0o17", 15),
    ("8008", 8008), ("010", 10), ("1_000", 1000), ("0x1f48_0241", 0x1F48_0241), (" 12\n", 12),
    ("0", 0),
])  # fmt: skip
def test_the_rule(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize("text", [
    "", "  ", "1f48", "-5", "+5", "0x", "0b2", "0o8", "1.5", "1e3", "1__0", "_1", "12 3",
    "٣", "0x1g", "ten",
])  # fmt: skip
def test_anything_else_is_refused_naming_the_text(text):
    with pytest.raises(InvalidValue, match="not a number") as refused:
        parse_number(text, "the port")
    assert repr(text) in str(refused.value) and "the port" in str(refused.value)
    assert isinstance(refused.value, HvmioError)


def test_not_text_is_refused():
    with pytest.raises(InvalidValue, match="must be text"):
        parse_number(10)


@pytest.mark.parametrize(("text", "value"), [("10", 10), ("0x10", 16), ("0b10", 2)])
def test_cli_widgets_and_checks_agree(text, value):
    from hvmio_lab.checks.common import as_int
    from hvmio_lab.cli.common import number
    from hvmio_lab.widgets.bitflipper import parse_register_text

    assert number(text) == parse_register_text(text) == as_int(text, "x") == value
