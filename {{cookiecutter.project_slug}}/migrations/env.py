"""Run migrations with the service's own settings and an async engine."""

import asyncio
from logging.config import fileConfig

from alembic import context
from alembic.util import CommandError
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

# Importing the registered domains registers their tables in Base.metadata, for autogenerate.
from {{ cookiecutter.package_name }} import domains  # noqa: F401
from {{ cookiecutter.package_name }}.infrastructure.config import Settings, load_settings
from {{ cookiecutter.package_name }}.infrastructure.database import (
    connect_args,
    describe_failure,
    failure_reason,
)
from {{ cookiecutter.package_name }}.infrastructure.orm import Base
from {{ cookiecutter.package_name }}.infrastructure.settings_errors import SettingsError

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def migration_settings() -> Settings:
    """The service's settings, with the URL a caller passed in (tests do) if any."""
    url = config.attributes.get("database_url")
    try:
        settings = load_settings() if url is None else load_settings(database_url=str(url))
    except SettingsError as error:
        raise CommandError(str(error)) from None
    if settings.uses_dev_sqlite:
        # The dev SQLite file gets its tables from init_db; migrations are for PostgreSQL.
        raise CommandError("DATABASE_URL is not set; point it at the PostgreSQL to migrate")
    return settings


def run_migrations_offline() -> None:
    """Write the SQL for the migrations instead of running it."""
    context.configure(
        url=migration_settings().url, target_metadata=target_metadata, literal_binds=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations(connection: Connection) -> None:
    """Run the pending migrations in one transaction on `connection`."""
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    """Connect with a throwaway engine, migrate, and dispose of the engine."""
    primary = migration_settings().database_configs()[0]
    # No pool: a migration is one short-lived connection, set up like the service's.
    engine = create_async_engine(
        primary.url, poolclass=pool.NullPool, connect_args=connect_args(primary)
    )
    try:
        # Alembic prints a CommandError as one line; anything else would be a long traceback.
        try:
            connection = await engine.connect()
        except (OSError, TimeoutError, DBAPIError) as error:
            raise CommandError(describe_failure(primary, error)) from None
        try:
            await connection.run_sync(run_migrations)
        except DBAPIError as error:
            raise CommandError(
                f"migrating {primary.safe_url} failed: {failure_reason(error)}"
            ) from None
        finally:
            await connection.close()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
