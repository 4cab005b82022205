"""Settings read from the environment, and what each database is built from."""

import re
from dataclasses import dataclass, field, fields, replace
from typing import Annotated, Any, Final, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from {{ cookiecutter.package_name }} import logs as log_settings
from {{ cookiecutter.package_name }}.infrastructure.database_urls import (
    postgresql_url,
    server_of,
    unsafe_url_problems,
)
from {{ cookiecutter.package_name }}.infrastructure.http_settings import (
    ANY_ORIGIN,
    DEFAULT_MAX_REQUEST_BODY_BYTES,
    HostPatterns,
    Origins,
)
from {{ cookiecutter.package_name }}.infrastructure.profiles import (
    POOL_PROFILES,
    BudgetCheck,
    Pooler,
    PoolSettings,
    Profile,
)
from {{ cookiecutter.package_name }}.infrastructure.settings_errors import settings_error
from {{ cookiecutter.package_name }}.settings import ServiceSettings

# How the service names itself to PostgreSQL (pg_stat_activity.application_name).
SERVICE_NAME: Final = "{{ cookiecutter.project_slug }}"

# Used only by the dev profile when DATABASE_URL is unset, so that a fresh
# checkout starts without a database server.
DEV_SQLITE_URL: Final = "sqlite+aiosqlite:///./{{ cookiecutter.project_slug }}-dev.sqlite3"

# The name of the database DATABASE_URL points at, in health answers and messages.
PRIMARY: Final = "primary"
# Names of extra databases: single words, or words joined by single underscores,
# since "__" separates the name from the setting in DATABASES__<NAME>__<SETTING>.
_DATABASE_NAME: Final = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
{%- if cookiecutter.use_sentry %}
# What Sentry's client accepts: a key, a host and a numeric project id.
_SENTRY_DSN: Final = re.compile(r"https?://[^@/\s]+@[^/\s]+/(?:\S*/)?\d+/?")
{%- endif %}


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
        return SecretStr(postgresql_url(value.get_secret_value(), sqlite_message=sqlite))


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseConfig:
    """One database, resolved: what its engine, budget audit and commands are built from."""

    # PRIMARY, or the extra database's name (DATABASES__<NAME>__URL).
    name: str
    url_variable: str
    # A secret: kept out of repr, shown only as safe_url.
    url: str = field(repr=False)
    pooler: Pooler
    pool: PoolSettings
    # DATABASE_POOL_MAX_WAITING as set; None leaves it to capacity.pool_max_waiting.
    max_waiting: int | None
    uses_dev_sqlite: bool
    # Every pool of the service on this database's server, this one included, in start order.
    server_pools: tuple[tuple[str, PoolSettings], ...] = ()
    # The service's own, the same for every database.
    profile: Profile
    application_name: str
    connect_timeout: float
    connect_retries: int
    connect_retry_delay: float
    budget_check: BudgetCheck
    web_concurrency: int

    @property
    def safe_url(self) -> str:
        """The database URL with its password masked, for messages and logs."""
        return make_url(self.url).render_as_string(hide_password=True)


class Settings(ServiceSettings, BaseSettings):
    """Everything the service reads from its environment (or a `.env` file), yours included."""

    # DATABASES__REPLICA__POOL_SIZE=5 is databases["replica"].pool_size; one split at most
    # below the name, so DATABASES__REPLICA__NO__SUCH is refused as the setting "no__such".
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
    # Empty: no CORS headers at all, so browsers keep other sites' pages out.
    cors_allow_origins: Origins = ()
    cors_allow_credentials: bool = False
    # Empty: any Host header is served.
    trusted_hosts: HostPatterns = ()
    max_request_body_bytes: int = Field(default=DEFAULT_MAX_REQUEST_BODY_BYTES, gt=0)
{%- if cookiecutter.use_sentry %}
    # Where unhandled errors are reported (error_tracking.py); unset or empty: nowhere.
    sentry_dsn: SecretStr | None = None
{%- endif %}
    log_format: log_settings.LogFormat | None = None
    log_level: log_settings.LogLevel | None = None
    log_console_format: Annotated[str, AfterValidator(log_settings.console_format)] | None = None
    databases: dict[Annotated[str, AfterValidator(_valid_database_name)], DatabaseSettings] = {}

    @field_validator("database_url")
    @classmethod
    def _use_async_driver(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        sqlite = (
            "SQLite is only the dev profile's built-in fallback; leave DATABASE_URL unset "
            "to use it, or give a postgresql+asyncpg:// URL"
        )
        return SecretStr(postgresql_url(value.get_secret_value(), sqlite_message=sqlite))

{%- if cookiecutter.use_sentry %}

    @field_validator("sentry_dsn")
    @classmethod
    def _sentry_dsn(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if not _SENTRY_DSN.fullmatch(value.get_secret_value()):
            raise ValueError(
                "not a Sentry DSN; copy it from the Sentry project's Client Keys page "
                "(https://<key>@<host>/<project id>), or leave it empty for no reports"
            )
        return value
{%- endif %}

    @model_validator(mode="after")
    def _refuse_credentials_from_any_origin(self) -> Self:
        if self.cors_allow_credentials and ANY_ORIGIN in self.cors_allow_origins:
            raise ValueError(
                "CORS_ALLOW_ORIGINS=* with CORS_ALLOW_CREDENTIALS=true would let any site call "
                "the service as its signed-in visitors; list the origins instead"
            )
        return self

    @model_validator(mode="after")
    def _require_a_safe_postgresql_outside_dev(self) -> Self:
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
        for database in self.database_configs():
            url = make_url(database.url)
            for problem, remedy in unsafe_url_problems(url, database.url_variable):
                raise ValueError(f"{problem}, refused with DATABASE_PROFILE={profile}; {remedy}")
        return self

    @property
    def allowed_insecurities(self) -> list[str]:
        """What DATABASE_ALLOW_INSECURE=true lets through that this profile would refuse."""
        if not self.database_allow_insecure or self.database_profile is Profile.DEV:
            return []
        return [
            problem
            for database in self.database_configs()
            for problem, _ in unsafe_url_problems(make_url(database.url), database.url_variable)
        ]

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
        values = {
            field.name: getattr(self, f"database_{field.name}") for field in fields(PoolSettings)
        }
        return _pool(self.database_profile, values)

    @property
    def logs(self) -> log_settings.LogSettings:
        """The profile's log defaults with LOG_FORMAT and LOG_LEVEL applied."""
        profile = log_settings.LOG_PROFILES[self.database_profile]
        return log_settings.LogSettings(
            format=self.log_format or profile.format,
            level=self.log_level or profile.level,
            console_format=self.log_console_format,
        )

    @property
    def budget_check(self) -> BudgetCheck:
        """Whether start-up warns or fails when the pools could exceed the server's limit."""
        if self.database_budget_check is not None:
            return self.database_budget_check
        return BudgetCheck.WARN if self.database_profile is Profile.DEV else BudgetCheck.FAIL

    def database_configs(self) -> tuple[DatabaseConfig, ...]:
        """Return what each database is built from: the primary, then the extras by name."""
        configs = [
            self._database_config(
                PRIMARY, self.url, self.database_pooler, self.pool, self.database_pool_max_waiting
            )
        ]
        for name, extra in sorted(self.databases.items()):
            values = {field.name: getattr(extra, field.name) for field in fields(PoolSettings)}
            pool = _pool(self.database_profile, values)
            url = extra.url.get_secret_value()
            configs.append(
                self._database_config(name, url, extra.pooler, pool, extra.pool_max_waiting)
            )
        # Each database's budget audit sums every pool on its server.
        pooled = [config for config in configs if not config.uses_dev_sqlite]
        return tuple(
            replace(
                config,
                server_pools=tuple(
                    (other.name, other.pool)
                    for other in pooled
                    if server_of(other.url) == server_of(config.url)
                ),
            )
            for config in configs
        )

    def _database_config(
        self, name: str, url: str, pooler: Pooler, pool: PoolSettings, max_waiting: int | None
    ) -> DatabaseConfig:
        return DatabaseConfig(
            name=name,
            url_variable="DATABASE_URL" if name == PRIMARY else f"DATABASES__{name.upper()}__URL",
            url=url,
            pooler=pooler,
            pool=pool,
            max_waiting=max_waiting,
            uses_dev_sqlite=name == PRIMARY and self.uses_dev_sqlite,
            profile=self.database_profile,
            application_name=self.database_application_name,
            connect_timeout=self.database_connect_timeout,
            connect_retries=self.database_connect_retries,
            connect_retry_delay=self.database_connect_retry_delay,
            budget_check=self.budget_check,
            web_concurrency=self.web_concurrency,
        )

    @property
    def pool_status_is_public(self) -> bool:
        """Whether /health/pool answers without a token (only in dev without one set)."""
        return self.database_profile is Profile.DEV and self.health_pool_token is None


def _pool(profile: Profile, values: dict[str, Any]) -> PoolSettings:
    # The profile's defaults, with every value that was set explicitly.
    overrides = {name: value for name, value in values.items() if value is not None}
    return replace(POOL_PROFILES[profile], **overrides)


def load_settings(**values: Any) -> Settings:
    """Read the settings, turning validation errors into one line per variable."""
    try:
        return Settings(**values)
    except ValidationError as error:
        raise settings_error(error, DatabaseSettings.model_fields) from None
