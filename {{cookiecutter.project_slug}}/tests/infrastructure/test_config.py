"""Settings: profiles pick the pool defaults, variables override them, bad values fail clearly."""

from dataclasses import fields, replace
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.infrastructure.config import DEV_SQLITE_URL, load_settings
from {{ cookiecutter.package_name }}.infrastructure.profiles import (
    POOL_PROFILES,
    BudgetCheck,
    Pooler,
    PoolSettings,
    Profile,
)
from {{ cookiecutter.package_name }}.infrastructure.settings_errors import SettingsError
from {{ cookiecutter.package_name }}.logs import LOG_PROFILES, LogFormat, LogLevel

PG_URL = "postgresql+asyncpg://svc:Xq7-not-a-real-pw@db.internal:5432/orders?ssl=require"

# The documented profile table, written out so that a change to POOL_PROFILES
# has to be a deliberate change to this test too.
EXPECTED_PROFILES = {
    "dev": PoolSettings(5, 10, 30, 3600, True, True, 60_000, 120_000),
    "prod": PoolSettings(20, 40, 30, 3600, True, False, 15_000, 30_000),
    "high-traffic": PoolSettings(50, 100, 10, 1800, True, False, 5_000, 10_000),
}


@pytest.mark.parametrize(("profile", "expected"), EXPECTED_PROFILES.items())
def test_each_profile_yields_its_row(
    monkeypatch: pytest.MonkeyPatch, profile: str, expected: PoolSettings
) -> None:
    monkeypatch.setenv("DATABASE_PROFILE", profile)
    monkeypatch.setenv("DATABASE_URL", PG_URL)
    settings = load_settings(_env_file=None)
    assert settings.database_profile == Profile(profile)
    assert settings.pool == expected == POOL_PROFILES[Profile(profile)]


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("DATABASE_POOL_SIZE", "7", "pool_size", 7),
        ("DATABASE_MAX_OVERFLOW", "0", "max_overflow", 0),
        ("DATABASE_POOL_TIMEOUT", "2.5", "pool_timeout", 2.5),
        ("DATABASE_POOL_RECYCLE", "600", "pool_recycle", 600),
        ("DATABASE_POOL_PRE_PING", "false", "pool_pre_ping", False),
        ("DATABASE_ECHO", "true", "echo", True),
        ("DATABASE_STATEMENT_TIMEOUT_MS", "250", "statement_timeout_ms", 250),
        ("DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS", "0", "idle_in_transaction_timeout_ms", 0),
    ],
)
@pytest.mark.parametrize("profile", ["prod", "high-traffic"])
def test_an_explicit_variable_overrides_only_its_value(
    monkeypatch: pytest.MonkeyPatch,
    profile: str,
    variable: str,
    value: str,
    field: str,
    expected: object,
) -> None:
    monkeypatch.setenv("DATABASE_PROFILE", profile)
    monkeypatch.setenv("DATABASE_URL", PG_URL)
    monkeypatch.setenv(variable, value)
    pool = load_settings(_env_file=None).pool
    defaults = POOL_PROFILES[Profile(profile)]
    assert getattr(pool, field) == expected
    for other in fields(PoolSettings):
        if other.name != field:
            assert getattr(pool, other.name) == getattr(defaults, other.name)


@pytest.mark.parametrize(
    ("variable", "value", "explanation"),
    [
        ("DATABASE_PROFILE", "staging", "'dev', 'prod' or 'high-traffic'"),
        ("DATABASE_POOL_SIZE", "0", "greater than 0"),
        ("DATABASE_POOL_SIZE", "-3", "greater than 0"),
        ("DATABASE_POOL_SIZE", "ten", "valid integer"),
        ("DATABASE_MAX_OVERFLOW", "-1", "greater than or equal to 0"),
        ("DATABASE_POOL_TIMEOUT", "0", "greater than 0"),
        ("DATABASE_POOL_TIMEOUT", "soon", "valid number"),
        ("DATABASE_POOL_RECYCLE", "-1", "greater than 0"),
        ("DATABASE_POOL_PRE_PING", "maybe", "valid boolean"),
        ("DATABASE_ECHO", "2", "valid boolean"),
        ("DATABASE_CONNECT_RETRIES", "-1", "greater than or equal to 0"),
        ("DATABASE_APPLICATION_NAME", "x" * 64, "at most 63 characters"),
        ("DATABASE_STATEMENT_TIMEOUT_MS", "-5", "greater than or equal to 0"),
        ("DATABASE_BUDGET_CHECK", "strict", "'warn', 'fail' or 'off'"),
        ("DATABASE_ALLOW_INSECURE", "perhaps", "valid boolean"),
        ("WEB_CONCURRENCY", "0", "greater than 0"),
        ("WEB_CONCURRENCY", "two", "valid integer"),
        ("PORT", "http", "valid integer"),
        ("PORT", "70000", "less than or equal to 65535"),
        ("DATABASE_POOL_MAX_WAITING", "-1", "greater than or equal to 0"),
        ("GRACEFUL_SHUTDOWN_TIMEOUT", "0", "greater than 0"),
        ("MAX_REQUESTS_IN_FLIGHT", "0", "greater than 0"),
        ("MAX_REQUESTS_IN_FLIGHT", "many", "valid integer"),
        ("LOG_FORMAT", "xml", "Input should be 'json' or 'console'"),
        ("LOG_LEVEL", "loud", "Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
        ("CORS_ALLOW_ORIGINS", "app.example.com", "'app.example.com' is not an origin"),
        ("CORS_ALLOW_ORIGINS", "ftp://files.example.com", "is not an origin"),
        ("CORS_ALLOW_ORIGINS", "https://*.example.com", "is not an origin"),
        ("CORS_ALLOW_ORIGINS", "https://user:pw@app.example.com", "is not an origin"),
        ("CORS_ALLOW_ORIGINS", "https://app.example.com:99999", "is not an origin"),
        ("CORS_ALLOW_ORIGINS", '["https://app.example.com"]', "comma-separated list"),
        ("CORS_ALLOW_ORIGINS", "*,https://app.example.com", "give '*' alone"),
        ("TRUSTED_HOSTS", "https://api.example.com", "is not a host name"),
        ("TRUSTED_HOSTS", "api.example.com:443", "without scheme or port"),
        ("TRUSTED_HOSTS", "api.*.example.com", "is not a host name"),
        ("TRUSTED_HOSTS", "*", "leave TRUSTED_HOSTS empty"),
        ("MAX_REQUEST_BODY_BYTES", "0", "greater than 0"),
        ("MAX_REQUEST_BODY_BYTES", "1MB", "valid integer"),
        ("LOG_CONSOLE_FORMAT", "{lvl} {message}", "unknown field(s) 'lvl'"),
        ("LOG_CONSOLE_FORMAT", "{message", "not a format string"),
        ("LOG_CONSOLE_FORMAT", "{level:zz}", "not a format string"),
    ],
)
def test_an_invalid_value_fails_in_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, explanation: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as failure:
        load_settings(_env_file=None)
    message = str(failure.value)
    assert "\n" not in message
    assert message.startswith(f"{variable}={value!r}: ")
    assert explanation in message


def test_every_invalid_value_gets_its_own_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_POOL_SIZE", "0")
    monkeypatch.setenv("DATABASE_ECHO", "loud")
    with pytest.raises(SettingsError) as failure:
        load_settings(_env_file=None)
    lines = str(failure.value).splitlines()
    assert [line.split("=", 1)[0] for line in lines] == ["DATABASE_POOL_SIZE", "DATABASE_ECHO"]


@pytest.mark.parametrize(
    "given",
    [
        "postgresql://svc:pw@db:5432/orders",
        "postgres://svc:pw@db:5432/orders",
        "postgresql+asyncpg://svc:pw@db:5432/orders",
    ],
)
def test_postgresql_urls_use_asyncpg(monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    monkeypatch.setenv("DATABASE_URL", given)
    assert load_settings(_env_file=None).url == "postgresql+asyncpg://svc:pw@db:5432/orders"


@pytest.mark.parametrize(
    "given", ["mysql://svc:Xq7-not-a-real-pw@db/orders", "not a url Xq7-not-a-real-pw"]
)
def test_an_unusable_url_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", given)
    with pytest.raises(SettingsError, match=r"^DATABASE_URL: ") as failure:
        load_settings(_env_file=None)
    assert "Xq7-not-a-real-pw" not in str(failure.value)


def test_the_password_never_shows_in_repr_or_safe_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", PG_URL)
    settings = load_settings(_env_file=None)
    for shown in (repr(settings), str(settings), settings.safe_url, str(settings.model_dump())):
        assert "Xq7-not-a-real-pw" not in shown
    assert "db.internal:5432/orders" in settings.safe_url


def test_dev_without_url_falls_back_to_sqlite() -> None:
    settings = load_settings(_env_file=None)
    assert settings.uses_dev_sqlite
    assert settings.url == DEV_SQLITE_URL


@pytest.mark.parametrize("profile", ["prod", "high-traffic"])
def test_production_profiles_refuse_to_run_without_postgresql(
    monkeypatch: pytest.MonkeyPatch, profile: str
) -> None:
    monkeypatch.setenv("DATABASE_PROFILE", profile)
    with pytest.raises(SettingsError, match=f"DATABASE_PROFILE={profile} needs a PostgreSQL"):
        load_settings(_env_file=None)


def test_sqlite_is_only_the_dev_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite+aiosqlite:///./service.sqlite3")
    with pytest.raises(SettingsError, match=r"^DATABASE_URL: SQLite is only the dev profile"):
        load_settings(_env_file=None)


def test_the_service_names_itself_to_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    default = load_settings(_env_file=None).database_application_name
    assert default == "{{ cookiecutter.project_slug }}"
    monkeypatch.setenv("DATABASE_APPLICATION_NAME", "orders-worker")
    assert load_settings(_env_file=None).database_application_name == "orders-worker"


def test_a_dotenv_file_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DATABASE_POOL_SIZE=3\n")
    assert load_settings().pool.pool_size == 3


@pytest.mark.parametrize("password", ["", "postgres", "changeme"])
@pytest.mark.parametrize("profile", ["prod", "high-traffic"])
def test_production_profiles_refuse_a_placeholder_password(
    monkeypatch: pytest.MonkeyPatch, profile: str, password: str
) -> None:
    monkeypatch.setenv("DATABASE_PROFILE", profile)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://svc:{password}@127.0.0.1/orders")
    with pytest.raises(SettingsError, match="empty or placeholder password") as failure:
        load_settings(_env_file=None)
    assert "DATABASE_ALLOW_INSECURE=true" in str(failure.value)


@pytest.mark.parametrize("profile", ["prod", "high-traffic"])
def test_production_profiles_refuse_a_remote_server_without_tls(
    monkeypatch: pytest.MonkeyPatch, profile: str
) -> None:
    monkeypatch.setenv("DATABASE_PROFILE", profile)
    monkeypatch.setenv("DATABASE_URL", "postgresql://svc:Xq7-not-a-real-pw@db.internal/orders")
    with pytest.raises(SettingsError, match=r"reaches db\.internal without TLS") as failure:
        load_settings(_env_file=None)
    assert "Xq7-not-a-real-pw" not in str(failure.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://svc:postgres@db.internal/orders",
        "postgresql://svc@127.0.0.1/orders",
    ],
)
def test_insecure_urls_run_when_explicitly_allowed(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("DATABASE_PROFILE", "prod")
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("DATABASE_ALLOW_INSECURE", "true")
    assert load_settings(_env_file=None).database_profile is Profile.PROD


@pytest.mark.parametrize("url", [PG_URL, "postgresql://svc:Xq7-real@127.0.0.1:5432/orders"])
def test_production_accepts_tls_or_a_local_server(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("DATABASE_PROFILE", "prod")
    monkeypatch.setenv("DATABASE_URL", url)
    assert load_settings(_env_file=None).url.startswith("postgresql+asyncpg://")


@pytest.mark.parametrize(
    ("profile", "expected"),
    [("dev", BudgetCheck.WARN), ("prod", BudgetCheck.FAIL), ("high-traffic", BudgetCheck.FAIL)],
)
def test_the_budget_check_is_strict_outside_dev(
    monkeypatch: pytest.MonkeyPatch, profile: str, expected: BudgetCheck
) -> None:
    monkeypatch.setenv("DATABASE_PROFILE", profile)
    monkeypatch.setenv("DATABASE_URL", PG_URL)
    assert load_settings(_env_file=None).budget_check is expected
    monkeypatch.setenv("DATABASE_BUDGET_CHECK", "off")
    assert load_settings(_env_file=None).budget_check is BudgetCheck.OFF


def test_a_bad_token_value_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEALTH_POOL_TOKEN", "Xq7-token")
    monkeypatch.setenv("DATABASE_POOL_SIZE", "0")
    settings_error = pytest.raises(SettingsError)
    with settings_error as failure:
        load_settings(_env_file=None)
    assert "Xq7-token" not in str(failure.value)
    monkeypatch.delenv("DATABASE_POOL_SIZE")
    assert "Xq7-token" not in repr(load_settings(_env_file=None))


def test_an_extra_database_takes_its_own_pool_values_and_the_profile_for_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_PROFILE", "prod")
    monkeypatch.setenv("DATABASE_URL", PG_URL)
    monkeypatch.setenv("DATABASE_POOL_SIZE", "33")
    monkeypatch.setenv("DATABASES__REPLICA__URL", PG_URL.replace("db.internal", "replica.internal"))
    monkeypatch.setenv("DATABASES__REPLICA__MAX_OVERFLOW", "7")
    monkeypatch.setenv("DATABASES__REPLICA__POOLER", "pgbouncer")
    settings = load_settings(_env_file=None)
    _, replica = settings.database_configs()
    assert replica.name == "replica"
    assert replica.safe_url.startswith("postgresql+asyncpg://svc:***@replica.internal:5432/")
    # Its own value; the profile's, not the primary's DATABASE_POOL_SIZE, for the rest.
    assert replica.pool == replace(POOL_PROFILES[Profile.PROD], max_overflow=7)
    assert replica.pooler is Pooler.PGBOUNCER
    assert settings.pool.pool_size == 33
    assert settings.database_pooler is Pooler.NONE


def test_database_names_are_case_insensitive_like_every_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASES__Replica__URL", PG_URL)
    monkeypatch.setenv("databases__replica__pool_size", "3")
    settings = load_settings(_env_file=None)
    assert list(settings.databases) == ["replica"]
    assert settings.database_configs()[1].pool.pool_size == 3


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (
            {"DATABASES__REPLICA__POOL_SIZE": "0"},
            "DATABASES__REPLICA__POOL_SIZE='0': Input should be greater than 0",
        ),
        (
            {"DATABASES__REPLICA__POOL_PRE_PING": "maybe"},
            "DATABASES__REPLICA__POOL_PRE_PING='maybe': Input should be a valid boolean",
        ),
        (
            {"DATABASES__REPLICA__POOLER": "pgpool"},
            "DATABASES__REPLICA__POOLER='pgpool': Input should be 'none' or 'pgbouncer'",
        ),
        (
            {"DATABASES__REPLICA__POOLSIZE": "3"},
            "DATABASES__REPLICA__POOLSIZE: not a setting of an extra database; expected one of "
            "URL, POOLER, POOL_SIZE,",
        ),
        (
            {"DATABASES__REPLICA__URL": ""},
            "DATABASES__REPLICA__URL: is empty",
        ),
        (
            {"DATABASES__REPLICA__URL": "sqlite+aiosqlite:///./replica.sqlite3"},
            "DATABASES__REPLICA__URL: SQLite is not supported",
        ),
        (
            {"DATABASES__REPLICA": "postgresql://svc:pw@db/orders"},
            "DATABASES__REPLICA: not a setting; use DATABASES__REPLICA__URL",
        ),
        (
            {"DATABASES__READ-ONLY__URL": PG_URL},
            "DATABASES__READ-ONLY__*: not a database name",
        ),
        (
            {"DATABASES__PRIMARY__URL": PG_URL},
            "DATABASES__PRIMARY__*: not a database name",
        ),
    ],
)
def test_a_bad_extra_database_variable_fails_in_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], expected: str
) -> None:
    for variable, value in variables.items():
        monkeypatch.setenv(variable, value)
    if "DATABASES__REPLICA__URL" not in variables and "DATABASES__REPLICA" not in variables:
        monkeypatch.setenv("DATABASES__REPLICA__URL", PG_URL)
    with pytest.raises(SettingsError) as failure:
        load_settings(_env_file=None)
    message = str(failure.value)
    assert "\n" not in message
    assert message.startswith(expected)


def test_an_extra_database_without_a_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASES__ANALYTICS__POOL_SIZE", "2")
    with pytest.raises(SettingsError) as failure:
        load_settings(_env_file=None)
    assert str(failure.value) == (
        "DATABASES__ANALYTICS__URL: required once any other DATABASES__ANALYTICS__* variable is set"
    )


@pytest.mark.parametrize(
    "variable", ["DATABASES__REPLICA__URL", "DATABASES__REPLICA__URI", "DATABASES__REPLICA"]
)
def test_an_extra_database_url_is_never_echoed(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "mysql://svc:Xq7-not-a-real-pw@db/orders")
    with pytest.raises(SettingsError) as failure:
        load_settings(_env_file=None)
    assert f"{variable}: " in str(failure.value)
    assert "Xq7-not-a-real-pw" not in str(failure.value)


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        ("postgresql://svc:postgres@127.0.0.1/orders", "has an empty or placeholder password"),
        ("postgresql://svc:Xq7-not-a-real-pw@replica.internal/orders", "reaches replica.internal"),
    ],
)
def test_production_profiles_hold_extra_databases_to_the_same_rules(
    monkeypatch: pytest.MonkeyPatch, url: str, refusal: str
) -> None:
    monkeypatch.setenv("DATABASE_PROFILE", "prod")
    monkeypatch.setenv("DATABASE_URL", PG_URL)
    monkeypatch.setenv("DATABASES__REPLICA__URL", url)
    with pytest.raises(SettingsError) as failure:
        load_settings(_env_file=None)
    assert str(failure.value).startswith(f"DATABASES__REPLICA__URL {refusal}")
    assert "Xq7-not-a-real-pw" not in str(failure.value)


def test_extra_databases_are_read_from_the_dotenv_file_and_never_shown(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        f"DATABASES__REPLICA__URL={PG_URL}\nDATABASES__REPLICA__POOL_SIZE=4\n"
    )
    settings = load_settings()
    _, replica = settings.database_configs()
    assert replica.pool.pool_size == 4
    for shown in (repr(settings), str(settings.model_dump()), repr(replica), replica.safe_url):
        assert "Xq7-not-a-real-pw" not in shown


def test_every_profile_has_log_defaults() -> None:
    # logs.py keys them by the profiles' names, as it imports nothing of config.py.
    assert set(LOG_PROFILES) == set(Profile)


@pytest.mark.parametrize(
    ("profile", "expected"),
    [("dev", LogFormat.CONSOLE), ("prod", LogFormat.JSON), ("high-traffic", LogFormat.JSON)],
)
def test_logs_are_json_outside_dev_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch, profile: str, expected: LogFormat
) -> None:
    monkeypatch.setenv("DATABASE_PROFILE", profile)
    monkeypatch.setenv("DATABASE_URL", PG_URL)
    assert load_settings(_env_file=None).logs.format is expected
    assert load_settings(_env_file=None).logs.level is LogLevel.INFO
    monkeypatch.setenv("LOG_FORMAT", "console" if expected is LogFormat.JSON else "json")
    monkeypatch.setenv("LOG_LEVEL", "warning")
    logs = load_settings(_env_file=None).logs
    assert logs.format is not expected
    assert logs.level is LogLevel.WARNING
