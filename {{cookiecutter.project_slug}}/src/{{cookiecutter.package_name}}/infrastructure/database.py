"""The database engine, its sessions, and their lifecycle.

Nothing here connects at import time: `init_db` builds the engine when the
application starts, and `close_db` disposes of it when the application stops.
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

from fastapi import Depends, Request
from sqlalchemy import MetaData, event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from {{ cookiecutter.package_name }}.infrastructure.config import BudgetCheck, Settings

logger = logging.getLogger(__name__)

# Stable constraint names, so that migrations can refer to them by name.
NAMING_CONVENTION: Final = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# The driver gives up on a statement this long after the server should have
# cancelled it, so a hung connection cannot hold a request forever.
COMMAND_TIMEOUT_MARGIN_SECONDS: Final = 5.0


class Base(DeclarativeBase):
    """Base class of every ORM model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class DatabaseUnavailableError(Exception):
    """The database did not answer; the message is one line and holds no password."""


class PoolSaturatedError(PoolTimeoutError):
    """So many requests already wait for a connection that this one is turned away."""


class ConnectionBudgetError(Exception):
    """The pools of all workers could open more connections than the server allows."""


@dataclass(slots=True)
class PoolStats:
    """Counters fed by pool events since the engine was built."""

    connects: int = 0
    checkouts: int = 0
    invalidations: int = 0
    timeouts: int = 0
    # Requests of this process taking a connection right now, or queueing for one.
    acquiring: int = 0
    # Requests of this process holding a connection. Counted by the requests
    # themselves, not as checkouts minus checkins: a request cancelled while it
    # takes its connection fires a checkin without a checkout, and that drift
    # would blind the guard in _take_connection for good.
    holding: int = 0
    # Pool timeouts are logged once per burst, not once per request.
    timeouts_unreported: int = 0
    last_timeout_report: float | None = None


@dataclass(frozen=True, slots=True)
class Database:
    """The engine and session factory that one running application owns."""

    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    capacity: int
    max_waiting: int
    stats: PoolStats = field(default_factory=PoolStats)


def create_engine(settings: Settings) -> AsyncEngine:
    """Build an engine whose pool follows the settings; it connects lazily."""
    pool = settings.pool
    connect_args: dict[str, Any] = {"timeout": settings.database_connect_timeout}
    if not settings.uses_dev_sqlite:
        connect_args["server_settings"] = _server_settings(settings)
        if pool.statement_timeout_ms:
            connect_args["command_timeout"] = (
                pool.statement_timeout_ms / 1000 + COMMAND_TIMEOUT_MARGIN_SECONDS
            )
    return create_async_engine(
        settings.url,
        pool_size=pool.pool_size,
        max_overflow=pool.max_overflow,
        pool_timeout=pool.pool_timeout,
        pool_recycle=pool.pool_recycle,
        # A connection the server dropped (restart, failover, idle timeout) is
        # replaced at checkout instead of failing the request that drew it.
        pool_pre_ping=pool.pool_pre_ping,
        echo=pool.echo,
        connect_args=connect_args,
    )


def _server_settings(settings: Settings) -> dict[str, str]:
    pool = settings.pool
    # Sent with every new connection, so no request can run or idle unbounded.
    server_settings = {"application_name": settings.database_application_name}
    if pool.statement_timeout_ms:
        server_settings["statement_timeout"] = str(pool.statement_timeout_ms)
    if pool.idle_in_transaction_timeout_ms:
        server_settings["idle_in_transaction_session_timeout"] = str(
            pool.idle_in_transaction_timeout_ms
        )
    return server_settings


def _count_pool_events(engine: AsyncEngine, stats: PoolStats) -> None:
    def on_connect(*_: Any) -> None:
        stats.connects += 1
        logger.debug("pool: new connection (%d opened so far)", stats.connects)

    def on_checkout(*_: Any) -> None:
        stats.checkouts += 1

    def on_invalidate(_dbapi_connection: Any, _record: Any, error: BaseException | None) -> None:
        stats.invalidations += 1
        logger.debug("pool: connection invalidated (%s)", type(error).__name__)

    event.listen(engine.sync_engine, "connect", on_connect)
    event.listen(engine.sync_engine, "checkout", on_checkout)
    event.listen(engine.sync_engine, "invalidate", on_invalidate)


async def init_db(settings: Settings) -> Database:
    """Create the engine and session factory and make sure the database answers."""
    engine = create_engine(settings)
    stats = PoolStats()
    _count_pool_events(engine, stats)
    try:
        async with engine.begin() as connection:
            if settings.uses_dev_sqlite:
                logger.warning(
                    "DATABASE_URL is not set: using the local SQLite file %s (dev profile only)",
                    settings.safe_url,
                )
                # Only for the throwaway dev database; real ones are built by migrations.
                await connection.run_sync(Base.metadata.create_all)
            else:
                await check_connection_budget(connection, settings)
    except (OSError, TimeoutError, DBAPIError) as error:
        await engine.dispose()
        raise DatabaseUnavailableError(_describe_failure(settings, error)) from error
    except BaseException:
        await engine.dispose()
        raise
    logger.info("Connected to %s (profile %s)", settings.safe_url, settings.database_profile)
    # Objects stay readable after commit: responses are serialised from them.
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    return Database(
        engine=engine,
        sessionmaker=sessionmaker,
        capacity=settings.pool.pool_size + settings.pool.max_overflow,
        max_waiting=settings.pool_max_waiting,
        stats=stats,
    )


async def close_db(database: Database) -> None:
    """Close every pooled connection; the engine cannot be used afterwards."""
    await database.engine.dispose()


async def check_connection_budget(connection: AsyncConnection, settings: Settings) -> None:
    """Compare what all workers' pools may open with what the server accepts."""
    if settings.budget_check is BudgetCheck.OFF:
        return
    rows = await connection.execute(
        text(
            "SELECT name, setting::int FROM pg_settings WHERE name IN "
            "('max_connections', 'superuser_reserved_connections', 'reserved_connections')"
        )
    )
    server: dict[str, int] = {name: setting for name, setting in rows}
    reserved = server.get("superuser_reserved_connections", 0) + server.get(
        "reserved_connections", 0
    )
    available = server["max_connections"] - reserved
    pool = settings.pool
    workers = settings.web_concurrency
    needed = workers * (pool.pool_size + pool.max_overflow)
    if needed <= available:
        return
    message = (
        f"connection budget exceeded: {workers} worker(s) x ({pool.pool_size} pool + "
        f"{pool.max_overflow} overflow) = {needed} > {available} available "
        f"(max_connections {server['max_connections']} - {reserved} reserved); lower "
        "DATABASE_POOL_SIZE, DATABASE_MAX_OVERFLOW or WEB_CONCURRENCY, raise max_connections, "
        "or put PgBouncer in front"
    )
    if settings.budget_check is BudgetCheck.FAIL:
        raise ConnectionBudgetError(f"{message} (DATABASE_BUDGET_CHECK=warn to start anyway)")
    logger.warning(message)


async def wait_for_database(settings: Settings) -> None:
    """Try to reach the database a bounded number of times, backing off in between."""
    attempts = settings.database_connect_retries + 1
    delay = settings.database_connect_retry_delay
    for attempt in range(1, attempts + 1):
        try:
            database = await init_db(settings)
        except DatabaseUnavailableError as error:
            if attempt == attempts:
                raise
            logger.warning(
                "Attempt %d of %d: %s; retrying in %.1f s", attempt, attempts, error, delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30)
        else:
            await close_db(database)
            return


def _describe_failure(settings: Settings, error: BaseException) -> str:
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    lines = str(cause).strip().splitlines()
    reason = lines[0] if lines else type(cause).__name__
    return f"cannot use the database at {settings.safe_url}: {reason}"


@asynccontextmanager
async def session_scope(database: Database) -> AsyncIterator[AsyncSession]:
    """Give one session in one transaction: commit on success, roll back on error, close."""
    async with database.sessionmaker() as session, session.begin():
        yield session


async def get_database(request: Request) -> Database:
    """Return the database the running application owns."""
    database: Database = request.app.state.database
    return database


DatabaseDep = Annotated[Database, Depends(get_database)]


async def get_db(database: DatabaseDep) -> AsyncIterator[AsyncSession]:
    """Give the request its own session, committed before the response is sent."""
    async with session_scope(database) as session:
        await _take_connection(database, session)
        try:
            yield session
        finally:
            database.stats.holding -= 1


async def _take_connection(database: Database, session: AsyncSession) -> None:
    # Taking the connection up front, rather than at the first query, bounds
    # the queue: beyond max_waiting requests, one more could not be served
    # within pool_timeout anyway, so it is answered at once.
    stats = database.stats
    if stats.holding >= database.capacity and stats.acquiring >= database.max_waiting:
        raise PoolSaturatedError(
            f"{stats.acquiring} requests already wait for {database.capacity} busy connections"
        )
    stats.acquiring += 1
    try:
        await session.connection()
    finally:
        stats.acquiring -= 1
    stats.holding += 1


# scope="function" runs the commit after the handler returns but before the
# response goes out, so a failing commit becomes an error response, never a 2xx.
SessionDep = Annotated[AsyncSession, Depends(get_db, scope="function")]
