"""Settings read from the environment, and the pool profiles they pick defaults from."""

import re
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from {{ cookiecutter.package_name }}.infrastructure.settings_errors import settings_error
from {{ cookiecutter.package_name }}.logs import LOG_PROFILES, LogFormat, LogLevel, LogSettings


class Profile(StrEnum):
    """A deployment shape; it picks the pool defaults."""

    DEV = "dev"
    PROD = "prod"
    HIGH_TRAFFIC = "high-traffic"


class BudgetCheck(StrEnum):
    """What to do when the pools of all workers could exceed the server's connections."""

    WARN = "warn"
    FAIL = "fail"
    OFF = "off"


class Pooler(StrEnum):
    """What stands between the service and PostgreSQL."""

    NONE = "none"
    PGBOUNCER = "pgbouncer"


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """How the engine's connection pool is sized and maintained."""

    pool_size: int
    max_overflow: int
    pool_timeout: float
    pool_recycle: int
    pool_pre_ping: bool
    echo: bool
    # Server-side limits on how long one connection may be kept busy (0: none).
    statement_timeout_ms: int
    idle_in_transaction_timeout_ms: int

    @property
    def capacity(self) -> int:
        """The most connections the pool holds at once: pool_size + max_overflow."""
        return self.pool_size + self.max_overflow


POOL_PROFILES: Final = MappingProxyType(
    {
        Profile.DEV: PoolSettings(
            pool_size=5,
            max_overflow=10,
            pool_timeout=30,
            pool_recycle=3600,
            pool_pre_ping=True,
            echo=True,
            statement_timeout_ms=60_000,
            idle_in_transaction_timeout_ms=120_000,
        ),
        Profile.PROD: PoolSettings(
            pool_size=20,
            max_overflow=40,
            pool_timeout=30,
            pool_recycle=3600,
            pool_pre_ping=True,
            echo=False,
            statement_timeout_ms=15_000,
            idle_in_transaction_timeout_ms=30_000,
        ),
        Profile.HIGH_TRAFFIC: PoolSettings(
            pool_size=50,
            max_overflow=100,
            pool_timeout=10,
            pool_recycle=1800,
            pool_pre_ping=True,
            echo=False,
            statement_timeout_ms=5_000,
            idle_in_transaction_timeout_ms=10_000,
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
}
_PLACEHOLDER_PASSWORDS: Final = frozenset(
    {"", "postgres", "password", "changeme", "change-me", "secret", "admin", "example"}
)
_LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})
_TLS_MODES: Final = frozenset({"require", "verify-ca", "verify-full"})
# The name of the database DATABASE_URL points at, in health answers and messages.
PRIMARY: Final = "primary"
# Names of extra databases: single words, or words joined by single underscores,
# since "__" separates the name from the setting in DATABASES__<NAME>__<SETTING>.
_DATABASE_NAME: Final = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")


def _valid_database_name(name: str) -> str:
    if name == PRIMARY or not _DATABASE_NAME.fullmatch(name):
        raise ValueError(
            "not a database name: use lowercase letters, digits and single underscores, "
            f"starting with a letter ({PRIMARY!r} is taken by DATABASE_URL)"
        )
    return name


class DatabaseSettings(BaseModel):
    """An extra database, from DATABASES__<NAME>__URL and the same pool variables."""

    # A misspelt variable is refused rather than silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: SecretStr
    pooler: Pooler = Pooler.NONE
    # Unset values come from the profile, not from the primary's DATABASE_*:
    # a replica or an analytics database rarely wants the primary's pool.
    pool_size: int | None = Field(default=None, gt=0)
    max_overflow: int | None = Field(default=None, ge=0)
    pool_timeout: float | None = Field(default=None, gt=0)
    pool_recycle: int | None = Field(default=None, gt=0)
    pool_pre_ping: bool | None = None
    echo: bool | None = None
    statement_timeout_ms: int | None = Field(default=None, ge=0)
    idle_in_transaction_timeout_ms: int | None = Field(default=None, ge=0)
    pool_max_waiting: int | None = Field(default=None, ge=0)

    @field_validator("url")
    @classmethod
    def _use_async_driver(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("is empty; set it, or unset every variable of this database")
        sqlite = "SQLite is not supported for an extra database; give a postgresql+asyncpg:// URL"
        return SecretStr(_postgresql_url(value.get_secret_value(), sqlite_message=sqlite))


class Settings(BaseSettings):
    """Everything the service reads from its environment (or a `.env` file)."""

    # DATABASES__REPLICA__POOL_SIZE=5 becomes databases["replica"].pool_size;
    # one split at most below the name, so that DATABASES__REPLICA__NO__SUCH
    # is refused as the misspelt setting "no__such" (names are lowercased).
    model_config = SettingsConfigDict(
        env_file=".env",
        extra="ignore",
        frozen=True,
        env_nested_delimiter="__",
        env_nested_max_split=2,
    )

    database_url: SecretStr | None = None
    database_profile: Profile = Profile.DEV
    database_pool_size: int | None = Field(default=None, gt=0)
    database_max_overflow: int | None = Field(default=None, ge=0)
    database_pool_timeout: float | None = Field(default=None, gt=0)
    database_pool_recycle: int | None = Field(default=None, gt=0)
    database_pool_pre_ping: bool | None = None
    database_echo: bool | None = None
    database_statement_timeout_ms: int | None = Field(default=None, ge=0)
    database_idle_in_transaction_timeout_ms: int | None = Field(default=None, ge=0)
    database_application_name: str = Field(default=SERVICE_NAME, min_length=1, max_length=63)
    database_connect_timeout: float = Field(default=5, gt=0)
    database_connect_retries: int = Field(default=5, ge=0)
    database_connect_retry_delay: float = Field(default=0.5, ge=0)
    database_pool_max_waiting: int | None = Field(default=None, ge=0)
    database_budget_check: BudgetCheck | None = None
    database_pooler: Pooler = Pooler.NONE
    database_allow_insecure: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    web_concurrency: int = Field(default=1, gt=0)
    # Longer than the prod profile's statement timeout, so that a request in
    # flight at SIGTERM finishes or is cancelled by PostgreSQL first.
    graceful_shutdown_timeout: int = Field(default=20, gt=0)
    max_requests_in_flight: int | None = Field(default=None, gt=0)
    health_pool_token: SecretStr | None = None
    log_format: LogFormat | None = None
    log_level: LogLevel | None = None
    databases: dict[Annotated[str, AfterValidator(_valid_database_name)], DatabaseSettings] = {}

    # Which database this copy of the settings describes: the primary, or an
    # extra one as seen through for_database (and the settings it came from).
    _database_name: str = PrivateAttr(default=PRIMARY)
    _service: "Settings | None" = PrivateAttr(default=None)

    @field_validator("database_url")
    @classmethod
    def _use_async_driver(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        sqlite = (
            "SQLite is only the dev profile's built-in fallback; leave DATABASE_URL unset "
            "to use it, or give a postgresql+asyncpg:// URL"
        )
        return SecretStr(_postgresql_url(value.get_secret_value(), sqlite_message=sqlite))

    @model_validator(mode="after")
    def _require_a_safe_postgresql_outside_dev(self) -> "Settings":
        profile = self.database_profile
        if profile is Profile.DEV:
            return self
        if self.uses_dev_sqlite:
            raise ValueError(
                f"DATABASE_PROFILE={profile} needs a PostgreSQL DATABASE_URL "
                "(postgresql+asyncpg://user:password@host:5432/name); "
                "only the dev profile may fall back to SQLite"
            )
        if self.database_allow_insecure:
            return self
        for view in (self, *self.extra_databases()):
            _refuse_unsafe_url(make_url(view.url), view.url_variable, profile)
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

    @property
    def logs(self) -> LogSettings:
        """The profile's log defaults with LOG_FORMAT and LOG_LEVEL applied."""
        profile = LOG_PROFILES[self.database_profile]
        return LogSettings(
            format=self.log_format or profile.format, level=self.log_level or profile.level
        )

    @property
    def budget_check(self) -> BudgetCheck:
        """Whether start-up warns or fails when the pools could exceed the server's limit."""
        if self.database_budget_check is not None:
            return self.database_budget_check
        return BudgetCheck.WARN if self.database_profile is Profile.DEV else BudgetCheck.FAIL

    @property
    def database_name(self) -> str:
        """The name of the database these settings describe (PRIMARY for DATABASE_URL)."""
        return self._database_name

    @property
    def url_variable(self) -> str:
        """The variable that holds this database's URL, to name it in messages."""
        if self._database_name == PRIMARY:
            return "DATABASE_URL"
        return f"DATABASES__{self._database_name.upper()}__URL"

    def for_database(self, name: str) -> "Settings":
        """Return the settings the extra database `name` is built with.

        Its URL, pooler and pool values replace the primary's, so that every
        engine is built, checked and guarded by the same code; the rest (the
        profile, timeouts to connect, the application name) is the service's.
        """
        service = self._service or self
        database = service.databases[name]
        pool = {f"database_{key}": value for key, value in database if key != "url"}
        view = service.model_copy(update={"database_url": database.url, **pool})
        view._database_name, view._service = name, service
        return view

    def extra_databases(self) -> "list[Settings]":
        """Return the settings of every extra database, in a stable order."""
        service = self._service or self
        return [service.for_database(name) for name in sorted(service.databases)]

    def pools_on_this_server(self) -> "list[tuple[str, PoolSettings]]":
        """Return every pool of the service that connects to this database's server."""
        service = self._service or self
        server = _server(self.url)
        return [
            (view.database_name, view.pool)
            for view in (service, *service.extra_databases())
            if not view.uses_dev_sqlite and _server(view.url) == server
        ]

    @property
    def pool_status_is_public(self) -> bool:
        """Whether /health/pool answers without a token (only in dev without one set)."""
        return self.database_profile is Profile.DEV and self.health_pool_token is None


def _postgresql_url(raw: str, *, sqlite_message: str) -> str:
    # The messages never include the URL: it may hold a password.
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ValueError(
            "not a database URL; expected postgresql+asyncpg://user:password@host:5432/name"
        ) from None
    if url.drivername.startswith("sqlite"):
        raise ValueError(sqlite_message)
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        raise ValueError(
            f"driver {url.drivername!r} is not supported; use postgresql+asyncpg:// "
            "(postgresql:// is accepted and switched to asyncpg)"
        )
    return url.set(drivername=driver).render_as_string(hide_password=False)


def _refuse_unsafe_url(url: URL, variable: str, profile: Profile) -> None:
    if (url.password or "") in _PLACEHOLDER_PASSWORDS:
        raise ValueError(
            f"{variable} has an empty or placeholder password, refused with "
            f"DATABASE_PROFILE={profile}; use a real secret "
            "(or DATABASE_ALLOW_INSECURE=true for a local trial)"
        )
    if not _is_local(url) and not _uses_tls(url):
        raise ValueError(
            f"{variable} reaches {url.host} without TLS, refused with "
            f"DATABASE_PROFILE={profile}; add ?ssl=require "
            "(or DATABASE_ALLOW_INSECURE=true on a private network)"
        )


def _server(url: str) -> tuple[str | None, int]:
    # Pools reaching one host and port share its max_connections, whichever
    # database they use there.
    parsed = make_url(url)
    return parsed.host, parsed.port or 5432


def _is_local(url: URL) -> bool:
    return url.host is None or url.host in _LOCAL_HOSTS or url.host.startswith("/")


def _uses_tls(url: URL) -> bool:
    return any(url.query.get(key) in _TLS_MODES for key in ("ssl", "sslmode"))


def load_settings(**values: Any) -> Settings:
    """Read the settings, turning validation errors into one line per variable."""
    try:
        return Settings(**values)
    except ValidationError as error:
        raise settings_error(error, DatabaseSettings.model_fields) from None
