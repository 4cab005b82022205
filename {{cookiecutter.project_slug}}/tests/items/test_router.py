"""The items API, through the real app; every test's writes are rolled back."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection

from {{ cookiecutter.package_name }}.infrastructure.config import load_settings
from {{ cookiecutter.package_name }}.main import create_app
from tests.conftest import in_process_client

NEW = {"name": "Espresso cup", "description": "Porcelain, 80 ml", "price": "9.5"}


async def create(client: AsyncClient, **changes: Any) -> dict[str, Any]:
    response = await client.post("/items", json=NEW | changes)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_create_returns_the_stored_item(client: AsyncClient) -> None:
    item = await create(client)
    assert item["id"] >= 1
    assert item["name"] == "Espresso cup"
    assert item["description"] == "Porcelain, 80 ml"
    assert item["price"] == "9.50"
    assert item["created_at"]
    assert (await client.get(f"/items/{item['id']}")).json() == item


@contextmanager
def statements_on(connection: AsyncConnection) -> Iterator[list[str]]:
    """Collect the SQL statements run on `connection` (every request's, in these tests)."""
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(connection.sync_connection, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(connection.sync_connection, "before_cursor_execute", record)


async def test_create_reads_what_the_database_filled_in_with_the_insert(
    client: AsyncClient, connection: AsyncConnection
) -> None:
    with statements_on(connection) as statements:
        item = await create(client)
    # Nothing but the INSERT (and the test's SAVEPOINTs): no second query for created_at.
    (insert,) = [s for s in statements if not s.startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]
    assert insert.startswith("INSERT INTO items")
    assert "created_at" in insert.partition("RETURNING")[2]
    assert item["created_at"]


async def test_the_dev_sqlite_file_fills_in_the_id_and_created_at_too() -> None:
    # The dev profile without DATABASE_URL: a SQLite file in the test's directory.
    app = create_app(load_settings(_env_file=None, database_echo=False))
    async with in_process_client(app, lifespan=True) as client:
        item = await create(client)
        assert item["id"] == 1
        assert item["created_at"]
        assert (await client.get(f"/items/{item['id']}")).json() == item


async def test_ids_come_from_a_sequence(client: AsyncClient) -> None:
    first, second = await create(client), await create(client)
    assert second["id"] == first["id"] + 1


async def test_list_pages_through_items_oldest_first(client: AsyncClient) -> None:
    ids = [(await create(client, name=f"item {n}"))["id"] for n in range(5)]
    page = (await client.get("/items", params={"limit": 2, "offset": 1})).json()
    assert [item["id"] for item in page] == ids[1:3]
    assert len((await client.get("/items")).json()) == 5


async def test_patch_changes_only_the_fields_sent(client: AsyncClient) -> None:
    item = await create(client)
    response = await client.patch(f"/items/{item['id']}", json={"price": "8.9"})
    assert response.status_code == 200
    assert response.json() == item | {"price": "8.90"}
    cleared = await client.patch(f"/items/{item['id']}", json={"description": None})
    assert cleared.json()["description"] is None


async def test_delete_removes_the_item(client: AsyncClient) -> None:
    item = await create(client)
    assert (await client.delete(f"/items/{item['id']}")).status_code == 204
    assert (await client.get(f"/items/{item['id']}")).status_code == 404
    assert (await client.delete(f"/items/{item['id']}")).status_code == 404


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_a_missing_item_is_a_404(client: AsyncClient, method: str) -> None:
    response = await client.request(method, "/items/123456789", json={})
    assert response.status_code == 404
    assert response.json() == {"detail": "Item 123456789 not found"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"price": "1.00"}, "name"),
        ({"name": "Cup"}, "price"),
        ({"name": "", "price": "1"}, "name"),
        ({"name": "   ", "price": "1"}, "name"),
        ({"name": "x" * 201, "price": "1"}, "name"),
        ({"name": "a\x00b", "price": "1"}, "name"),
        ({"name": "Cup", "price": "-0.01"}, "price"),
        ({"name": "Cup", "price": "1.001"}, "price"),
        ({"name": "Cup", "price": "10000000000.00"}, "price"),
        ({"name": "Cup", "price": "NaN"}, "price"),
        ({"name": "Cup", "price": "cheap"}, "price"),
        ({"name": ["Cup"], "price": "1"}, "name"),
        ({"name": "Cup", "price": "1", "colour": "red"}, "colour"),
    ],
)
async def test_bad_bodies_are_a_422_naming_the_field(
    client: AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/items", json=body)
    assert response.status_code == 422
    assert [error["loc"][-1] for error in response.json()["detail"]] == [field]


async def test_sql_in_a_name_is_stored_as_text(client: AsyncClient) -> None:
    name = "'); DROP TABLE items; --"
    item = await create(client, name=name)
    assert (await client.get(f"/items/{item['id']}")).json()["name"] == name


@pytest.mark.parametrize("body", [{"name": None}, {"price": None}])
async def test_patch_refuses_null_for_required_fields(
    client: AsyncClient, body: dict[str, Any]
) -> None:
    item = await create(client)
    response = await client.patch(f"/items/{item['id']}", json=body)
    assert response.status_code == 422
    assert (await client.get(f"/items/{item['id']}")).json() == item


@pytest.mark.parametrize(
    "path", ["/items/0", "/items/-1", "/items/2147483648", "/items/abc", "/items?limit=0"]
)
async def test_out_of_range_parameters_are_a_422(client: AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 422
