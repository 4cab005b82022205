"""Field types for request bodies whose published schema admits exactly what validation accepts.

Part of the surface domains import. Pydantic documents a Decimal with
max_digits or decimal_places as "any number or any string", so the published
schema admits "" and "1e99", which validation then refuses.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema


@dataclass(frozen=True, slots=True)
class DecimalString:
    """A Decimal sent as a plain decimal string, such as "9.50", that fits NUMERIC(digits, places).

    Use as `Annotated[Decimal, DecimalString(digits=10, places=2)]`. The schema
    is a string with the pattern validation applies, so it admits exactly what
    is accepted: no exponent, no leading zeros, no sign unless `signed`. The
    value arrives quantised to `places`, as the database would store it.
    """

    digits: int
    places: int
    signed: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.places <= self.digits or self.digits < 1:
            raise ValueError(f"DecimalString needs 0 <= places <= digits, digits >= 1: {self}")

    @property
    def pattern(self) -> str:
        """The regular expression a value must match, in JSON Schema's dialect too."""
        whole = self.digits - self.places
        integer = f"(0|[1-9][0-9]{_between(0, whole - 1)})" if whole else "0"
        fraction = f"(\\.[0-9]{_between(1, self.places)})?" if self.places else ""
        sign = "-?" if self.signed else ""
        return f"^{sign}{integer}{fraction}$"

    def __get_pydantic_core_schema__(
        self, _source: Any, _handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """Validate the string against the pattern, then make it a quantised Decimal."""
        step = Decimal(1).scaleb(-self.places)

        def to_decimal(text: str) -> Decimal:
            return Decimal(text).quantize(step)

        return core_schema.no_info_after_validator_function(
            to_decimal,
            core_schema.str_schema(pattern=self.pattern),
            serialization=core_schema.to_string_ser_schema(),
        )


def _between(least: int, most: int) -> str:
    # A regular expression's {m,n}, spelt out so that no double brace reaches the template.
    return "{" + f"{least},{most}" + "}"
