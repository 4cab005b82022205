"""The fast-path recipe of docs/fast-path.md, as the docs show it; the tests mount it.

GET /items/{item_id} and POST /items as Core statements on bare connections:
the same answers as the example's ORM routes, without a session.
"""

from typing import Any, Final, cast

from fastapi import APIRouter, status
from sqlalchemy import Row, Table, bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from {{ cookiecutter.package_name }}.dependencies import ConnectionDep, ReadConnectionDep
from {{ cookiecutter.package_name }}.items.models import Item
from {{ cookiecutter.package_name }}.items.router import NOT_FOUND, ItemId, not_found
from {{ cookiecutter.package_name }}.items.schemas import ItemCreate, ItemPublic
from {{ cookiecutter.package_name }}.responses import DATABASE_UNAVAILABLE, INVALID_REQUEST

# SQLAlchemy types a mapped class's table as the FromClause it could be.
ITEMS: Final = cast(Table, Item.__table__)
# Built once, at import, so that no request builds or looks up a statement.
BY_ID: Final = select(*ITEMS.c).where(ITEMS.c.id == bindparam("item_id"))
INSERT: Final = insert(ITEMS).returning(*ITEMS.c)

router = APIRouter(
    prefix="/items",
    tags=["items"],
    responses={
        status.HTTP_422_UNPROCESSABLE_CONTENT: INVALID_REQUEST,
        status.HTTP_503_SERVICE_UNAVAILABLE: DATABASE_UNAVAILABLE,
    },
)


async def get(*, connection: AsyncConnection, item_id: int) -> Row[Any] | None:
    """Return the item with this id as a read-only row, or None."""
    return (await connection.execute(BY_ID, {"item_id": item_id})).first()


async def create(*, connection: AsyncConnection, data: ItemCreate) -> Row[Any]:
    """Insert an item and return its row as stored, with its id and created_at."""
    return (await connection.execute(INSERT, data.model_dump())).one()


@router.get("/{item_id}", responses=NOT_FOUND)
async def get_item(item_id: ItemId, connection: ReadConnectionDep) -> ItemPublic:
    """Return one item."""
    row = await get(connection=connection, item_id=item_id)
    if row is None:
        raise not_found(item_id)
    return ItemPublic.model_validate(row)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_item(data: ItemCreate, connection: ConnectionDep) -> ItemPublic:
    """Create an item."""
    row = await create(connection=connection, data=data)
    return ItemPublic.model_validate(row)
