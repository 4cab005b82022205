"""The database engine, its sessions and connections, and their lifecycle.

Nothing here connects at import time: `init_db` builds the engine when the
application starts, and `close_db` disposes of it when the application stops.
"""

import asyncio
import bisect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from fastapi import Depends, Request
from sqlalchemy import DateTime, MetaData, event, inspect, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from {{ cookiecutter.package_name }}.infrastructure.config import (
    PRIMARY,
    BudgetCheck,
    Pooler,
    Profile,
    Settings,
)
from {{ cookiecutter.package_name }}.infrastructure.pool import BurstPool
from {{ cookiecutter.package_name }}.logs import BurstReport

logger = logging.getLogger(__name__)

# Stable constraint names, so that migrations can refer to them by name.
NAMING_CONVENTION: Final = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# A connection idle for longer than this is pinged before a request uses it.
PING_AFTER_IDLE_SECONDS: Final = 1.0

# Upper bounds, in seconds, of the buckets that count how long requests
# waited for their connection: from an idle pool's instant checkout to the
# longest pool timeout of the profiles.
CHECKOUT_WAIT_BUCKETS: Final = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

# What brings a database to the migrations' head, for hints.
MIGRATE_COMMAND: Final = "uv run {{ cookiecutter.project_slug }} db upgrade"

# The driver gives up on a statement this long after the server should have
# cancelled it, so a hung connection cannot hold a request forever.
COMMAND_TIMEOUT_MARGIN_SECONDS: Final = 5.0


class Base(DeclarativeBase):
    """Base class of every ORM model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class DatabaseUnavailableError(Exception):
    """The database did not answer; the message is one line and holds no password."""


class PoolExhaustedError(PoolTimeoutError):
    """A request got no connection from `database`'s pool: it timed out, or was turned away."""

    def __init__(self, message: str, database: "Database") -> None:
        super().__init__(message)
        # errors.py reports the exhaustion against this pool, not the primary's.
        self.database = database


class PoolSaturatedError(PoolExhaustedError):
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
    # would blind the guard in _PoolPlace for good.
    holding: int = 0
    # Pool timeouts are logged once per burst, not once per request.
    timeout_report: BurstReport = field(default_factory=BurstReport)
    # How long requests waited for their connection: a count per bucket of
    # CHECKOUT_WAIT_BUCKETS (the last one for longer waits) and the sum. Plain
    # counters rather than a metrics library's histogram, so that recording
    # costs two clock reads and an addition whether or not anything reads them.
    checkout_waits: list[int] = field(
        default_factory=lambda: [0] * (len(CHECKOUT_WAIT_BUCKETS) + 1)
    )
    checkout_wait_seconds: float = 0.0

    def record_checkout_wait(self, seconds: float) -> None:
        """Count one request that waited `seconds` for its connection."""
        self.checkout_waits[bisect.bisect_left(CHECKOUT_WAIT_BUCKETS, seconds)] += 1
        self.checkout_wait_seconds += seconds


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
    capacity: int
    max_waiting: int
    stats: PoolStats = field(default_factory=PoolStats)
    # PRIMARY, or the extra database's name (DATABASES__<NAME>__URL).
    name: str = PRIMARY


def connect_args(settings: Settings) -> dict[str, Any]:
    """What the driver gets with every new connection (migrations use it too)."""
    pool = settings.pool
    args: dict[str, Any] = {"timeout": settings.database_connect_timeout}
    if settings.uses_dev_sqlite:
        return args
    args["server_settings"] = _server_settings(settings)
    if pool.statement_timeout_ms:
        args["command_timeout"] = pool.statement_timeout_ms / 1000 + COMMAND_TIMEOUT_MARGIN_SECONDS
    if settings.database_pooler is Pooler.PGBOUNCER:
        # In transaction mode PgBouncer gives each transaction whichever server
        # connection is free, where a statement prepared through another one
        # does not exist, or exists under the same name: no statement caches,
        # and a name no other client can have chosen.
        args["statement_cache_size"] = 0
        args["prepared_statement_cache_size"] = 0
        args["prepared_statement_name_func"] = _unique_statement_name
    return args


def _unique_statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4().hex}__"


def create_engine(settings: Settings) -> AsyncEngine:
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
        # the pre-ping below rarely has anything to check.
        pool_use_lifo=True,
        echo=pool.echo,
        connect_args=connect_args(settings),
        isolation_level=_default_isolation(settings),
    )
    if pool.pool_pre_ping:
        _ping_idle_connections(engine)
    if settings.uses_dev_sqlite:
        _behave_like_postgresql(engine)
    return engine


def _behave_like_postgresql(engine: AsyncEngine) -> None:
    # SQLite leaves foreign keys unenforced unless each connection asks.
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    event.listen(engine.sync_engine, "connect", on_connect)
    # Every DateTime column of this engine is stored through _ZonedSQLiteDateTime,
    # whatever model or query declares it; PostgreSQL engines are left alone.
    dialect = engine.sync_engine.dialect
    dialect.colspecs = {**dialect.colspecs, DateTime: _ZonedSQLiteDateTime}


class _ZonedSQLiteDateTime(sqlite.DATETIME):
    """SQLite's DATETIME, storing zoned values in UTC and returning them zoned, as timestamptz.

    SQLite stores the wall time and drops the zone; CURRENT_TIMESTAMP is UTC.
    """

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """Write zoned values as their UTC time."""
        store = super().bind_processor(dialect)
        if not self.timezone or store is None:
            return store
        to_text = store

        def process(value: Any) -> Any:
            if isinstance(value, datetime) and value.tzinfo is not None:
                value = value.astimezone(UTC).replace(tzinfo=None)
            return to_text(value)

        return process

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        """Read values back as UTC times."""
        load = super().result_processor(dialect, coltype)
        if not self.timezone or load is None:
            return load
        to_datetime = load

        def process(value: Any) -> Any:
            loaded = to_datetime(value)
            return None if loaded is None else loaded.replace(tzinfo=UTC)

        return process


def _ping_idle_connections(engine: AsyncEngine) -> None:
    # SQLAlchemy's pool_pre_ping costs a round trip (~0.2 ms of CPU here) on
    # every checkout. A connection back from a request less than
    # PING_AFTER_IDLE_SECONDS ago is all but certainly alive, so only idler
    # ones are pinged; if a busy one did die, its first statement fails, the
    # request gets a 503 and SQLAlchemy replaces every older connection.
    def on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("returned_at", 0.0) > PING_AFTER_IDLE_SECONDS:
            try:
                engine.dialect.do_ping(dbapi_connection)
            except Exception as error:
                # The pool discards this connection and draws another.
                raise DisconnectionError(str(error)) from error

    def on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    event.listen(engine.sync_engine, "checkout", on_checkout)
    event.listen(engine.sync_engine, "checkin", on_checkin)


def _server_settings(settings: Settings) -> dict[str, str]:
    pool = settings.pool
    # Sent with every new connection, so no request can run or idle unbounded.
    server_settings = {"application_name": settings.database_application_name}
    if settings.database_pooler is Pooler.PGBOUNCER:
        # PgBouncer refuses these as startup parameters: set them on the role
        # instead (ALTER ROLE ... SET statement_timeout = ..., see README.md).
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


async def init_db(settings: Settings, *, announce: bool = True) -> Database:
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
                await connection.run_sync(_build_dev_schema, settings.safe_url)
            else:
                await check_connection_budget(connection, settings)
                # The migrations are the primary's; an extra database has its own schema.
                primary = settings.database_name == PRIMARY
                if announce and primary and settings.database_profile is Profile.DEV:
                    await _hint_if_behind_migrations(connection, settings)
    except (OSError, TimeoutError, DBAPIError) as error:
        await engine.dispose()
        raise DatabaseUnavailableError(describe_failure(settings, error)) from error
    except BaseException:
        await engine.dispose()
        raise
    finally:
        engine.sync_engine.echo = echo
    if announce:
        logger.info("Connected to %s (profile %s)", settings.safe_url, settings.database_profile)
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
        capacity=settings.pool.capacity,
        max_waiting=settings.pool_max_waiting,
        stats=stats,
        name=settings.database_name,
    )


def _build_dev_schema(connection: Connection, where: str) -> None:
    # Only for the throwaway dev SQLite file; real databases are built by
    # migrations. A file built from older models would answer "no such column"
    # 500s, so it is rebuilt from the models: its rows are lost, the schema fits.
    if inspect(connection).get_table_names():
        changes = _dev_schema_changes(connection)
        if not changes:
            return
        logger.warning(
            "The dev SQLite file %s was built from other models (%s): rebuilt it from the "
            "models, its rows are gone (set DATABASE_URL to keep data across model changes)",
            where,
            ", ".join(changes),
        )
        stale = MetaData()
        stale.reflect(connection)
        stale.drop_all(connection)
    Base.metadata.create_all(connection)


def _dev_schema_changes(connection: Connection) -> list[str]:
    # Imported here: only the dev SQLite start-up compares schemas.
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    # SQLite's column types are loose (it stores any value in any column), so
    # only tables, columns, nullability, keys and indexes count.
    context = MigrationContext.configure(connection, opts={"compare_type": False})
    changes = []
    for diff in compare_metadata(context, Base.metadata):
        # One change per tuple; changes to one column come as a list of them.
        for change in diff if isinstance(diff, list) else [diff]:
            changes.append(f"{change[0]} {_changed_object(change)}")
    return changes


def _changed_object(change: Any) -> str:
    # ("add_table", Table), ("add_column", schema, table, Column),
    # ("modify_nullable", schema, table, column, ...), ("add_fk", ForeignKeyConstraint)...
    if change[0] in {"add_column", "remove_column"}:
        return f"{change[2]}.{change[3].name}"
    if change[0].startswith("modify_"):
        return f"{change[2]}.{change[3]}"
    target = change[1]
    table = getattr(target, "table", None)
    name = getattr(target, "name", None) or type(target).__name__
    return f"{table.name}.{name}" if table is not None and table is not target else str(name)


async def _hint_if_behind_migrations(connection: AsyncConnection, settings: Settings) -> None:
    # Dev on PostgreSQL: the schema is the migrations' to change, never start-up's;
    # after a pull that brought a migration, say so before requests fail on it.
    # Imported here: other profiles never read the migration scripts at start.
    from {{ cookiecutter.package_name }}.infrastructure.migrations import (
        MigrationConfigError,
        alembic_config,
        current_revisions,
        head_revisions,
    )

    try:
        heads = head_revisions(alembic_config(settings))
    except MigrationConfigError:
        return
    current = await current_revisions(connection)
    if set(current) != set(heads):
        logger.warning(
            "%s is at %s, not at the migrations' head %s; run `%s`",
            settings.safe_url,
            ", ".join(current) or "base",
            ", ".join(heads),
            MIGRATE_COMMAND,
        )


def _default_isolation(settings: Settings) -> str:
    # Connections default to autocommit, so a read is one round trip (no
    # BEGIN/COMMIT around a lone SELECT) and a ping sends one ";" rather than
    # BEGIN, ";" and ROLLBACK; writes get a real transaction from the
    # sessionmaker bound to _transaction_isolation. Behind PgBouncer every
    # statement must run inside a transaction, which pins one server
    # connection between preparing a statement and executing it.
    if settings.database_pooler is Pooler.PGBOUNCER:
        return _transaction_isolation(settings)
    return "AUTOCOMMIT"


def _transaction_isolation(settings: Settings) -> str:
    # PostgreSQL's default level; SQLite knows no READ COMMITTED.
    return "SERIALIZABLE" if settings.uses_dev_sqlite else "READ COMMITTED"


async def close_db(database: Database) -> None:
    """Close every pooled connection; the engine cannot be used afterwards."""
    await database.engine.dispose()


@dataclass(frozen=True, slots=True)
class ConnectionLimit:
    """How many connections the server accepts, and how many of them it keeps back."""

    max_connections: int
    reserved: int

    @property
    def available(self) -> int:
        """The connections left for ordinary roles such as the service's."""
        return self.max_connections - self.reserved


async def read_connection_limit(connection: AsyncConnection) -> ConnectionLimit:
    """Read max_connections and the connections the server reserves for special roles."""
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
    return ConnectionLimit(max_connections=server["max_connections"], reserved=reserved)


def peak_connections(settings: Settings) -> int:
    """The most connections the pools of all workers may hold at once."""
    return settings.web_concurrency * settings.pool.capacity


async def check_connection_budget(connection: AsyncConnection, settings: Settings) -> None:
    """Compare what all workers' pools may open with what the server accepts."""
    if settings.budget_check is BudgetCheck.OFF:
        return
    if settings.database_pooler is Pooler.PGBOUNCER:
        # The pools open connections to PgBouncer, which holds far fewer to the
        # server; its own max_client_conn and pool sizes are the limits then.
        logger.info("Connection budget not checked: the service runs behind PgBouncer")
        return
    # Every pool on this server shares its max_connections: the primary's and
    # each extra database's there. The first of them to start checks the sum.
    pools = settings.pools_on_this_server()
    if pools[0][0] != settings.database_name:
        return
    limit = await read_connection_limit(connection)
    workers = settings.web_concurrency
    needed = workers * sum(pool.capacity for _, pool in pools)
    if needed <= limit.available:
        return
    shares = [f"{pool.pool_size} pool + {pool.max_overflow} overflow" for _, pool in pools]
    knobs = "DATABASE_POOL_SIZE, DATABASE_MAX_OVERFLOW"
    if len(pools) > 1:
        shares = [f"{name} {share}" for (name, _), share in zip(pools, shares, strict=True)]
        knobs += " (or the DATABASES__<NAME>__ ones)"
    message = (
        f"connection budget exceeded: {workers} worker(s) x ({', '.join(shares)}) = {needed} > "
        f"{limit.available} available (max_connections {limit.max_connections} - "
        f"{limit.reserved} reserved); lower {knobs} or WEB_CONCURRENCY, raise max_connections, "
        "or put PgBouncer in front"
    )
    if settings.budget_check is BudgetCheck.FAIL:
        raise ConnectionBudgetError(f"{message} (DATABASE_BUDGET_CHECK=warn to start anyway)")
    logger.warning(message)


async def wait_for_database(settings: Settings, *, announce: bool = True) -> None:
    """Try to reach the database a bounded number of times, backing off in between."""
    # A local file that cannot be opened will not open a moment later either.
    attempts = 1 if settings.uses_dev_sqlite else settings.database_connect_retries + 1
    delay = settings.database_connect_retry_delay
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


def describe_failure(settings: Settings, error: BaseException) -> str:
    """Say in one line, without the password, which database failed and why."""
    return f"cannot use the database at {settings.safe_url}: {failure_reason(error)}"


def failure_reason(error: BaseException) -> str:
    """The first line of what the driver said, without SQLAlchemy's wrapping."""
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


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
    with _PoolPlace(database) as place:
        async with session_scope(database) as session:
            await session.connection()
            place.taken()
            yield session


async def get_read_db(database: DatabaseDep) -> AsyncIterator[AsyncSession]:
    """Give a handler that only reads a session without a transaction around its queries."""
    with _PoolPlace(database) as place:
        async with database.read_sessionmaker() as session:
            await session.connection()
            place.taken()
            yield session


async def get_connection(database: DatabaseDep) -> AsyncIterator[AsyncConnection]:
    """Give the request a connection in one transaction, committed before the response is sent."""
    with _PoolPlace(database) as place:
        async with database.begin() as connection:
            place.taken()
            yield connection


async def get_read_connection(database: DatabaseDep) -> AsyncIterator[AsyncConnection]:
    """Give a handler that only reads a connection without a transaction around its queries."""
    with _PoolPlace(database) as place:
        async with database.connect() as connection:
            place.taken()
            yield connection


class _PoolPlace:
    """One request's place at a pool: in the queue until it has its connection, then holding it.

    Requests take their connection up front, rather than at the first query,
    so that the queue is bounded: beyond max_waiting requests, one more could
    not be served within pool_timeout anyway, and is answered at once. Those
    still taking theirs count too: in a burst they all arrive before any has one.
    """

    __slots__ = ("_database", "_holding", "_started")

    def __init__(self, database: Database) -> None:
        self._database, self._holding = database, False

    def __enter__(self) -> "_PoolPlace":
        database, stats = self._database, self._database.stats
        if stats.holding + stats.acquiring >= database.capacity + database.max_waiting:
            raise PoolSaturatedError(
                f"{stats.acquiring} requests already wait for {database.capacity} busy connections",
                database,
            )
        stats.acquiring += 1
        self._started = time.perf_counter()
        return self

    def taken(self) -> None:
        """The request has its connection."""
        stats = self._database.stats
        stats.acquiring -= 1
        stats.record_checkout_wait(time.perf_counter() - self._started)
        stats.holding += 1
        self._holding = True

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: object
    ) -> None:
        stats = self._database.stats
        if self._holding:
            stats.holding -= 1
            return
        stats.acquiring -= 1
        stats.record_checkout_wait(time.perf_counter() - self._started)
        if isinstance(error, PoolTimeoutError) and not isinstance(error, PoolExhaustedError):
            # Timed out waiting for this pool: say which one ran dry.
            raise PoolExhaustedError(str(error), self._database) from error


# scope="function" runs the commit after the handler returns but before the
# response goes out, so a failing commit becomes an error response, never a 2xx.
SessionDep = Annotated[AsyncSession, Depends(get_db, scope="function")]
# Only for handlers that never write: each query commits on its own.
ReadSessionDep = Annotated[AsyncSession, Depends(get_read_db, scope="function")]
# The same for Core statements (select(), insert() ... on tables, text()):
# a bare connection skips building a session, its transaction bookkeeping and
# its identity map, about a fifth of the CPU of a one-row request (measured).
ConnectionDep = Annotated[AsyncConnection, Depends(get_connection, scope="function")]
ReadConnectionDep = Annotated[AsyncConnection, Depends(get_read_connection, scope="function")]
