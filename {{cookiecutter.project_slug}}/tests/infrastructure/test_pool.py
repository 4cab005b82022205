"""BurstPool keeps the connections of a burst while it lasts, and read sessions skip BEGIN."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from sqlalchemy import text

from {{ cookiecutter.package_name }}.infrastructure import pool as pool_module
from {{ cookiecutter.package_name }}.infrastructure.config import Settings
from {{ cookiecutter.package_name }}.infrastructure.database import (
    Database,
    close_db,
    init_db,
    session_scope,
)
from {{ cookiecutter.package_name }}.infrastructure.pool import BurstPool


async def burst(database: Database, size: int) -> None:
    """Hold `size` connections at once, then give them all back."""
    sessions = [database.read_sessionmaker() for _ in range(size)]
    await asyncio.gather(*(session.connection() for session in sessions))
    await asyncio.gather(*(session.close() for session in sessions))


def burst_pool(database: Database) -> BurstPool:
    pool = database.engine.pool
    assert isinstance(pool, BurstPool)
    return pool


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    """A 2+3 pool of the test database."""
    changed = {"database_pool_size": 2, "database_max_overflow": 3}
    database = await init_db(settings.model_copy(update=changed))
    yield database
    await close_db(database)


async def test_connections_opened_for_a_burst_are_kept_while_it_lasts(database: Database) -> None:
    pool = burst_pool(database)
    await burst(database, 5)
    assert (pool.checkedin(), pool.overflow()) == (5, 3)
    opened = database.stats.connects
    for _ in range(3):
        await burst(database, 5)
    # A plain QueuePool would have closed and reopened three connections per burst.
    assert database.stats.connects == opened
    assert pool.checkedout() == 0


async def test_a_quiet_pool_closes_what_it_opened_above_pool_size(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = burst_pool(database)
    await burst(database, 5)
    monkeypatch.setattr(pool_module, "LINGER_SECONDS", 0.0)
    await asyncio.sleep(0.01)
    await burst(database, 5)
    assert pool.checkedin() == pool.kept == 2
    assert pool.overflow() == 0


async def test_the_pool_never_opens_more_than_pool_size_plus_max_overflow(
    database: Database,
) -> None:
    sessions = [database.read_sessionmaker() for _ in range(5)]
    await asyncio.gather(*(session.connection() for session in sessions))
    extra = database.read_sessionmaker()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await extra.connection()
    await asyncio.gather(*(session.close() for session in [*sessions, extra]))


async def test_read_sessions_run_each_query_on_its_own(app: FastAPI) -> None:
    database: Database = app.state.database
    # now() is the start of the current transaction: equal within one,
    # different across two.
    query = text("SELECT now()")
    async with database.read_sessionmaker() as session:
        first, second = await session.scalar(query), await session.scalar(query)
    assert first != second
    async with session_scope(database) as session:
        first, second = await session.scalar(query), await session.scalar(query)
    assert first == second
