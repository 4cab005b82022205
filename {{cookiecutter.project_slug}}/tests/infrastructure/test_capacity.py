"""The connection budget: what all workers' pools may open against the server's limit."""

import logging

import pytest
from sqlalchemy import text

from {{ cookiecutter.package_name }}.infrastructure.capacity import ConnectionBudgetError
from {{ cookiecutter.package_name }}.infrastructure.config import (
    DatabaseConfig,
    Settings,
    load_settings,
)
from {{ cookiecutter.package_name }}.infrastructure.database import close_db, init_db
from tests.conftest import connection_count
from tests.infrastructure.test_database_faults import admin_scalar


async def server_budget() -> tuple[int, int]:
    """The server's max_connections, and how many of them are reserved for superusers."""
    rows = await admin_scalar(
        "SELECT array_agg(setting::int ORDER BY name) FROM pg_settings WHERE name IN "
        "('max_connections', 'reserved_connections', 'superuser_reserved_connections')"
    )
    max_connections, *reserved = rows
    return max_connections, sum(reserved)


def budget_settings(
    settings: Settings, *, workers: int, pool_size: int, check: str
) -> DatabaseConfig:
    """The test database for `workers` processes of `pool_size` + 1 connections each."""
    return load_settings(
        _env_file=None,
        database_url=settings.url,
        database_echo=False,
        database_application_name=settings.database_application_name,
        web_concurrency=workers,
        database_pool_size=pool_size,
        database_max_overflow=1,
        database_budget_check=check,
    ).database_configs()[0]


async def test_a_connection_budget_past_the_server_limit_fails_start_up_in_one_line(
    settings: Settings, application_name: str
) -> None:
    max_connections, reserved = await server_budget()
    available = max_connections - reserved
    # Exactly the server's limit is allowed ...
    exactly = budget_settings(settings, workers=1, pool_size=available - 1, check="fail")
    await close_db(await init_db(exactly))
    # ... one connection more is not.
    pool_size = available // 2
    needed = 2 * (pool_size + 1)
    too_many = budget_settings(settings, workers=2, pool_size=pool_size, check="fail")
    with pytest.raises(ConnectionBudgetError) as failure:
        await init_db(too_many)
    message = str(failure.value)
    assert "\n" not in message
    assert f"2 worker(s) x ({pool_size} pool + 1 overflow) = {needed}" in message
    assert f"> {available} available (max_connections {max_connections} - {reserved}" in message
    for remedy in ("DATABASE_POOL_SIZE", "DATABASE_MAX_OVERFLOW", "WEB_CONCURRENCY"):
        assert remedy in message
    assert "DATABASE_BUDGET_CHECK=warn" in message
    assert await connection_count(application_name, expected=0) == 0


@pytest.mark.parametrize(("check", "warnings"), [("warn", 1), ("off", 0)])
async def test_a_connection_budget_past_the_limit_warns_once_or_stays_silent(
    settings: Settings, caplog: pytest.LogCaptureFixture, check: str, warnings: int
) -> None:
    max_connections, _ = await server_budget()
    too_many = budget_settings(settings, workers=2, pool_size=max_connections, check=check)
    with caplog.at_level(logging.DEBUG):
        database = await init_db(too_many)
    try:
        async with database.engine.connect() as connection:
            assert await connection.scalar(text("SELECT 1")) == 1
    finally:
        await close_db(database)
    problems = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(problems) == warnings
    assert all("connection budget exceeded" in record.getMessage() for record in problems)
