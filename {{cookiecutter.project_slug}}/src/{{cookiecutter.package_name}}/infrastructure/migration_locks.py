"""Who a migration waits for: the migrator lock between runs, and table locks within one."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from {{ cookiecutter.package_name }}.infrastructure.migration_settings import (
    MigrationSession,
    migrator_lock_key,
)

logger = logging.getLogger(__name__)

# How often a waiting migrator says whom it waits for.
WAITING_LOG_INTERVAL_SECONDS: Final = 10.0
# How often a waiting migrator asks for the lock again.
_LOCK_POLL_SECONDS: Final = 0.25

_ADVISORY_HOLDERS: Final = text(
    """
    SELECT a.pid, a.application_name, a.state,
           extract(epoch FROM now() - a.backend_start)::float8 AS seconds
    FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.classid::bigint = :high AND l.objid::bigint = :low
    """
)

# What the backend `pid` waits for, and who holds it: pg_blocking_pids names them.
_LOCK_WAIT: Final = text(
    """
    SELECT coalesce(w.relation::regclass::text, w.locktype) AS target, w.mode,
           b.pid, b.application_name, b.state,
           extract(epoch FROM now() - coalesce(b.xact_start, b.backend_start))::float8
               AS seconds
    FROM pg_locks AS w
    CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS blocker(pid)
    JOIN pg_stat_activity AS b ON b.pid = blocker.pid
    WHERE w.pid = :pid AND NOT w.granted
    ORDER BY b.pid
    """
)


class MigrationLockError(Exception):
    """Another migrator held the lock for longer than this one may wait; the message names it."""


def describe_backend(row: Any, held: str) -> str:
    """Name a server process in one phrase: its pid, name, state and age."""
    name = row.application_name or "no application_name"
    return f"pid {row.pid} ({name}, {row.state or 'state unknown'}, {held} {row.seconds:.0f} s)"


async def advisory_lock_holders(connection: AsyncConnection, key: int) -> list[str]:
    """The sessions holding the migrator lock `key` on this database, described."""
    rows = await connection.execute(_ADVISORY_HOLDERS, {"high": key >> 32, "low": key & 0xFFFFFFFF})
    return [describe_backend(row, "connected for") for row in rows]


async def take_migrator_lock(
    connection: AsyncConnection, session: MigrationSession, *, transactional: bool
) -> None:
    """Take the service's advisory lock, waiting a bounded time while another migrator holds it.

    Session-level, so that it outlives each revision's transaction; transactional
    behind PgBouncer, where a session lock would stay on a pooled server connection.
    """
    function = "pg_try_advisory_xact_lock" if transactional else "pg_try_advisory_lock"
    statement = text(f"SELECT {function}(:key)")
    key = migrator_lock_key()
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + session.settings.wait_timeout_ms / 1000
    next_log = started
    while not await connection.scalar(statement, {"key": key}):
        now = loop.time()
        holders = ", ".join(await advisory_lock_holders(connection, key)) or "a session now gone"
        if now >= deadline:
            raise MigrationLockError(
                f"another migration held the migration lock for all of "
                f"MIGRATION_WAIT_TIMEOUT_MS={session.settings.wait_timeout_ms}: {holders}"
            )
        if now >= next_log:
            logger.info("Waiting for another migration to finish: %s", holders)
            next_log = now + WAITING_LOG_INTERVAL_SECONDS
        await asyncio.sleep(_LOCK_POLL_SECONDS)


@dataclass(frozen=True, slots=True)
class LockWait:
    """A lock the migration waited for, and the sessions that held it."""

    target: str
    mode: str
    holders: tuple[str, ...]

    def describe(self) -> str:
        """Say in one phrase what was waited for and who held it."""
        holders = ", ".join(self.holders) or "a session that has since ended"
        return f"{self.mode} on {self.target}, held by {holders}"


class LockWatcher:
    """Watches a migration's server process and remembers the last lock it waited for.

    lock_timeout cancels the wait without saying for what; by then pg_locks no
    longer shows it, so the wait is read while it lasts, from another connection.
    """

    def __init__(self, connection: AsyncConnection, interval: float) -> None:
        self._connection = connection
        self._interval = interval
        self.pid: int | None = None
        self.last: LockWait | None = None

    def watch(self, pid: int) -> None:
        """Watch the server process `pid` and forget what was seen before."""
        self.pid, self.last = pid, None

    async def run(self) -> None:
        """Read the watched process's lock wait until cancelled."""
        while True:
            if self.pid is not None:
                rows = list(await self._connection.execute(_LOCK_WAIT, {"pid": self.pid}))
                if rows:
                    holders = tuple(describe_backend(row, "transaction open for") for row in rows)
                    self.last = LockWait(rows[0].target, rows[0].mode, holders)
            await asyncio.sleep(self._interval)


@asynccontextmanager
async def lock_watcher(
    engine: AsyncEngine, session: MigrationSession
) -> AsyncIterator[LockWatcher]:
    """Run a LockWatcher on a connection of its own for as long as the block lasts."""
    # Several looks within one lock timeout, so that a short wait is still seen.
    interval = min(0.2, session.settings.lock_timeout_ms / 5000)
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        watcher = LockWatcher(connection, interval)
        task = asyncio.create_task(watcher.run())
        try:
            yield watcher
        finally:
            task.cancel()
            # Only a message is lost if the watcher failed: the migration's own error counts.
            with suppress(asyncio.CancelledError, SQLAlchemyError, OSError):
                await task
