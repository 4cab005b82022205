"""The project's Alembic configuration, found from code, and the revisions it knows."""

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from {{ cookiecutter.package_name }}.infrastructure.config import DatabaseConfig, Settings

# Alembic's own variable for the path of its configuration file.
ALEMBIC_CONFIG_VARIABLE: Final = "ALEMBIC_CONFIG"


class MigrationConfigError(Exception):
    """The project's alembic.ini cannot be found; the message says where it was looked for."""


def find_alembic_ini() -> Path:
    """Return the project's alembic.ini: $ALEMBIC_CONFIG, the source checkout's, or ./."""
    explicit = os.environ.get(ALEMBIC_CONFIG_VARIABLE)
    if explicit:
        if not Path(explicit).is_file():
            raise MigrationConfigError(f"{ALEMBIC_CONFIG_VARIABLE}={explicit!r}: no such file")
        return Path(explicit)
    # The checkout first (src/<package>/infrastructure/ is three levels down):
    # it belongs to this very code, wherever the command runs from. An installed
    # package, as in the container image, has no checkout around it; there the
    # working directory holds alembic.ini (the image's WORKDIR).
    checkout = Path(__file__).resolve().parents[3] / "alembic.ini"
    here = Path.cwd() / "alembic.ini"
    for candidate in (checkout, here):
        if candidate.is_file():
            return candidate
    raise MigrationConfigError(
        f"alembic.ini is not in the working directory {here.parent} (nor in {checkout.parent}, "
        "as in a source checkout); run the command from the project's directory or set "
        f"{ALEMBIC_CONFIG_VARIABLE}=path/to/alembic.ini"
    )


def alembic_config(settings: Settings | DatabaseConfig) -> Config:
    """Alembic's configuration for migrating the database that `settings` point at."""
    # Alembic's own messages to stdout are dropped: the commands print what they did.
    config = Config(find_alembic_ini(), stdout=io.StringIO())
    # migrations/env.py takes this URL instead of reading the environment again,
    # and leaves logging alone: the command line has set it up already.
    config.attributes["database_url"] = settings.url
    config.attributes["configure_logger"] = False
    try:
        ScriptDirectory.from_config(config)
    except CommandError as error:
        # A missing or mistyped script_location: the configuration is wrong, not the database.
        raise MigrationConfigError(f"{config.config_file_name}: {error}") from None
    return config


def head_revisions(config: Config) -> tuple[str, ...]:
    """The revisions the migration scripts end at: one, unless the history has branched."""
    return tuple(ScriptDirectory.from_config(config).get_heads())


async def current_revisions(connection: AsyncConnection) -> tuple[str, ...]:
    """The revisions the database is at; none before its first migration."""

    def read(sync_connection: Connection) -> tuple[str, ...]:
        return tuple(MigrationContext.configure(sync_connection).get_current_heads())

    return await connection.run_sync(read)


def revision_names(revisions: Sequence[str]) -> str:
    """Name the revisions for a message: sorted, or "base" for none."""
    return ", ".join(sorted(revisions)) or "base"
