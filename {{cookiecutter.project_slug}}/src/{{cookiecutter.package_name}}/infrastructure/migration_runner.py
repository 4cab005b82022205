"""Run Alembic's migrations one migrator at a time, each revision bounded in how long it waits.

Called from migrations/env.py, so that `db upgrade` and plain `alembic` get the
same behaviour. Each revision runs in a transaction of its own: PostgreSQL's
transactional DDL leaves nothing of a failed revision behind, the locks one
revision takes are released before the next one starts, and a retry resumes
at the revision that failed instead of starting again from the first.
"""

import asyncio
import logging
import re
from typing import Any, Final

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.util import CommandError
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from {{ cookiecutter.package_name }}.infrastructure.config import DatabaseConfig
from {{ cookiecutter.package_name }}.infrastructure.database import (
    describe_failure,
    failure_reason,
)
from {{ cookiecutter.package_name }}.infrastructure.migration_locks import (
    LockWatcher,
    MigrationLockError,
    lock_watcher,
    take_migrator_lock,
)
from {{ cookiecutter.package_name }}.infrastructure.migration_settings import (
    MigrationSession,
    MigrationSettings,
)

logger = logging.getLogger(__name__)

# PostgreSQL's SQLSTATE for "canceling statement due to lock timeout".
_LOCK_NOT_AVAILABLE: Final = "55P03"
# "-1", "+2", "head-1": a step counted from where the database is, not a fixed revision.
_RELATIVE_TARGET: Final = re.compile(r"[+-]\d+$")
_LONGEST_RETRY_DELAY_SECONDS: Final = 30.0
# Where the first revision this migrator applied started, in Alembic's config.attributes:
# the db commands report from there, since another migrator may have moved the
# database while this one waited for the lock. Absent when it applied nothing.
MIGRATED_FROM: Final = "migrated_from"


def run_migrations_offline(
    settings: MigrationSettings, target_metadata: MetaData, **options: Any
) -> None:
    """Write the SQL of the migrations, as the database would run it, without a database."""
    context.configure(
        dialect_name="postgresql",
        target_metadata=target_metadata,
        literal_binds=True,
        transaction_per_migration=True,
        **options,
    )
    # The same limits as online, so that whoever applies the SQL by hand gets them too.
    context.execute(f"SET lock_timeout = {settings.lock_timeout_ms}")
    context.execute(f"SET statement_timeout = {settings.statement_timeout_ms}")
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online(
    database: DatabaseConfig, settings: MigrationSettings, target_metadata: MetaData, **options: Any
) -> None:
    """Migrate the database on a connection of its own; fail in one line (a CommandError)."""
    session = MigrationSession(database, settings)
    asyncio.run(_run_online(session, target_metadata, options))


async def _run_online(
    session: MigrationSession, target_metadata: MetaData, options: dict[str, Any]
) -> None:
    database = session.database
    # No pool: one connection migrates, another watches what it waits for.
    engine = create_async_engine(
        database.url, poolclass=pool.NullPool, connect_args=session.connect_args()
    )
    try:
        try:
            connection = await engine.connect()
        except (OSError, TimeoutError, DBAPIError) as error:
            raise CommandError(describe_failure(database, error)) from None
        try:
            await _migrate(engine, connection, session, target_metadata, options)
        except MigrationLockError as error:
            raise CommandError(f"migrating {database.safe_url} failed: {error}") from None
        except (OSError, TimeoutError, DBAPIError) as error:
            raise CommandError(
                f"migrating {database.safe_url} failed: {failure_reason(error)}"
            ) from None
        finally:
            await connection.close()
    finally:
        await engine.dispose()


async def _migrate(
    engine: AsyncEngine,
    connection: AsyncConnection,
    session: MigrationSession,
    target_metadata: MetaData,
    options: dict[str, Any],
) -> None:
    settings = session.settings
    pgbouncer = session.through_pgbouncer
    if not pgbouncer:
        # Before anything else: the later migrators then find the database at head.
        await take_migrator_lock(connection, session, transactional=False)
        await connection.commit()
    attempts = settings.lock_retries + 1
    delay = settings.lock_retry_delay_ms / 1000
    applied: list[str] = []
    attributes = context.config.attributes

    def record(step: MigrationInfo) -> None:
        applied.extend(step.destination_revision_ids)
        attributes.setdefault(MIGRATED_FROM, step.source_revision_ids)

    def apply(sync_connection: Connection) -> None:
        context.configure(
            connection=sync_connection,
            target_metadata=target_metadata,
            # Behind PgBouncer the caller's one transaction holds every revision.
            transaction_per_migration=not pgbouncer,
            on_version_apply=lambda **hook: record(hook["step"]),
            **options,
        )
        with context.begin_transaction():
            context.run_migrations()

    async with lock_watcher(engine, session) as watcher:
        for attempt in range(1, attempts + 1):
            try:
                await _attempt(connection, session, watcher, apply)
                return
            except DBAPIError as error:
                if connection.in_transaction():
                    await connection.rollback()
                if _sqlstate(error) != _LOCK_NOT_AVAILABLE:
                    raise
                problem = await _describe_lock_timeout(connection, session, watcher)
                if attempt == attempts:
                    raise CommandError(
                        f"migrating {session.database.safe_url} failed: {problem}, "
                        f"{attempts} times (MIGRATION_LOCK_RETRIES={settings.lock_retries}); "
                        "nothing of that revision was applied"
                    ) from None
                if applied and _is_relative(context.get_context().opts.get("destination_rev")):
                    raise CommandError(
                        f"migrating {session.database.safe_url} stopped: {problem}, after "
                        f"applying {', '.join(applied)}; a relative target would now count from "
                        "there, so name the revision to go to and run the command again"
                    ) from None
                logger.warning(
                    "Attempt %d of %d: %s; retrying in %.1f s", attempt, attempts, problem, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _LONGEST_RETRY_DELAY_SECONDS)


async def _attempt(
    connection: AsyncConnection,
    session: MigrationSession,
    watcher: LockWatcher,
    apply: Any,
) -> None:
    if not session.through_pgbouncer:
        watcher.watch(await connection.scalar(text("SELECT pg_backend_pid()")))
        await connection.commit()
        await connection.run_sync(apply)
        return
    # PgBouncer keeps a client on one server connection only within a transaction:
    # settings, the migrator lock and every revision share one.
    async with connection.begin():
        for statement in session.set_local_statements():
            await connection.execute(text(statement))
        watcher.watch(await connection.scalar(text("SELECT pg_backend_pid()")))
        await take_migrator_lock(connection, session, transactional=True)
        await connection.run_sync(apply)


async def _describe_lock_timeout(
    connection: AsyncConnection, session: MigrationSession, watcher: LockWatcher
) -> str:
    waited = f"waited MIGRATION_LOCK_TIMEOUT_MS={session.settings.lock_timeout_ms} for"
    wait = watcher.last
    current = await connection.run_sync(
        lambda sync: MigrationContext.configure(sync).get_current_heads()
    )
    await connection.rollback()
    at = ", ".join(sorted(current)) or "base"
    if wait is None:
        return f"the revision after {at} {waited} a lock (its holder was not seen)"
    return f"the revision after {at} {waited} {wait.describe()}"


def _sqlstate(error: DBAPIError) -> str | None:
    return getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)


def _is_relative(target: object) -> bool:
    return isinstance(target, str) and bool(_RELATIVE_TARGET.search(target))
