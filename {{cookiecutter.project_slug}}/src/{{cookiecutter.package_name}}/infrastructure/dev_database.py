"""What only development needs: SQLite made to store like PostgreSQL, and schema warnings.

The dev SQLite file is built from the models, and rebuilt when they change; a dev
PostgreSQL database is the migrations' to change, so a start only says when it lags.
"""

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import DateTime, MetaData, event, inspect
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from {{ cookiecutter.package_name }}.infrastructure.config import DatabaseConfig
from {{ cookiecutter.package_name }}.infrastructure.orm import Base

logger = logging.getLogger(__name__)

# What brings a database to the migrations' head, for hints.
MIGRATE_COMMAND: Final = "uv run {{ cookiecutter.project_slug }} db upgrade"


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


def behave_like_postgresql(engine: AsyncEngine) -> None:
    """Make the dev SQLite engine enforce foreign keys and keep timestamps zoned, as PostgreSQL."""

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


def build_dev_schema(connection: Connection, where: str) -> None:
    """Create the dev SQLite file's tables from the models; rebuild them if the models changed."""
    # A file built from older models would answer "no such column" 500s, so it
    # is rebuilt from the models: its rows are lost, the schema fits.
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
    changes: list[str] = []
    for diff in compare_metadata(context, Base.metadata):
        # One change per tuple; changes to one column come as a list of them.
        changes.extend(
            f"{change[0]} {_changed_object(change)}"
            for change in (diff if isinstance(diff, list) else [diff])
        )
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


async def hint_if_behind_migrations(connection: AsyncConnection, settings: DatabaseConfig) -> None:
    """Warn when a dev PostgreSQL database lags the migrations, before requests fail on it."""
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
