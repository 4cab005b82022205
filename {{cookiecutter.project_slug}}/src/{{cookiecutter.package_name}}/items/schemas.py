"""What clients send and receive for items."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from {{ cookiecutter.package_name }}.fields import DecimalString
from {{ cookiecutter.package_name }}.items.models import (
    COMMENT_MAX_LENGTH,
    DESCRIPTION_MAX_LENGTH,
    NAME_MAX_LENGTH,
    PRICE_DECIMAL_PLACES,
    PRICE_DIGITS,
    RATING_MAX,
    RATING_MIN,
)

# PostgreSQL text cannot hold NUL characters: refuse them as bad input (422)
# instead of letting the driver fail the request with a 500.
_NO_NUL = r"^[^\x00]*$"

Name = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=NAME_MAX_LENGTH, pattern=_NO_NUL
    ),
]
Description = Annotated[str, StringConstraints(max_length=DESCRIPTION_MAX_LENGTH, pattern=_NO_NUL)]
# A string such as "9.50", quantised as stored, so a new item's response shows
# the price as the database keeps it; its schema admits exactly what is accepted.
Price = Annotated[Decimal, DecimalString(digits=PRICE_DIGITS, places=PRICE_DECIMAL_PLACES)]


class ItemCreate(BaseModel):
    """A new item."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "Espresso cup", "description": "Porcelain, 80 ml", "price": "9.50"}
            ]
        },
    )

    name: Name
    description: Description | None = None
    price: Price


class ItemUpdate(BaseModel):
    """Changes to an item; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"price": "8.90"}]})

    name: Name | None = None
    description: Description | None = None
    price: Price | None = None

    @field_validator("name", "price", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Validators see only values the client sent, so this rejects an explicit
        # null while still allowing the field to be left out.
        if value is None:
            raise ValueError("may be left out but not set to null")
        return value


class ItemPublic(BaseModel):
    """An item as the API shows it."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 42,
                    "name": "Espresso cup",
                    "description": "Porcelain, 80 ml",
                    "price": "9.50",
                    "created_at": "2026-11-22T09:30:00Z",
                }
            ]
        },
    )

    id: int
    name: str
    description: str | None
    price: Decimal
    created_at: datetime


Comment = Annotated[str, StringConstraints(max_length=COMMENT_MAX_LENGTH, pattern=_NO_NUL)]


class ReviewCreate(BaseModel):
    """A new review of an item."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"rating": 5, "comment": "Keeps the coffee hot"}]},
    )

    rating: int = Field(ge=RATING_MIN, le=RATING_MAX)
    comment: Comment | None = None


class ReviewPublic(BaseModel):
    """A review as the API shows it."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 7,
                    "item_id": 42,
                    "rating": 5,
                    "comment": "Keeps the coffee hot",
                    "created_at": "2026-11-23T10:00:00Z",
                }
            ]
        },
    )

    id: int
    item_id: int
    rating: int
    comment: str | None
    created_at: datetime


class ItemWithReviews(ItemPublic):
    """An item and its reviews, oldest first."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 42,
                    "name": "Espresso cup",
                    "description": "Porcelain, 80 ml",
                    "price": "9.50",
                    "created_at": "2026-11-22T09:30:00Z",
                    "reviews": [
                        {
                            "id": 7,
                            "item_id": 42,
                            "rating": 5,
                            "comment": "Keeps the coffee hot",
                            "created_at": "2026-11-23T10:00:00Z",
                        }
                    ],
                }
            ]
        },
    )

    reviews: list[ReviewPublic]
