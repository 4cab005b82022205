"""Item operations; they never commit, because the caller owns the transaction."""

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from {{ cookiecutter.package_name }}.items.models import Item
from {{ cookiecutter.package_name }}.items.schemas import ItemCreate, ItemUpdate


async def create_item(*, session: AsyncSession, data: ItemCreate) -> Item:
    """Add an item and flush it, so that its id and created_at are known."""
    item = Item(**data.model_dump())
    session.add(item)
    await session.flush()
    return item


async def get_item(*, session: AsyncSession, item_id: int) -> Item | None:
    """Return the item with this id, or None."""
    return await session.get(Item, item_id)


async def list_items(*, session: AsyncSession, limit: int, offset: int) -> Sequence[Item]:
    """Return one page of items, oldest first."""
    result = await session.scalars(select(Item).order_by(Item.id).limit(limit).offset(offset))
    return result.all()


async def update_item(*, session: AsyncSession, item: Item, data: ItemUpdate) -> Item:
    """Apply the fields the client sent to the item."""
    for field, value in data.model_dump(exclude_unset=True).items():
        setattr(item, field, value)
    await session.flush()
    return item


async def delete_item(*, session: AsyncSession, item: Item) -> None:
    """Delete the item."""
    await session.delete(item)
    await session.flush()
