"""Both fast-path recipes keep the example's guarantees: same answers, commit before the answer."""

from typing import Any, Literal

import pytest
from fastapi import APIRouter, FastAPI, HTTPException, status
from httpx import AsyncClient
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from {{ cookiecutter.package_name }}.dependencies import ConnectionDep, DriverConnectionDep
from {{ cookiecutter.package_name }}.items.models import Item
from {{ cookiecutter.package_name }}.items.schemas import ItemCreate, ItemPublic
from tests.items import driver_path, fast_path

NEW = {"name": "Espresso cup", "description": "Porcelain, 80 ml", "price": "9.5"}
# Core statements on a bare connection, and SQL on asyncpg's own.
RECIPES = ("core", "driver")

Failure = Literal["refuse", "crash", "fail-at-commit"]
# A deferred constraint is only checked at COMMIT: the handler returns normally
# and the commit itself fails.
FAIL_AT_COMMIT = (
    "CREATE TEMP TABLE twice (n int UNIQUE DEFERRABLE INITIALLY DEFERRED) ON COMMIT DROP",
    "INSERT INTO twice VALUES (1), (1)",
)


def fail(failure: Failure) -> None:
    """Raise as a handler might after writing; a commit that fails needs nothing raised."""
    if failure == "refuse":
        raise HTTPException(status.HTTP_409_CONFLICT, detail="refused after writing")
    if failure == "crash":
        raise RuntimeError("handler bug after writing")


core = APIRouter(prefix="/test/core")
core.include_router(fast_path.router)
driver = APIRouter(prefix="/test/driver")
driver.include_router(driver_path.router)


@core.post("/failing/{failure}")
async def core_write_then_fail(
    failure: Failure, data: ItemCreate, connection: ConnectionDep
) -> ItemPublic:
    """The Core recipe's POST, then `failure`."""
    item = await fast_path.create_item(data, connection)
    if failure == "fail-at-commit":
        for statement in FAIL_AT_COMMIT:
            await connection.execute(text(statement))
    fail(failure)
    return item


@driver.post("/failing/{failure}")
async def driver_write_then_fail(
    failure: Failure, data: ItemCreate, connection: DriverConnectionDep
) -> ItemPublic:
    """The driver recipe's POST, then `failure`."""
    item = await driver_path.create_item(data, connection)
    if failure == "fail-at-commit":
        for statement in FAIL_AT_COMMIT:
            await connection.execute(statement)
    fail(failure)
    return item


@pytest.fixture
def recipes(app: FastAPI) -> FastAPI:
    """Each recipe's routes under /test/<recipe>, beside the example's."""
    app.include_router(core)
    app.include_router(driver)
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


@pytest.mark.usefixtures("recipes")
@pytest.mark.parametrize("recipe", RECIPES)
async def test_the_recipe_answers_as_the_orm_routes_do(client: AsyncClient, recipe: str) -> None:
    items = f"/test/{recipe}/items"
    created = await client.post(items, json=NEW)
    assert created.status_code == 201, created.text
    item = created.json()
    assert item["price"] == "9.50"
    assert item["created_at"]
    assert (await client.get(f"{items}/{item['id']}")).json() == item
    assert (await client.get(f"/items/{item['id']}")).json() == item
    # And the other way round: an item the ORM route wrote reads the same on the fast path.
    orm_item = (await client.post("/items", json=NEW)).json()
    assert orm_item["id"] == item["id"] + 1
    assert (await client.get(f"{items}/{orm_item['id']}")).json() == orm_item
    missing = await client.get(f"{items}/123456789")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Item 123456789 not found"})


@pytest.mark.usefixtures("recipes")
@pytest.mark.parametrize("recipe", RECIPES)
async def test_a_recipe_write_is_committed_before_the_answer(
    committing_client: AsyncClient, database_url: str, recipe: str
) -> None:
    response = await committing_client.post(f"/test/{recipe}/items", json=NEW)
    assert response.status_code == 201, response.text
    item = response.json()
    (stored,) = await committed_items(database_url)
    assert stored["id"] == item["id"]
    # The answer shows the row as the database filled it in.
    assert ItemPublic.model_validate(item).created_at == stored["created_at"]


@pytest.mark.usefixtures("recipes")
@pytest.mark.parametrize("recipe", RECIPES)
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
    committing_client: AsyncClient,
    database_url: str,
    recipe: str,
    failure: str,
    expected_status: int,
) -> None:
    response = await committing_client.post(f"/test/{recipe}/failing/{failure}", json=NEW)
    assert response.status_code == expected_status, response.text
    assert await committed_items(database_url) == []
