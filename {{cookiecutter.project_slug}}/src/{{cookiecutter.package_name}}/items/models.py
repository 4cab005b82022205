"""The items table, and the reviews that refer to items."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Final

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Numeric,
    SmallInteger,
    String,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from {{ cookiecutter.package_name }}.infrastructure.orm import Base

NAME_MAX_LENGTH: Final = 200
DESCRIPTION_MAX_LENGTH: Final = 2000
PRICE_DIGITS: Final = 12
PRICE_DECIMAL_PLACES: Final = 2
COMMENT_MAX_LENGTH: Final = 2000
RATING_MIN: Final = 1
RATING_MAX: Final = 5


class Item(Base):
    """Something the service sells."""

    __tablename__ = "items"
    # created_at always comes back with the INSERT (RETURNING): a lazy load of it could not run.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012

    id: Mapped[int] = mapped_column(Identity(start=1), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX_LENGTH))
    description: Mapped[str | None] = mapped_column(String(DESCRIPTION_MAX_LENGTH))
    price: Mapped[Decimal] = mapped_column(Numeric(PRICE_DIGITS, PRICE_DECIMAL_PLACES))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    # Under asyncio a lazy load cannot run: "raise" turns a forgotten
    # selectinload into a clear error instead of a MissingGreenlet. "all"
    # leaves deletes to the database, whose RESTRICT refuses them with a 409.
    reviews: Mapped[list[Review]] = relationship(
        back_populates="item", lazy="raise", passive_deletes="all", order_by="Review.id"
    )


class Review(Base):
    """A customer's rating of an item; an item that has reviews cannot be deleted."""

    __tablename__ = "reviews"
    __table_args__ = (
        CheckConstraint(f"rating BETWEEN {RATING_MIN} AND {RATING_MAX}", name="rating_range"),
    )
    # As for Item: created_at comes back with the INSERT.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012

    id: Mapped[int] = mapped_column(Identity(start=1), primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey(Item.id, ondelete="RESTRICT"), index=True)
    rating: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(String(COMMENT_MAX_LENGTH))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    item: Mapped[Item] = relationship(back_populates="reviews", lazy="raise")
