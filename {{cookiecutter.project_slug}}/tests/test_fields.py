"""DecimalString: what its published schema admits is exactly what it accepts."""

import re
from decimal import Decimal
from typing import Annotated

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from {{ cookiecutter.package_name }}.fields import DecimalString


class Priced(BaseModel):
    """A body with a price of at most 10 digits, 2 after the point."""

    price: Annotated[Decimal, DecimalString(digits=10, places=2)]


SCHEMA = Priced.model_json_schema()["properties"]["price"]
# JSON Schema's `$` (ECMAScript's) ends the text; Python's would allow a final newline.
SCHEMA_PATTERN = re.compile(SCHEMA["pattern"].replace("$", r"\Z"))


def accepted(text: object) -> bool:
    """Whether validation accepts `text` as the price."""
    try:
        Priced.model_validate({"price": text})
    except ValidationError:
        return False
    return True


def test_the_schema_is_a_string_with_the_pattern_validation_applies() -> None:
    assert {"type": "string", "pattern": DecimalString(10, 2).pattern, "title": "Price"} == SCHEMA


@given(st.text(alphabet="0123456789.-+e ", max_size=14) | st.from_regex(SCHEMA["pattern"]))
@example("")
@example("1e3")
@example("00.5")
@example("12345678.99")
@example("123456789.9")
@example("1.001")
@example("0\n")
def test_a_string_is_accepted_exactly_when_the_schema_admits_it(text: str) -> None:
    assert accepted(text) == bool(SCHEMA_PATTERN.search(text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", True),
        ("9.5", True),
        ("12345678.99", True),
        ("123456789", False),
        ("1.001", False),
        ("-1", False),
        ("01", False),
        ("1.", False),
        (".5", False),
        ("1e3", False),
        ("", False),
        (" 1", False),
    ],
)
def test_what_fits_numeric_10_2_is_accepted(text: str, *, expected: bool) -> None:
    assert accepted(text) == expected


@pytest.mark.parametrize("number", [1, 1.5, None])
def test_only_strings_are_accepted(number: object) -> None:
    assert not accepted(number)


def test_a_price_arrives_quantised_and_leaves_as_a_string() -> None:
    priced = Priced.model_validate({"price": "9.5"})
    assert str(priced.price) == "9.50"
    assert priced.model_dump(mode="json") == {"price": "9.50"}


def test_signed_allows_a_minus_and_no_places_no_point() -> None:
    assert DecimalString(digits=3, places=0, signed=True).pattern == "^-?(0|[1-9][0-9]{0,2})$"
    with pytest.raises(ValueError, match="places <= digits"):
        DecimalString(digits=2, places=3)
