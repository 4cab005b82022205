"""The second ceiling: FastAPI and pydantic as the generated service uses them, on a raw asyncpg pool.

No SQLAlchemy: what is left between this and the generated service is the ORM or
Core layer, the greenlet bridge, and the service's own middlewares and guards.
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Annotated

import asyncpg
from fastapi import Depends, FastAPI, HTTPException, Path, Request, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

SELECT = "SELECT id, name, description, price, created_at FROM items WHERE id = $1"
INSERT = (
    "INSERT INTO items (name, description, price) VALUES ($1, $2, $3) "
    "RETURNING id, name, description, price, created_at"
)
MAX_ID = 2_147_483_647
_CENT = Decimal("0.01")

# The generated schemas' rules, so that both validate the same work per request.
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[^\x00]*$"),
]
Description = Annotated[str, StringConstraints(max_length=2000, pattern=r"^[^\x00]*$")]
Price = Annotated[
    Decimal,
    Field(ge=0, max_digits=12, decimal_places=2),
    AfterValidator(lambda price: price.quantize(_CENT).copy_abs()),
]


class ItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description | None = None
    price: Price


class ItemPublic(BaseModel):
    id: int
    name: str
    description: str | None
    price: Decimal
    created_at: datetime


async def get_pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


PoolDep = Annotated[asyncpg.Pool, Depends(get_pool)]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(
        os.environ["BENCH_DSN"],
        min_size=20,
        max_size=20,
        server_settings={"application_name": "bench-fastapi-asyncpg"},
    )
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/items/{item_id}")
async def get_item(item_id: Annotated[int, Path(ge=1, le=MAX_ID)], pool: PoolDep) -> ItemPublic:
    row = await pool.fetchrow(SELECT, item_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"Item {item_id} not found")
    return ItemPublic(**row)


@app.post("/items", status_code=status.HTTP_201_CREATED)
async def create_item(data: ItemCreate, pool: PoolDep) -> ItemPublic:
    row = await pool.fetchrow(INSERT, data.name, data.description, data.price)
    return ItemPublic(**row)
