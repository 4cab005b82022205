"""BurstPool keeps a burst's connections, serves waiters in order; read sessions skip BEGIN."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

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
    database = await init_db(settings.model_copy(update=changed).database_configs()[0])
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


@pytest.fixture
async def single(settings: Settings) -> AsyncIterator[Database]:
    """A pool of one connection that requests may wait 0.5 s for."""
    changed = {"database_pool_size": 1, "database_max_overflow": 0, "database_pool_timeout": 0.5}
    database = await init_db(settings.model_copy(update=changed).database_configs()[0])
    yield database
    await close_db(database)


async def test_a_returned_connection_goes_to_the_longest_waiter(single: Database) -> None:
    order: list[str] = []

    async def take(name: str) -> None:
        async with single.engine.connect():
            order.append(name)

    held = await single.engine.connect()
    waiters = []
    for name in ("first", "second", "third"):
        waiters.append(asyncio.create_task(take(name)))
        await asyncio.sleep(0.02)  # each is waiting before the next arrives
    # Scheduled before the connection comes back, so it runs before the woken
    # waiter: SQLAlchemy's own queue lets it take the connection out of turn.
    late = asyncio.create_task(take("late"))
    await held.close()
    await asyncio.gather(*waiters, late)
    assert order == ["first", "second", "third", "late"]


async def test_a_waiter_that_gives_up_costs_the_pool_no_connection(single: Database) -> None:
    held = await single.engine.connect()
    with pytest.raises(PoolTimeoutError):
        await single.engine.connect()
    cancelled = asyncio.create_task(single.engine.connect().start())
    await asyncio.sleep(0.02)
    # The connection is handed to the waiter, which is cancelled before it
    # runs (a client hanging up): the connection must go back, not vanish.
    await held.close()
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    async with single.engine.connect() as connection:
        assert await connection.scalar(text("SELECT 1")) == 1
    assert burst_pool(single).checkedin() == 1


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
