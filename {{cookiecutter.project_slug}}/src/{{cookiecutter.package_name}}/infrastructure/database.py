"""The database engine, its sessions and connections, and their lifecycle.

Nothing here connects at import time: `init_db` builds the engine when the
application starts, and `close_db` disposes of it when the application stops.
"""

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Any, Final

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from {{ cookiecutter.package_name }}.infrastructure.capacity import (
    PoolPlace,
    PoolStats,
    check_connection_budget,
    pool_max_waiting,
)
from {{ cookiecutter.package_name }}.infrastructure.config import PRIMARY, DatabaseConfig
from {{ cookiecutter.package_name }}.infrastructure.dev_database import (
    behave_like_postgresql,
    build_dev_schema,
    hint_if_behind_migrations,
)
from {{ cookiecutter.package_name }}.infrastructure.driver import pooled_driver
from {{ cookiecutter.package_name }}.infrastructure.liveness import guard_checkouts
from {{ cookiecutter.package_name }}.infrastructure.pool import BurstPool
from {{ cookiecutter.package_name }}.infrastructure.profiles import Pooler, Profile
from {{ cookiecutter.package_name }}.infrastructure.sessions import end_session

logger = logging.getLogger(__name__)

# The driver gives up on a statement this long after the server should have
# cancelled it, so a hung connection cannot hold a request forever.
COMMAND_TIMEOUT_MARGIN_SECONDS: Final = 5.0


class DatabaseUnavailableError(Exception):
    """The database did not answer; the message is one line and holds no password."""


@dataclass(frozen=True, slots=True)
class Database:
    """The engine, and the sessions and connections, that one running application owns."""

    engine: AsyncEngine
    # Sessions in a transaction (writes, session_scope) and without one (reads).
    sessionmaker: async_sessionmaker[AsyncSession]
    read_sessionmaker: async_sessionmaker[AsyncSession]
    # Bare connections, for Core statements: one in a transaction, committed
    # when the block ends, and one without (engine.begin and engine.connect).
    begin: Callable[[], AbstractAsyncContextManager[AsyncConnection]]
    connect: Callable[[], AbstractAsyncContextManager[AsyncConnection]]
    # asyncpg's own connection under a pooled checkout (driver.py).
    driver: Callable[[], AbstractAsyncContextManager[asyncpg.Connection]]
    capacity: int
    max_waiting: int
    stats: PoolStats = field(default_factory=PoolStats)
    # PRIMARY, or the extra database's name (DATABASES__<NAME>__URL).
    name: str = PRIMARY
    # Whether a lone statement may run outside a transaction (not behind PgBouncer).
    autocommit: bool = True


def connect_args(settings: DatabaseConfig) -> dict[str, Any]:
    """What the driver gets with every new connection (migrations use it too)."""
    pool = settings.pool
    args: dict[str, Any] = {"timeout": settings.connect_timeout}
    if settings.uses_dev_sqlite:
        return args
    args["server_settings"] = _server_settings(settings)
    if pool.statement_timeout_ms:
        args["command_timeout"] = pool.statement_timeout_ms / 1000 + COMMAND_TIMEOUT_MARGIN_SECONDS
    if settings.pooler is Pooler.PGBOUNCER:
        # Each transaction may land on another server connection: no statement
        # caches, and prepared-statement names no other client can have chosen.
        args["statement_cache_size"] = 0
        args["prepared_statement_cache_size"] = 0
        args["prepared_statement_name_func"] = _unique_statement_name
    return args


def _unique_statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4().hex}__"


def create_engine(settings: DatabaseConfig) -> AsyncEngine:
    """Build an engine whose pool follows the settings; it connects lazily."""
    pool = settings.pool
    engine = create_async_engine(
        settings.url,
        poolclass=BurstPool,
        pool_size=pool.pool_size,
        max_overflow=pool.max_overflow,
        pool_timeout=pool.pool_timeout,
        pool_recycle=pool.pool_recycle,
        # Most recently used first: the connections kept busy stay warm, and
        # the checkout guard rarely has one to ping.
        pool_use_lifo=True,
        echo=pool.echo,
        connect_args=connect_args(settings),
        isolation_level=_default_isolation(settings),
    )
    guard_checkouts(engine, ping_idle=pool.pool_pre_ping)
    if settings.uses_dev_sqlite:
        behave_like_postgresql(engine)
    return engine


def _server_settings(settings: DatabaseConfig) -> dict[str, str]:
    pool = settings.pool
    # Sent with every new connection, so no request can run or idle unbounded.
    server_settings = {"application_name": settings.application_name}
    if settings.pooler is Pooler.PGBOUNCER:
        # PgBouncer refuses these as startup parameters: set them on the role
        # instead (ALTER ROLE ... SET statement_timeout = ..., see docs/configuration.md).
        return server_settings
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


async def init_db(settings: DatabaseConfig, *, announce: bool = True) -> Database:
    """Create the engine and session factory and make sure the database answers.

    Without `announce`, success is not logged: for a check before the real start.
    """
    engine = create_engine(settings)
    stats = PoolStats()
    _count_pool_events(engine, stats)
    # SQL echo is for the service's own statements, not for these checks.
    echo, engine.sync_engine.echo = engine.sync_engine.echo, False
    try:
        async with engine.begin() as connection:
            if settings.uses_dev_sqlite:
                if announce:
                    logger.warning(
                        "DATABASE_URL is not set: using the local SQLite file %s "
                        "(dev profile only)",
                        settings.safe_url,
                    )
                await connection.run_sync(build_dev_schema, settings.safe_url)
            else:
                await check_connection_budget(connection, settings)
                # The migrations are the primary's; an extra database has its own schema.
                primary = settings.name == PRIMARY
                if announce and primary and settings.profile is Profile.DEV:
                    await hint_if_behind_migrations(connection, settings)
    except (OSError, TimeoutError, DBAPIError) as error:
        await engine.dispose()
        raise DatabaseUnavailableError(describe_failure(settings, error)) from error
    except BaseException:
        await engine.dispose()
        raise
    finally:
        engine.sync_engine.echo = echo
    if announce:
        logger.info("Connected to %s (profile %s)", settings.safe_url, settings.profile)
    # Objects stay readable after commit: responses are serialised from them.
    transactional = engine.execution_options(isolation_level=_transaction_isolation(settings))
    sessionmaker = async_sessionmaker(transactional, expire_on_commit=False)
    read_sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    return Database(
        engine=engine,
        sessionmaker=sessionmaker,
        read_sessionmaker=read_sessionmaker,
        begin=transactional.begin,
        connect=engine.connect,
        driver=partial(pooled_driver, engine),
        capacity=settings.pool.capacity,
        max_waiting=pool_max_waiting(settings),
        stats=stats,
        name=settings.name,
        autocommit=_default_isolation(settings) == "AUTOCOMMIT",
    )


def _default_isolation(settings: DatabaseConfig) -> str:
    # Autocommit spares a lone SELECT (and a ping) its BEGIN and COMMIT; writes get
    # transactions from the sessionmaker. PgBouncer needs every statement in one.
    if settings.pooler is Pooler.PGBOUNCER:
        return _transaction_isolation(settings)
    return "AUTOCOMMIT"


def _transaction_isolation(settings: DatabaseConfig) -> str:
    # PostgreSQL's default level; SQLite knows no READ COMMITTED.
    return "SERIALIZABLE" if settings.uses_dev_sqlite else "READ COMMITTED"


async def close_db(database: Database) -> None:
    """Close every pooled connection; the engine cannot be used afterwards."""
    await database.engine.dispose()


async def wait_for_database(settings: DatabaseConfig, *, announce: bool = True) -> None:
    """Try to reach the database a bounded number of times, backing off in between."""
    # A local file that cannot be opened will not open a moment later either.
    attempts = 1 if settings.uses_dev_sqlite else settings.connect_retries + 1
    delay = settings.connect_retry_delay
    for attempt in range(1, attempts + 1):
        try:
            database = await init_db(settings, announce=announce)
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


def describe_failure(settings: DatabaseConfig, error: BaseException) -> str:
    """Say in one line, without the password, which database failed and why."""
    return f"cannot use the database at {settings.safe_url}: {failure_reason(error)}"


def failure_reason(error: BaseException) -> str:
    """The first line of what the driver said, without SQLAlchemy's wrapping."""
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


@asynccontextmanager
async def connect_once(settings: DatabaseConfig) -> AsyncIterator[AsyncConnection]:
    """Open one short-lived connection, set up like the service's: no pool, no echo."""
    engine = create_async_engine(
        settings.url, poolclass=NullPool, connect_args=connect_args(settings)
    )
    try:
        async with engine.connect() as connection:
            yield connection
    except (OSError, TimeoutError, DBAPIError) as error:
        raise DatabaseUnavailableError(describe_failure(settings, error)) from error
    finally:
        await engine.dispose()


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
    with PoolPlace(database) as place:
        session = database.sessionmaker()
        try:
            # Checks out the connection and begins the transaction in one step.
            await session.connection()
            place.taken()
            yield session
        except BaseException:
            await end_session(session, commit=False)
            raise
        await end_session(session, commit=True)


async def get_read_db(database: DatabaseDep) -> AsyncIterator[AsyncSession]:
    """Give a handler that only reads a session without a transaction around its queries."""
    with PoolPlace(database) as place:
        async with database.read_sessionmaker() as session:
            await session.connection()
            place.taken()
            yield session


async def get_connection(database: DatabaseDep) -> AsyncIterator[AsyncConnection]:
    """Give the request a connection in one transaction, committed before the response is sent."""
    with PoolPlace(database) as place:
        async with database.begin() as connection:
            place.taken()
            yield connection


async def get_read_connection(database: DatabaseDep) -> AsyncIterator[AsyncConnection]:
    """Give a handler that only reads a connection without a transaction around its queries."""
    with PoolPlace(database) as place:
        async with database.connect() as connection:
            place.taken()
            yield connection


# scope="function" runs the commit after the handler returns but before the
# response goes out, so a failing commit becomes an error response, never a 2xx.
SessionDep = Annotated[AsyncSession, Depends(get_db, scope="function")]
# Only for handlers that never write: each query commits on its own.
ReadSessionDep = Annotated[AsyncSession, Depends(get_read_db, scope="function")]
# The same for Core statements on a bare connection: no session to build, for hot paths.
ConnectionDep = Annotated[AsyncConnection, Depends(get_connection, scope="function")]
ReadConnectionDep = Annotated[AsyncConnection, Depends(get_read_connection, scope="function")]
