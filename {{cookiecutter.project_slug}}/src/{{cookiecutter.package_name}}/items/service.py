"""Item operations; they never commit, because the caller owns the transaction."""

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from {{ cookiecutter.package_name }}.items.models import Item, Review
from {{ cookiecutter.package_name }}.items.schemas import ItemCreate, ItemUpdate, ReviewCreate


async def get(*, session: AsyncSession, item_id: int) -> Item | None:
    """Return the item with this id, or None."""
    return await session.get(Item, item_id)


async def list_page(*, session: AsyncSession, limit: int, offset: int) -> Sequence[Item]:
    """Return one page of items, oldest first."""
    statement = select(Item).order_by(Item.id).limit(limit).offset(offset)
    return (await session.scalars(statement)).all()


async def create(*, session: AsyncSession, data: ItemCreate) -> Item:
    """Add an item and return it as stored, with its id and created_at."""
    item = Item(**data.model_dump())
    session.add(item)
    await session.flush()
    return item


async def update(*, session: AsyncSession, item: Item, data: ItemUpdate) -> Item:
    """Apply the fields the client sent to the item."""
    for field, value in data.model_dump(exclude_unset=True).items():
        setattr(item, field, value)
    await session.flush()
    return item


async def delete(*, session: AsyncSession, item: Item) -> None:
    """Delete the item; the database refuses while reviews refer to it (errors.py: 409)."""
    await session.delete(item)
    await session.flush()


async def get_with_reviews(*, session: AsyncSession, item_id: int) -> Item | None:
    """Return the item with this id and its reviews, or None."""
    # selectinload runs one more SELECT now; a lazy load later would raise (lazy="raise").
    statement = select(Item).where(Item.id == item_id).options(selectinload(Item.reviews))
    return await session.scalar(statement)


async def add_review(*, session: AsyncSession, item: Item, data: ReviewCreate) -> Review:
    """Add a review of the item and return it as stored."""
    review = Review(item_id=item.id, **data.model_dump())
    session.add(review)
    await session.flush()
    return review
