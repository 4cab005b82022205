"""The generated service with its two benchmarked routes on the documented driver path.

As `fast_path.py`, but the recipe's second tier: the project's own SQL on
asyncpg's connection, through `ReadDriverConnectionDep` and `DriverConnectionDep`.
Run as a script with the project's interpreter; no file of the project is changed.
"""

import sys
from typing import Annotated, Final

from fast_path import MAX_ID, main
from fastapi import APIRouter, HTTPException, Path, status
from orders_service.dependencies import DriverConnectionDep, ReadDriverConnectionDep
from orders_service.items.schemas import ItemCreate, ItemPublic

BY_ID: Final = "SELECT id, name, description, price, created_at FROM items WHERE id = $1"
INSERT: Final = (
    "INSERT INTO items (name, description, price) VALUES ($1, $2, $3)"
    " RETURNING id, name, description, price, created_at"
)

router = APIRouter(prefix="/items")


@router.get("/{item_id}")
async def get_item(
    item_id: Annotated[int, Path(ge=1, le=MAX_ID)], connection: ReadDriverConnectionDep
) -> ItemPublic:
    """Return one item."""
    row = await connection.fetchrow(BY_ID, item_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"Item {item_id} not found")
    return ItemPublic.model_validate(dict(row))


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_item(data: ItemCreate, connection: DriverConnectionDep) -> ItemPublic:
    """Create an item."""
    (row,) = await connection.fetch(INSERT, data.name, data.description, data.price)
    return ItemPublic.model_validate(dict(row))


if __name__ == "__main__":
    sys.exit(main(router))
