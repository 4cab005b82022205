"""Settings read from the environment, and the pool profiles they pick defaults from."""

from dataclasses import dataclass, fields, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


class Profile(StrEnum):
    """A deployment shape; it picks the pool defaults."""

    DEV = "dev"
    PROD = "prod"
    HIGH_TRAFFIC = "high-traffic"


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """How the engine's connection pool is sized and maintained."""

    pool_size: int
    max_overflow: int
    pool_timeout: float
    pool_recycle: int
    pool_pre_ping: bool
    echo: bool


POOL_PROFILES: Final = MappingProxyType(
    {
        Profile.DEV: PoolSettings(
            pool_size=5,
            max_overflow=10,
            pool_timeout=30,
            pool_recycle=3600,
            pool_pre_ping=True,
            echo=True,
        ),
        Profile.PROD: PoolSettings(
            pool_size=20,
            max_overflow=40,
            pool_timeout=30,
            pool_recycle=3600,
            pool_pre_ping=True,
            echo=False,
        ),
        Profile.HIGH_TRAFFIC: PoolSettings(
            pool_size=50,
            max_overflow=100,
            pool_timeout=10,
            pool_recycle=1800,
            pool_pre_ping=True,
            echo=False,
        ),
    }
)

# How the service names itself to PostgreSQL (pg_stat_activity.application_name).
SERVICE_NAME: Final = "{{ cookiecutter.project_slug }}"

# Used only by the dev profile when DATABASE_URL is unset, so that a fresh
# checkout starts without a database server.
DEV_SQLITE_URL: Final = "sqlite+aiosqlite:///./{{ cookiecutter.project_slug }}-dev.sqlite3"

_DRIVERS: Final = {
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}


class SettingsError(Exception):
    """The environment holds values the service cannot start with; one line per value."""


class Settings(BaseSettings):
    """Everything the service reads from its environment (or a `.env` file)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    database_url: SecretStr | None = None
    database_profile: Profile = Profile.DEV
    database_pool_size: int | None = Field(default=None, gt=0)
    database_max_overflow: int | None = Field(default=None, ge=0)
    database_pool_timeout: float | None = Field(default=None, gt=0)
    database_pool_recycle: int | None = Field(default=None, gt=0)
    database_pool_pre_ping: bool | None = None
    database_echo: bool | None = None
    database_application_name: str = Field(default=SERVICE_NAME, min_length=1, max_length=63)
    database_connect_timeout: float = Field(default=5, gt=0)
    database_connect_retries: int = Field(default=5, ge=0)
    database_connect_retry_delay: float = Field(default=0.5, ge=0)

    @field_validator("database_url")
    @classmethod
    def _use_async_driver(cls, value: SecretStr | None) -> SecretStr | None:
        # The message never includes the URL: it may hold a password.
        if value is None or not value.get_secret_value():
            return None
        try:
            url = make_url(value.get_secret_value())
        except ArgumentError:
            raise ValueError(
                "not a database URL; expected postgresql+asyncpg://user:password@host:5432/name"
            ) from None
        driver = _DRIVERS.get(url.drivername)
        if driver is None:
            raise ValueError(
                f"driver {url.drivername!r} is not supported; use postgresql+asyncpg:// "
                "(postgresql:// is accepted and switched to asyncpg)"
            )
        return SecretStr(url.set(drivername=driver).render_as_string(hide_password=False))

    @model_validator(mode="after")
    def _require_postgresql_outside_dev(self) -> "Settings":
        if self.database_profile is not Profile.DEV and not self.url.startswith("postgresql"):
            raise ValueError(
                f"DATABASE_PROFILE={self.database_profile} needs a PostgreSQL DATABASE_URL "
                "(postgresql+asyncpg://user:password@host:5432/name); "
                "only the dev profile may fall back to SQLite"
            )
        return self

    @property
    def url(self) -> str:
        """The database URL to connect to; a secret, never log it."""
        if self.database_url is None:
            return DEV_SQLITE_URL
        return self.database_url.get_secret_value()

    @property
    def safe_url(self) -> str:
        """The database URL with its password masked, for messages and logs."""
        return make_url(self.url).render_as_string(hide_password=True)

    @property
    def uses_dev_sqlite(self) -> bool:
        """Whether the service falls back to the local SQLite file."""
        return self.database_url is None

    @property
    def pool(self) -> PoolSettings:
        """The profile's pool defaults with every explicitly set value applied."""
        overrides = {
            field.name: value
            for field in fields(PoolSettings)
            if (value := getattr(self, f"database_{field.name}")) is not None
        }
        return replace(POOL_PROFILES[self.database_profile], **overrides)


def load_settings(**values: Any) -> Settings:
    """Read the settings, turning validation errors into one line per variable."""
    try:
        return Settings(**values)
    except ValidationError as error:
        raise SettingsError("\n".join(_describe(problem) for problem in error.errors())) from None


def _describe(problem: Any) -> str:
    message = str(problem["msg"]).removeprefix("Value error, ")
    if not problem["loc"]:
        return message
    variable = str(problem["loc"][0]).upper()
    if variable == "DATABASE_URL" or not isinstance(problem["input"], str | int | float):
        return f"{variable}: {message}"
    return f"{variable}={problem['input']!r}: {message}"
