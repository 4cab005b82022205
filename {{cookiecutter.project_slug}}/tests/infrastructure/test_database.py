"""The session and connection dependencies and session_scope own the transaction.

They commit, roll back, and always give the connection back.
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from fastapi import FastAPI, HTTPException, status
from httpx import AsyncClient
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool, QueuePool

from {{ cookiecutter.package_name }}.infrastructure.database import (
    ConnectionDep,
    Database,
    SessionDep,
    session_scope,
)
from {{ cookiecutter.package_name }}.items.models import Item
from {{ cookiecutter.package_name }}.items.schemas import ItemCreate
from tests.conftest import empty_tables

NEW_ITEM = ItemCreate.model_validate({"name": "Teapot", "price": "12.00"})


async def write_item(connection: AsyncConnection) -> None:
    """Insert NEW_ITEM; here rather than through the items example, which is yours to change."""
    await connection.execute(insert(Item).values(**NEW_ITEM.model_dump()))


async def committed_item_count(database_url: str) -> int:
    """Count the items another connection can see, i.e. what was really committed."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return (await connection.scalar(select(func.count()).select_from(Item))) or 0
    finally:
        await engine.dispose()


Write = Callable[[AsyncConnection], Awaitable[dict[str, str]]]


async def write_then_refuse(connection: AsyncConnection) -> dict[str, str]:
    await write_item(connection)
    raise HTTPException(status.HTTP_409_CONFLICT, detail="refused after writing")


async def write_then_crash(connection: AsyncConnection) -> dict[str, str]:
    await write_item(connection)
    raise RuntimeError("handler bug after writing")


async def write_then_fail_at_commit(connection: AsyncConnection) -> dict[str, str]:
    await write_item(connection)
    # A deferred constraint is only checked at COMMIT, so the handler
    # returns normally and the commit itself fails.
    await connection.execute(
        text("CREATE TEMP TABLE pair (n int UNIQUE DEFERRABLE INITIALLY DEFERRED)")
    )
    await connection.execute(text("INSERT INTO pair VALUES (1), (1)"))
    return {"status": "looks fine until commit"}


def through_session(write: Write) -> Callable[[AsyncSession], Awaitable[dict[str, str]]]:
    """A handler that runs `write` in the transaction of a SessionDep."""

    async def handler(session: SessionDep) -> dict[str, str]:
        return await write(await session.connection())

    return handler


def through_connection(write: Write) -> Callable[[AsyncConnection], Awaitable[dict[str, str]]]:
    """A handler that runs `write` in the transaction of a ConnectionDep."""

    async def handler(connection: ConnectionDep) -> dict[str, str]:
        return await write(connection)

    return handler


@pytest.fixture
def failing_routes(app: FastAPI) -> FastAPI:
    """Routes that write an item and then fail in different ways, under both dependencies."""
    writes = {
        "refuse": write_then_refuse,
        "crash": write_then_crash,
        "fail-at-commit": write_then_fail_at_commit,
    }
    for name, write in writes.items():
        app.add_api_route(f"/test/session/{name}", through_session(write), methods=["POST"])
        app.add_api_route(f"/test/connection/{name}", through_connection(write), methods=["POST"])
    return app


async def test_a_successful_write_is_committed(
    committing_client: AsyncClient, database_url: str
) -> None:
    response = await committing_client.post("/items", json={"name": "Cup", "price": "3.00"})
    assert response.status_code == 201
    assert await committed_item_count(database_url) == 1


@pytest.mark.usefixtures("failing_routes")
@pytest.mark.parametrize("dependency", ["session", "connection"])
@pytest.mark.parametrize(
    ("failure", "expected_status"),
    [
        ("refuse", status.HTTP_409_CONFLICT),
        ("crash", status.HTTP_500_INTERNAL_SERVER_ERROR),
        ("fail-at-commit", status.HTTP_409_CONFLICT),
    ],
)
async def test_a_failing_request_leaves_nothing_behind(
    committing_client: AsyncClient,
    database_url: str,
    dependency: str,
    failure: str,
    expected_status: int,
) -> None:
    response = await committing_client.post(f"/test/{dependency}/{failure}")
    assert response.status_code == expected_status
    assert await committed_item_count(database_url) == 0


@pytest.mark.usefixtures("failing_routes")
async def test_hundreds_of_mixed_requests_return_every_connection(
    app: FastAPI, committing_client: AsyncClient, database_url: str
) -> None:
    async def one(n: int) -> int:
        match n % 5:
            case 0:
                response = await committing_client.post(
                    "/items", json={"name": f"n{n}", "price": 1}
                )
            case 1:
                response = await committing_client.get(f"/items/{2_000_000_000 - n}")
            case 2:
                response = await committing_client.post("/items", json={"name": "", "price": -1})
            case 3:
                response = await committing_client.post("/test/session/crash")
            case _:
                response = await committing_client.post("/test/connection/refuse")
        return response.status_code

    # Batches of 50 stay within the dev pool's queue (15 connections + 60
    # waiting); beyond it requests would get a 503, tested in test_errors.py.
    statuses = [
        status
        for start in range(0, 300, 50)
        for status in await asyncio.gather(*(one(n) for n in range(start, start + 50)))
    ]
    assert sorted(set(statuses)) == [201, 404, 409, 422, 500]
    assert statuses.count(201) == 60
    assert await committed_item_count(database_url) == 60
    pool = (await committing_client.get("/health/pool")).json()
    assert pool["checked_out"] == 0
    # Connections opened for the burst stay for a while (BurstPool), never beyond the limit.
    assert pool["checked_in"] <= pool["pool_size"] + pool["max_overflow"]


def checked_out(database: Database) -> int:
    """How many of the pool's connections are in use."""
    pool = database.engine.pool
    assert isinstance(pool, QueuePool)
    return pool.checkedout()


@pytest.fixture
async def database(app: FastAPI) -> AsyncIterator[Database]:
    """The running application's database; what was written through it is removed afterwards."""
    database: Database = app.state.database
    yield database
    async with database.engine.begin() as connection:
        await empty_tables(connection)


async def test_session_scope_commits_on_success(database: Database, database_url: str) -> None:
    async with session_scope(database) as session:
        await write_item(await session.connection())
    assert await committed_item_count(database_url) == 1
    assert checked_out(database) == 0


async def test_session_scope_rolls_back_on_error(database: Database, database_url: str) -> None:
    async def consume() -> None:
        async with session_scope(database) as session:
            await write_item(await session.connection())
            raise ValueError("consumer failed")

    with pytest.raises(ValueError, match="consumer failed"):
        await consume()
    assert await committed_item_count(database_url) == 0
    assert checked_out(database) == 0
