"""Item operations; they never commit, because the caller owns the transaction.

Reads and inserts are single Core statements built once, here, and run on a
bare connection: they skip the ORM's unit of work and object loading (about
half of the CPU time of a one-row request in the benchmark, bench/ in the
template) and the session itself (a fifth of what was left). Changes that load
an item and modify it use the ORM, in a session.
"""

from collections.abc import Sequence
from typing import Any, Final, cast

from sqlalchemy import Row, Table, bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import selectinload

from {{ cookiecutter.package_name }}.items.models import Item, Review
from {{ cookiecutter.package_name }}.items.schemas import ItemCreate, ItemUpdate, ReviewCreate

# SQLAlchemy types a mapped class's table as the FromClause it could be.
_ITEMS: Final = cast(Table, Item.__table__)
_SELECT: Final = select(*_ITEMS.c)
_BY_ID: Final = _SELECT.where(_ITEMS.c.id == bindparam("item_id"))
_PAGE: Final = _SELECT.order_by(_ITEMS.c.id).limit(bindparam("limit")).offset(bindparam("offset"))
_INSERT: Final = insert(_ITEMS).returning(*_ITEMS.c)

ItemRow = Row[Any]


async def create_item(*, connection: AsyncConnection, data: ItemCreate) -> ItemRow:
    """Insert an item and return it as stored, with its id and created_at."""
    result = await connection.execute(_INSERT, data.model_dump())
    return result.one()


async def find_item(*, connection: AsyncConnection, item_id: int) -> ItemRow | None:
    """Return the item with this id as a read-only row, or None."""
    result = await connection.execute(_BY_ID, {"item_id": item_id})
    return result.first()


async def list_items(*, connection: AsyncConnection, limit: int, offset: int) -> Sequence[ItemRow]:
    """Return one page of items, oldest first."""
    result = await connection.execute(_PAGE, {"limit": limit, "offset": offset})
    return result.all()


async def get_item(*, session: AsyncSession, item_id: int) -> Item | None:
    """Load the item with this id into the session, to change it, or return None."""
    return await session.get(Item, item_id)


async def update_item(*, session: AsyncSession, item: Item, data: ItemUpdate) -> Item:
    """Apply the fields the client sent to the item."""
    for field, value in data.model_dump(exclude_unset=True).items():
        setattr(item, field, value)
    await session.flush()
    return item


async def delete_item(*, session: AsyncSession, item: Item) -> None:
    """Delete the item; the database refuses while reviews refer to it (errors.py: 409)."""
    await session.delete(item)
    await session.flush()


async def get_item_with_reviews(*, session: AsyncSession, item_id: int) -> Item | None:
    """Load the item with this id and its reviews, or return None."""
    # One more SELECT ... WHERE item_id IN (...) loads the reviews now; a lazy
    # load later would raise (lazy="raise"), as it cannot run under asyncio.
    statement = select(Item).where(Item.id == item_id).options(selectinload(Item.reviews))
    return await session.scalar(statement)


async def create_review(*, session: AsyncSession, item: Item, data: ReviewCreate) -> Review:
    """Add a review of the item and return it as stored."""
    review = Review(item_id=item.id, **data.model_dump())
    session.add(review)
    await session.flush()
    return review
