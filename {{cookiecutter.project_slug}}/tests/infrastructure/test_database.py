"""The session and connection dependencies and session_scope own the transaction.

They commit, roll back, and always give the connection back.
"""

import asyncio
import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone

import pytest
from fastapi import FastAPI, HTTPException, status
from httpx import AsyncClient
from pydantic import SecretStr
from sqlalchemy import (
    Column,
    ForeignKey,
    Integer,
    MetaData,
    Table,
    delete,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool, QueuePool

from {{ cookiecutter.package_name }}.infrastructure.config import (
    DEV_SQLITE_URL,
    Settings,
    load_settings,
)
from {{ cookiecutter.package_name }}.infrastructure.database import (
    ConnectionDep,
    Database,
    SessionDep,
    close_db,
    init_db,
    session_scope,
)
from {{ cookiecutter.package_name }}.main import create_app
from tests.conftest import admin_url, empty_tables, in_process_client, run_admin_statement
from tests.probe import probe_router, probes

NEW_PROBE = {"name": "Teapot", "price": "12.00"}


async def write_probe(connection: AsyncConnection, table: Table = probes) -> None:
    """Insert NEW_PROBE into `table`, one of the tests' own rather than a domain's."""
    await connection.execute(insert(table).values(**NEW_PROBE))


async def committed_probe_count(database_url: str) -> int:
    """Count the probes another connection can see, i.e. what was really committed."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return (await connection.scalar(select(func.count()).select_from(probes))) or 0
    finally:
        await engine.dispose()


Write = Callable[[AsyncConnection], Awaitable[dict[str, str]]]


async def write_then_refuse(connection: AsyncConnection) -> dict[str, str]:
    await write_probe(connection)
    raise HTTPException(status.HTTP_409_CONFLICT, detail="refused after writing")


async def write_then_crash(connection: AsyncConnection) -> dict[str, str]:
    await write_probe(connection)
    raise RuntimeError("handler bug after writing")


async def write_then_fail_at_commit(connection: AsyncConnection) -> dict[str, str]:
    await write_probe(connection)
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
    """Routes that write a probe and then fail in different ways, under both dependencies."""
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
    response = await committing_client.post("/probes", json={"name": "Cup", "price": "3.00"})
    assert response.status_code == 201
    assert await committed_probe_count(database_url) == 1


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
    assert await committed_probe_count(database_url) == 0


@pytest.mark.slow
@pytest.mark.usefixtures("failing_routes")
async def test_hundreds_of_mixed_requests_return_every_connection(
    app: FastAPI, committing_client: AsyncClient, database_url: str
) -> None:
    async def one(n: int) -> int:
        match n % 5:
            case 0:
                response = await committing_client.post(
                    "/probes", json={"name": f"n{n}", "price": "1"}
                )
            case 1:
                response = await committing_client.get(f"/probes/{2_000_000_000 - n}")
            case 2:
                response = await committing_client.post("/probes", json={"name": "", "price": -1})
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
    assert await committed_probe_count(database_url) == 60
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
        await write_probe(await session.connection())
    assert await committed_probe_count(database_url) == 1
    assert checked_out(database) == 0


async def test_session_scope_rolls_back_on_error(database: Database, database_url: str) -> None:
    async def consume() -> None:
        async with session_scope(database) as session:
            await write_probe(await session.connection())
            raise ValueError("consumer failed")

    with pytest.raises(ValueError, match="consumer failed"):
        await consume()
    assert await committed_probe_count(database_url) == 0
    assert checked_out(database) == 0


# The dev profile's SQLite file behaves like PostgreSQL where a team would notice.


def dev_sqlite_settings() -> Settings:
    """The dev profile without DATABASE_URL: the SQLite file in the test's directory."""
    return load_settings(_env_file=None, database_echo=False)


async def test_dev_sqlite_enforces_foreign_keys(model_probes: Table) -> None:
    orders = Table(
        "orders_probe",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("probe_id", ForeignKey(model_probes.c.id), nullable=False),
    )
    database = await init_db(dev_sqlite_settings().database_configs()[0])
    try:
        async with database.begin() as connection:
            await connection.run_sync(orders.create)
            await write_probe(connection, model_probes)
            await connection.execute(insert(orders).values(probe_id=1))
        for statement in (insert(orders).values(probe_id=2), delete(model_probes)):
            with pytest.raises(IntegrityError, match="FOREIGN KEY constraint failed"):
                async with database.begin() as connection:
                    await connection.execute(statement)
    finally:
        await close_db(database)


async def test_dev_sqlite_keeps_timestamps_zoned_in_utc(model_probes: Table) -> None:
    noon_in_paris = datetime(2026, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    database = await init_db(dev_sqlite_settings().database_configs()[0])
    try:
        async with database.begin() as connection:
            await write_probe(connection, model_probes)
            await connection.execute(
                insert(model_probes).values(name="Clock", price=1, created_at=noon_in_paris)
            )
            query = select(model_probes.c.created_at).order_by(model_probes.c.id)
            by_default, given = list((await connection.execute(query)).scalars())
            later = select(func.count()).where(
                model_probes.c.created_at > datetime(2026, 6, 1, 9, 59, tzinfo=UTC)
            )
            assert await connection.scalar(later) == 2
    finally:
        await close_db(database)
    # Set by the database's CURRENT_TIMESTAMP, and given with another zone: both UTC.
    assert by_default.tzinfo is UTC
    assert (given, given.tzinfo) == (noon_in_paris, UTC)


def dev_sqlite_app(table: Table) -> FastAPI:
    """The dev profile's app, with routes on `table`."""
    app = create_app(dev_sqlite_settings())
    app.include_router(probe_router(table))
    return app


def write_old_dev_schema() -> None:
    """Leave a dev SQLite file whose model_probes table predates a column of the model."""
    path = make_url(DEV_SQLITE_URL).database
    assert path is not None
    with closing(sqlite3.connect(path)) as connection:
        connection.execute(
            "CREATE TABLE model_probes (id INTEGER NOT NULL PRIMARY KEY, "
            "name VARCHAR(200) NOT NULL, price NUMERIC(10, 2) NOT NULL, "
            "created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL)"
        )
        connection.execute("INSERT INTO model_probes (name, price) VALUES ('old models', 1)")
        connection.commit()


async def test_a_dev_sqlite_file_from_older_models_is_rebuilt_at_start(
    caplog: pytest.LogCaptureFixture, model_probes: Table
) -> None:
    write_old_dev_schema()
    app = dev_sqlite_app(model_probes)
    with caplog.at_level(logging.WARNING):
        async with in_process_client(app, lifespan=True) as client:
            created = await client.post("/model-probes", json=NEW_PROBE)
            assert created.status_code == 201, created.text
            found = await client.get(f"/model-probes/{created.json()['id']}")
    assert found.status_code == 200, found.text
    rebuilt = [
        r.getMessage() for r in caplog.records if "built from other models" in r.getMessage()
    ]
    assert len(rebuilt) == 1, caplog.text
    assert "add_column model_probes.description" in rebuilt[0]


async def test_a_dev_sqlite_file_that_fits_the_models_keeps_its_rows(
    caplog: pytest.LogCaptureFixture, model_probes: Table
) -> None:
    async with in_process_client(dev_sqlite_app(model_probes), lifespan=True) as client:
        created = await client.post("/model-probes", json=NEW_PROBE)
        assert created.status_code == 201, created.text
    async with in_process_client(dev_sqlite_app(model_probes), lifespan=True) as client:
        found = await client.get(f"/model-probes/{created.json()['id']}")
    assert found.status_code == 200, found.text
    assert "built from other models" not in caplog.text


async def test_dev_on_postgresql_names_the_command_when_the_database_is_behind(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"test_behind_{uuid.uuid4().hex[:12]}"
    await run_admin_statement(f'CREATE DATABASE "{name}"')
    behind = admin_url().set(database=name).render_as_string(hide_password=False)
    try:
        for url in (settings.url, behind):
            behind_or_not = settings.model_copy(update={"database_url": SecretStr(url)})
            database = await init_db(behind_or_not.database_configs()[0])
            await close_db(database)
    finally:
        await run_admin_statement(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    hints = [r.getMessage() for r in caplog.records if "db upgrade" in r.getMessage()]
    # Only the database without the migrations; the one at head gets no hint.
    assert len(hints) == 1, hints
    assert f"/{name} is at base, not at the migrations' head " in hints[0]
    assert hints[0].endswith("; run `uv run {{ cookiecutter.project_slug }} db upgrade`")
