"""The items table and schemas as a typical FastAPI + SQLAlchemy project writes them."""

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from decimal import Decimal

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict
from sqlalchemy import DateTime, Numeric, String, func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(2000))
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ItemIn(BaseModel):
    name: str
    description: str | None = None
    price: Decimal


class ItemOut(ItemIn):
    model_config = ConfigDict(from_attributes=True)
    id: int
    created_at: datetime


def add_item_routes(app: FastAPI, get_db: Callable[..., AsyncIterator[AsyncSession]]) -> None:
    """The two benchmarked routes, written the way tutorials write them."""

    @app.get("/items/{item_id}", response_model=ItemOut)
    async def get_item(item_id: int, db: AsyncSession = Depends(get_db)) -> Item:  # noqa: B008
        item = await db.get(Item, item_id)
        if item is None:
            raise HTTPException(404)
        return item

    @app.post("/items", response_model=ItemOut, status_code=201)
    async def create_item(data: ItemIn, db: AsyncSession = Depends(get_db)) -> Item:  # noqa: B008
        item = Item(**data.model_dump())
        db.add(item)
        await db.flush()
        return item
