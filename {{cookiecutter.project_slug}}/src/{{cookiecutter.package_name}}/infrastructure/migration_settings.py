"""How migrations connect: timeouts, retries and a name of their own, never the app's profile."""

import hashlib
from dataclasses import dataclass
from typing import Any, Final

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from {{ cookiecutter.package_name }}.infrastructure.config import SERVICE_NAME, DatabaseConfig
from {{ cookiecutter.package_name }}.infrastructure.database import connect_args
from {{ cookiecutter.package_name }}.infrastructure.profiles import Pooler
from {{ cookiecutter.package_name }}.infrastructure.settings_errors import settings_error

# pg_stat_activity tells a migration from the service by this name.
MIGRATION_APPLICATION_NAME: Final = f"{SERVICE_NAME}-migrations"[:63]

# The driver gives up this long after the server should have cancelled a statement.
_COMMAND_TIMEOUT_MARGIN_SECONDS: Final = 5.0


def migrator_lock_key() -> int:
    """The advisory lock key of this service's migrators: fixed, and no other service's."""
    digest = hashlib.sha256(MIGRATION_APPLICATION_NAME.encode()).digest()
    # 62 bits: a positive bigint, so pg_locks' two 32-bit halves read back simply.
    return int.from_bytes(digest[:8], "big") >> 2


class MigrationSettings(BaseSettings):
    """The MIGRATION_* variables: how long a migration may wait, and for what."""

    model_config = SettingsConfigDict(
        env_prefix="MIGRATION_", env_file=".env", extra="ignore", frozen=True
    )

    # Waiting longer for a table lock queues every reader of the table behind the migration.
    lock_timeout_ms: int = Field(default=3000, gt=0)
    lock_retries: int = Field(default=5, ge=0)
    # Before the first retry, doubling after each: the service's reads go through meanwhile.
    lock_retry_delay_ms: int = Field(default=1000, ge=0)
    # 0: no limit; an index build or a backfill takes as long as it takes.
    statement_timeout_ms: int = Field(default=0, ge=0)
    # How long to wait for another migrator (another replica, a deploy job) to finish.
    wait_timeout_ms: int = Field(default=600_000, gt=0)


def load_migration_settings(**values: Any) -> MigrationSettings:
    """Read the MIGRATION_* variables, turning validation errors into one line per variable."""
    try:
        return MigrationSettings(**values)
    except ValidationError as error:
        # The names pydantic reports lack the prefix the variables have.
        lines = str(settings_error(error, ())).splitlines()
        raise MigrationSettingsError("\n".join(f"MIGRATION_{line}" for line in lines)) from None


class MigrationSettingsError(Exception):
    """A MIGRATION_* variable holds a value migrations cannot run with; one line per value."""


@dataclass(frozen=True, slots=True)
class MigrationSession:
    """What a migration connection is set up with, and the lock that serialises migrators."""

    database: DatabaseConfig
    settings: MigrationSettings

    @property
    def through_pgbouncer(self) -> bool:
        """Whether each transaction may land on another server connection."""
        return self.database.pooler is Pooler.PGBOUNCER

    def server_settings(self) -> dict[str, str]:
        """The session's settings, replacing the profile's timeouts and application name."""
        return {
            "application_name": MIGRATION_APPLICATION_NAME,
            "lock_timeout": str(self.settings.lock_timeout_ms),
            "statement_timeout": str(self.settings.statement_timeout_ms),
            # A migration holds its transaction while Python works between statements.
            "idle_in_transaction_session_timeout": "0",
        }

    def set_local_statements(self) -> list[str]:
        """The same settings for one transaction, where startup settings are refused."""
        return [
            f"SET LOCAL {name} = {int(value)}"
            for name, value in self.server_settings().items()
            if name != "application_name"
        ]

    def connect_args(self) -> dict[str, Any]:
        """What the driver gets for a migration connection: the service's, minus its timeouts."""
        args = connect_args(self.database)
        statement_timeout = self.settings.statement_timeout_ms
        # No driver-side limit unless the server has one too.
        args["command_timeout"] = (
            statement_timeout / 1000 + _COMMAND_TIMEOUT_MARGIN_SECONDS
            if statement_timeout
            else None
        )
        # PgBouncer refuses settings at connect time; SET LOCAL applies them per transaction.
        args["server_settings"] = (
            {"application_name": MIGRATION_APPLICATION_NAME}
            if self.through_pgbouncer
            else self.server_settings()
        )
        return args
