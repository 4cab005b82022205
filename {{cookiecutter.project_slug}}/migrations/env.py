"""Run migrations with the service's own settings, one migrator at a time (see migration_runner)."""

from logging.config import fileConfig

from alembic import context
from alembic.util import CommandError

# Importing the registered domains registers their tables in Base.metadata, for autogenerate.
from {{ cookiecutter.package_name }} import domains  # noqa: F401
from {{ cookiecutter.package_name }}.infrastructure.config import DatabaseConfig, load_settings
from {{ cookiecutter.package_name }}.infrastructure.migration_runner import (
    run_migrations_offline,
    run_migrations_online,
)
from {{ cookiecutter.package_name }}.infrastructure.migration_settings import (
    MigrationSettings,
    MigrationSettingsError,
    load_migration_settings,
)
from {{ cookiecutter.package_name }}.infrastructure.orm import Base
from {{ cookiecutter.package_name }}.infrastructure.settings_errors import SettingsError

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def migration_settings() -> MigrationSettings:
    """The MIGRATION_* settings: lock and statement timeouts, retries, the wait for a migrator."""
    try:
        return load_migration_settings()
    except MigrationSettingsError as error:
        # Alembic prints a CommandError as one line; anything else would be a long traceback.
        raise CommandError(str(error).replace("\n", "; ")) from None


def primary_database() -> DatabaseConfig:
    """The database to migrate: the service's, or the URL a caller passed in (tests do)."""
    url = config.attributes.get("database_url")
    try:
        settings = load_settings() if url is None else load_settings(database_url=str(url))
    except SettingsError as error:
        raise CommandError(str(error).replace("\n", "; ")) from None
    if settings.uses_dev_sqlite:
        # The dev SQLite file gets its tables from init_db; migrations are for PostgreSQL.
        raise CommandError("DATABASE_URL is not set; point it at the PostgreSQL to migrate")
    return settings.database_configs()[0]


if context.is_offline_mode():
    # The SQL only: no database, so `make lint` can check it anywhere.
    run_migrations_offline(migration_settings(), target_metadata)
else:
    run_migrations_online(primary_database(), migration_settings(), target_metadata)
