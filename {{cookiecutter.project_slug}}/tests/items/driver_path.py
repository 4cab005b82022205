"""The driver recipe of docs/fast-path.md, as the docs show it; the tests mount it.

GET /items/{item_id} and POST /items as SQL on asyncpg's own connection: the
same answers as the example's ORM routes, with the least work per request.
"""

from typing import Final

from asyncpg import Connection, Record
from fastapi import APIRouter, status

from {{ cookiecutter.package_name }}.dependencies import DriverConnectionDep, ReadDriverConnectionDep
from {{ cookiecutter.package_name }}.items.router import NOT_FOUND, ItemId, not_found
from {{ cookiecutter.package_name }}.items.schemas import ItemCreate, ItemPublic
from {{ cookiecutter.package_name }}.responses import DATABASE_UNAVAILABLE, INVALID_REQUEST

# PostgreSQL's own SQL, $1 for the first value; the columns are ItemPublic's.
BY_ID: Final = "SELECT id, name, description, price, created_at FROM items WHERE id = $1"
INSERT: Final = (
    "INSERT INTO items (name, description, price) VALUES ($1, $2, $3)"
    " RETURNING id, name, description, price, created_at"
)

router = APIRouter(
    prefix="/items",
    tags=["items"],
    responses={
        status.HTTP_422_UNPROCESSABLE_CONTENT: INVALID_REQUEST,
        status.HTTP_503_SERVICE_UNAVAILABLE: DATABASE_UNAVAILABLE,
    },
)


async def get(*, connection: Connection, item_id: int) -> Record | None:
    """Return the item with this id as a record, or None."""
    return await connection.fetchrow(BY_ID, item_id)


async def create(*, connection: Connection, data: ItemCreate) -> Record:
    """Insert an item and return its record as stored, with its id and created_at."""
    (row,) = await connection.fetch(INSERT, data.name, data.description, data.price)
    return row


@router.get("/{item_id}", responses=NOT_FOUND)
async def get_item(item_id: ItemId, connection: ReadDriverConnectionDep) -> ItemPublic:
    """Return one item."""
    row = await get(connection=connection, item_id=item_id)
    if row is None:
        raise not_found(item_id)
    return ItemPublic.model_validate(dict(row))


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_item(data: ItemCreate, connection: DriverConnectionDep) -> ItemPublic:
    """Create an item."""
    row = await create(connection=connection, data=data)
    return ItemPublic.model_validate(dict(row))
