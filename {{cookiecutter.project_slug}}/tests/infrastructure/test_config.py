"""Settings: profiles pick the pool defaults, variables override them, bad values fail clearly."""

from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.infrastructure.config import (
    DEV_SQLITE_URL,
    POOL_PROFILES,
    PoolSettings,
    Profile,
    SettingsError,
    load_settings,
)

PG_URL = "postgresql+asyncpg://svc:Xq7-not-a-real-pw@db.internal:5432/orders?ssl=require"

# The documented profile table, written out so that a change to POOL_PROFILES
# has to be a deliberate change to this test too.
EXPECTED_PROFILES = {
    "dev": PoolSettings(5, 10, 30, 3600, pool_pre_ping=True, echo=True),
    "prod": PoolSettings(20, 40, 30, 3600, pool_pre_ping=True, echo=False),
    "high-traffic": PoolSettings(50, 100, 10, 1800, pool_pre_ping=True, echo=False),
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
    for other in ("pool_size", "max_overflow", "pool_timeout", "pool_recycle", "echo"):
        if other != field:
            assert getattr(pool, other) == getattr(defaults, other)


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
@pytest.mark.parametrize("url", [None, "sqlite+aiosqlite:///./prod.sqlite3"])
def test_production_profiles_refuse_to_run_without_postgresql(
    monkeypatch: pytest.MonkeyPatch, profile: str, url: str | None
) -> None:
    monkeypatch.setenv("DATABASE_PROFILE", profile)
    if url is not None:
        monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(SettingsError, match=f"DATABASE_PROFILE={profile} needs a PostgreSQL"):
        load_settings(_env_file=None)


def test_the_service_names_itself_to_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(_env_file=None).database_application_name == "{{ cookiecutter.project_slug }}"
    monkeypatch.setenv("DATABASE_APPLICATION_NAME", "orders-worker")
    assert load_settings(_env_file=None).database_application_name == "orders-worker"


def test_a_dotenv_file_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DATABASE_POOL_SIZE=3\n")
    assert load_settings().pool.pool_size == 3
