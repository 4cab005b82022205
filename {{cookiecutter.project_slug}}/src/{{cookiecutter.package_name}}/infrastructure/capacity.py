"""How much the pools may take on: counters, the queue guard, the request limit, the budget.

The policy in one place: each pool serves `capacity` requests at once and lets
`max_waiting` more queue (`PoolPlace` turns away the rest); the service admits
what all its pools can serve and queue (`request_limit`); and the pools of all
workers must fit in the server's max_connections (`check_connection_budget`).
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Self

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection

from {{ cookiecutter.package_name }}.infrastructure.config import DatabaseConfig, Settings
from {{ cookiecutter.package_name }}.infrastructure.pool import BurstPool
from {{ cookiecutter.package_name }}.infrastructure.profiles import BudgetCheck, Pooler
from {{ cookiecutter.package_name }}.logs import BurstReport

if TYPE_CHECKING:
    from {{ cookiecutter.package_name }}.infrastructure.database import Database

logger = logging.getLogger(__name__)

# Bounds (s) of the checkout-wait buckets: an idle pool's instant checkout up to
# the longest pool timeout of the profiles.
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

# Requests that may queue per connection of a busy pool: a queue that drains quickly;
# beyond it a request gets its 503 at once rather than after pool_timeout.
WAITING_PER_CONNECTION: Final = 4


class PoolExhaustedError(PoolTimeoutError):
    """A request got no connection from `database`'s pool: it timed out, or was turned away."""

    def __init__(self, message: str, database: Database) -> None:
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
    # Requests of this process holding a connection, counted by the requests: a request
    # cancelled mid-checkout fires a checkin without a checkout, so pool events drift.
    holding: int = 0
    # Pool timeouts are logged once per burst, not once per request.
    timeout_report: BurstReport = field(default_factory=BurstReport)
    # Checkout waits per CHECKOUT_WAIT_BUCKETS bucket (the last for longer ones) and
    # their sum: plain counters, so recording costs the same whether or not anyone reads.
    checkout_waits: list[int] = field(
        default_factory=lambda: [0] * (len(CHECKOUT_WAIT_BUCKETS) + 1)
    )
    checkout_wait_seconds: float = 0.0
    # Called with each wait too: metrics shared between workers record them as they come.
    checkout_wait_observers: list[Callable[[float], None]] = field(default_factory=list)

    def record_checkout_wait(self, seconds: float) -> None:
        """Count one request that waited `seconds` for its connection."""
        self.checkout_waits[bisect.bisect_left(CHECKOUT_WAIT_BUCKETS, seconds)] += 1
        self.checkout_wait_seconds += seconds
        for observe in self.checkout_wait_observers:
            observe(seconds)

    def record_timeout(self) -> int:
        """Count one request answered 503 for want of a connection; return how many to log now."""
        self.timeouts += 1
        return self.timeout_report.add()


class PoolPlace:
    """One request's place at a pool: in the queue until it has its connection, then holding it.

    Requests take their connection up front, rather than at the first query,
    so that the queue is bounded: beyond max_waiting requests, one more could
    not be served within pool_timeout anyway, and is answered at once. Those
    still taking theirs count too: in a burst they all arrive before any has one.
    """

    __slots__ = ("_database", "_holding", "_started")

    def __init__(self, database: Database) -> None:
        self._database, self._holding = database, False

    def __enter__(self) -> Self:
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


def pool_max_waiting(database: DatabaseConfig) -> int:
    """How many requests may queue for a busy pool before more are turned away at once."""
    if database.max_waiting is not None:
        return database.max_waiting
    return WAITING_PER_CONNECTION * database.pool.capacity


def request_limit(settings: Settings) -> int:
    """How many requests may be in progress at once; more are answered 503 at once."""
    if settings.max_requests_in_flight is not None:
        return settings.max_requests_in_flight
    # What the pools can serve and queue: a request beyond that would find
    # a full queue at its pool anyway (see PoolPlace).
    return sum(
        database.pool.capacity + pool_max_waiting(database)
        for database in settings.database_configs()
    )


class PoolFigures(BaseModel):
    """One connection pool's configuration, live figures and counters since start-up."""

    pool_size: int
    max_overflow: int
    pool_timeout: float
    checked_in: int
    checked_out: int
    overflow: int
    connects: int
    checkouts: int
    invalidations: int
    timeouts: int


def pool_figures(database: Database) -> PoolFigures:
    """Read one database's pool settings, live figures and counters."""
    pool = database.engine.pool
    if not isinstance(pool, BurstPool):
        raise TypeError(f"expected the engine's BurstPool, found {type(pool).__name__}")
    stats = database.stats
    return PoolFigures(
        pool_size=pool.kept,
        max_overflow=pool.burst,
        pool_timeout=pool.timeout(),
        checked_in=pool.checkedin(),
        checked_out=pool.checkedout(),
        overflow=pool.overflow(),
        connects=stats.connects,
        checkouts=stats.checkouts,
        invalidations=stats.invalidations,
        timeouts=stats.timeouts,
    )


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
    server: dict[str, int] = dict(rows.all())
    reserved = server.get("superuser_reserved_connections", 0) + server.get(
        "reserved_connections", 0
    )
    return ConnectionLimit(max_connections=server["max_connections"], reserved=reserved)


def peak_connections(settings: DatabaseConfig) -> int:
    """The most connections the pools of all workers may hold at once."""
    return settings.web_concurrency * settings.pool.capacity


async def check_connection_budget(connection: AsyncConnection, settings: DatabaseConfig) -> None:
    """Compare what all workers' pools may open with what the server accepts."""
    if settings.budget_check is BudgetCheck.OFF:
        return
    if settings.pooler is Pooler.PGBOUNCER:
        # The pools open connections to PgBouncer, which holds far fewer to the
        # server; its own max_client_conn and pool sizes are the limits then.
        logger.info("Connection budget not checked: the service runs behind PgBouncer")
        return
    # Every pool on this server shares its max_connections: the primary's and
    # each extra database's there. The first of them to start checks the sum.
    pools = settings.server_pools
    if pools[0][0] != settings.name:
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
