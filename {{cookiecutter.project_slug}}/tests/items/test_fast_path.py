"""The fast-path recipe keeps the example's guarantees: same answers, commit before the answer."""

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException, status
from httpx import AsyncClient
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from {{ cookiecutter.package_name }}.dependencies import ConnectionDep
from {{ cookiecutter.package_name }}.items.models import Item
from {{ cookiecutter.package_name }}.items.schemas import ItemCreate, ItemPublic
from tests.items import fast_path

NEW = {"name": "Espresso cup", "description": "Porcelain, 80 ml", "price": "9.5"}
FAST = "/test/fast/items"


async def refuse(_connection: AsyncConnection) -> None:
    raise HTTPException(status.HTTP_409_CONFLICT, detail="refused after writing")


async def crash(_connection: AsyncConnection) -> None:
    raise RuntimeError("handler bug after writing")


async def fail_at_commit(connection: AsyncConnection) -> None:
    # A deferred constraint is only checked at COMMIT: the handler returns
    # normally and the commit itself fails.
    await connection.execute(
        text("CREATE TEMP TABLE twice (n int UNIQUE DEFERRABLE INITIALLY DEFERRED) ON COMMIT DROP")
    )
    await connection.execute(text("INSERT INTO twice VALUES (1), (1)"))


AFTER_WRITING: dict[str, Callable[[AsyncConnection], Awaitable[None]]] = {
    "refuse": refuse,
    "crash": crash,
    "fail-at-commit": fail_at_commit,
}


@pytest.fixture
def fast_routes(app: FastAPI) -> FastAPI:
    """The recipe's routes under /test/fast, and its POST followed by each kind of failure."""
    app.include_router(fast_path.router, prefix="/test/fast")

    def failing(after: Callable[[AsyncConnection], Awaitable[None]]) -> Callable[..., Any]:
        async def handler(data: ItemCreate, connection: ConnectionDep) -> ItemPublic:
            item = await fast_path.create_item(data, connection)
            await after(connection)
            return item

        return handler

    for name, after in AFTER_WRITING.items():
        app.add_api_route(f"/test/fast/{name}", failing(after), methods=["POST"])
    return app


async def committed_items(database_url: str) -> list[dict[str, Any]]:
    """Every item another connection can see, i.e. what was really committed."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(select(Item.id, Item.name, Item.created_at))
            return [dict(row._mapping) for row in rows]
    finally:
        await engine.dispose()


@pytest.mark.usefixtures("fast_routes")
async def test_the_recipe_answers_as_the_orm_routes_do(client: AsyncClient) -> None:
    created = await client.post(FAST, json=NEW)
    assert created.status_code == 201, created.text
    item = created.json()
    assert item["price"] == "9.50"
    assert item["created_at"]
    assert (await client.get(f"{FAST}/{item['id']}")).json() == item
    assert (await client.get(f"/items/{item['id']}")).json() == item
    # And the other way round: an item the ORM route wrote reads the same on the fast path.
    orm_item = (await client.post("/items", json=NEW)).json()
    assert orm_item["id"] == item["id"] + 1
    assert (await client.get(f"{FAST}/{orm_item['id']}")).json() == orm_item
    missing = await client.get(f"{FAST}/123456789")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Item 123456789 not found"})


@pytest.mark.usefixtures("fast_routes")
async def test_a_recipe_write_is_committed_before_the_answer(
    committing_client: AsyncClient, database_url: str
) -> None:
    response = await committing_client.post(FAST, json=NEW)
    assert response.status_code == 201, response.text
    item = response.json()
    (stored,) = await committed_items(database_url)
    assert stored["id"] == item["id"]
    # The answer shows the row as the database filled it in.
    assert ItemPublic.model_validate(item).created_at == stored["created_at"]


@pytest.mark.usefixtures("fast_routes")
@pytest.mark.parametrize(
    ("failure", "expected_status"),
    [
        ("refuse", status.HTTP_409_CONFLICT),
        ("crash", status.HTTP_500_INTERNAL_SERVER_ERROR),
        # An answer sent before the commit would have been a 201.
        ("fail-at-commit", status.HTTP_409_CONFLICT),
    ],
)
async def test_a_recipe_write_that_fails_leaves_nothing_behind(
    committing_client: AsyncClient, database_url: str, failure: str, expected_status: int
) -> None:
    response = await committing_client.post(f"/test/fast/{failure}", json=NEW)
    assert response.status_code == expected_status, response.text
    assert await committed_items(database_url) == []
