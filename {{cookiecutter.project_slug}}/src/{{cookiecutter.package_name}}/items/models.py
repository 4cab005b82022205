"""The items table."""

from datetime import datetime
from decimal import Decimal
from typing import Final

from sqlalchemy import DateTime, Identity, Numeric, String, func
from sqlalchemy.orm import Mapped, mapped_column

from {{ cookiecutter.package_name }}.infrastructure.orm import Base

NAME_MAX_LENGTH: Final = 200
DESCRIPTION_MAX_LENGTH: Final = 2000
PRICE_DIGITS: Final = 12
PRICE_DECIMAL_PLACES: Final = 2


class Item(Base):
    """Something the service sells."""

    __tablename__ = "items"

    id: Mapped[int] = mapped_column(Identity(start=1), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX_LENGTH))
    description: Mapped[str | None] = mapped_column(String(DESCRIPTION_MAX_LENGTH))
    price: Mapped[Decimal] = mapped_column(Numeric(PRICE_DIGITS, PRICE_DECIMAL_PLACES))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
