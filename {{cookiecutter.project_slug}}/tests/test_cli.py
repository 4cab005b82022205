"""`serve` refuses to start in one line per problem, with an exit code that says which kind."""

import asyncio
import importlib
import sqlite3
from contextlib import closing

import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from {{ cookiecutter.package_name }} import cli
from {{ cookiecutter.package_name }}.infrastructure.config import DEV_SQLITE_URL
from tests.conftest import admin_url, connection_count

PASSWORD = "Xq7-cli-not-a-real-pw"


async def max_connections() -> int:
    """The server's max_connections setting."""
    engine = create_async_engine(admin_url(), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return int(await connection.scalar(text("SHOW max_connections")))
    finally:
        await engine.dispose()


def serve(capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, list[str]]:
    """Run `serve` in this process; return its exit code and the lines it wrote to stderr."""
    code = cli.main(["serve", *options])
    output = capsys.readouterr()
    assert output.out == ""
    assert "Traceback" not in output.err
    return code, output.err.splitlines()


@pytest.mark.parametrize(
    ("variable", "value", "explanation"),
    [
        ("DATABASE_POOL_SIZE", "0", "greater than 0"),
        ("PORT", "abc", "valid integer"),
        ("DATABASE_URL", "mysql://svc:pw@db/orders", "not supported"),
    ],
)
def test_an_invalid_variable_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    explanation: str,
) -> None:
    monkeypatch.setenv(variable, value)
    code, lines = serve(capsys)
    assert code == 2
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {variable}")
    assert explanation in lines[0]


def test_every_invalid_value_and_option_gets_its_own_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_POOL_SIZE", "0")
    monkeypatch.setenv("DATABASE_ECHO", "loud")
    # main() turns options into variables; setting them here first puts them back afterwards.
    monkeypatch.setenv("PORT", "8000")
    monkeypatch.setenv("WEB_CONCURRENCY", "1")
    code, lines = serve(capsys, "--port", "abc", "--workers", "0")
    assert code == 2
    assert sorted(line.split("=", 1)[0] for line in lines) == [
        "error: DATABASE_ECHO",
        "error: DATABASE_POOL_SIZE",
        "error: PORT",
        "error: WEB_CONCURRENCY",
    ]


def test_an_unreachable_database_exits_1_after_each_attempt_is_logged(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], unused_tcp_port: int
) -> None:
    monkeypatch.setenv(
        "DATABASE_URL", f"postgresql+asyncpg://svc:{PASSWORD}@127.0.0.1:{unused_tcp_port}/app"
    )
    monkeypatch.setenv("DATABASE_CONNECT_RETRIES", "2")
    monkeypatch.setenv("DATABASE_CONNECT_RETRY_DELAY", "0.05")
    # Twice in one process: the second run must not print its log lines twice.
    for _ in range(2):
        code, lines = serve(capsys)
        assert code == 1
        assert len(lines) == 3, lines
        where = f"postgresql+asyncpg://svc:***@127.0.0.1:{unused_tcp_port}/app"
        for attempt, line in enumerate(lines[:2], start=1):
            assert line.startswith("WARNING:")
            assert f"Attempt {attempt} of 3: cannot use the database at {where}: " in line
        assert lines[2].startswith(f"error: cannot use the database at {where}: ")
        assert all(PASSWORD not in line for line in lines)


def test_an_unreachable_extra_database_exits_1_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    database_url: str,
    application_name: str,
    unused_tcp_port: int,
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATABASE_APPLICATION_NAME", application_name)
    monkeypatch.setenv("DATABASE_CONNECT_RETRIES", "0")
    monkeypatch.setenv("DATABASE_ECHO", "false")
    monkeypatch.setenv(
        "DATABASES__REPLICA__URL", f"postgresql://svc:{PASSWORD}@127.0.0.1:{unused_tcp_port}/app"
    )
    code, lines = serve(capsys)
    assert code == 1
    where = f"postgresql+asyncpg://svc:***@127.0.0.1:{unused_tcp_port}/app"
    assert lines[-1].startswith(
        f"error: DATABASES__REPLICA__URL: cannot use the database at {where}: "
    )
    assert all(PASSWORD not in line for line in lines)
    assert asyncio.run(connection_count(application_name, expected=0)) == 0


def test_a_connection_budget_past_the_server_limit_exits_1_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    database_url: str,
    application_name: str,
) -> None:
    # One worker whose pool alone could take every connection the server has.
    pool_size = asyncio.run(max_connections())
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATABASE_APPLICATION_NAME", application_name)
    monkeypatch.setenv("DATABASE_POOL_SIZE", str(pool_size))
    monkeypatch.setenv("DATABASE_BUDGET_CHECK", "fail")
    monkeypatch.setenv("DATABASE_ECHO", "false")
    code, lines = serve(capsys)
    assert code == 1
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        f"error: connection budget exceeded: 1 worker(s) x ({pool_size} pool + 10 overflow)"
    )
    assert asyncio.run(connection_count(application_name, expected=0)) == 0


def start_and_stop_instead_of_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `serve` build the application as uvicorn would, start it, and stop it at once."""

    def run(app: str, *, factory: bool, **_: object) -> None:
        assert factory
        module, name = app.split(":")
        application: FastAPI = getattr(importlib.import_module(module), name)()

        async def start_and_stop() -> None:
            async with application.router.lifespan_context(application):
                pass

        asyncio.run(start_and_stop())

    monkeypatch.setattr(uvicorn, "run", run)


def test_serve_says_connected_once(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    database_url: str,
    application_name: str,
) -> None:
    start_and_stop_instead_of_serving(monkeypatch)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATABASE_APPLICATION_NAME", application_name)
    monkeypatch.setenv("DATABASE_ECHO", "false")
    code, lines = serve(capsys)
    assert code == 0
    connected = [line for line in lines if "Connected to " in line]
    assert len(connected) == 1, lines


def test_serve_warns_about_what_allowing_insecure_settings_lets_through(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    database_url: str,
    application_name: str,
) -> None:
    if make_url(database_url).password:
        pytest.skip("TEST_DATABASE_URL has a password; the prod profile refuses only a missing one")
    start_and_stop_instead_of_serving(monkeypatch)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATABASE_APPLICATION_NAME", application_name)
    monkeypatch.setenv("DATABASE_PROFILE", "prod")
    monkeypatch.setenv("DATABASE_POOL_SIZE", "2")
    monkeypatch.setenv("DATABASE_MAX_OVERFLOW", "0")
    monkeypatch.setenv("LOG_FORMAT", "console")
    monkeypatch.setenv("DATABASE_ALLOW_INSECURE", "false")
    refused, lines = serve(capsys)
    assert (refused, len(lines)) == (2, 1), lines
    monkeypatch.setenv("DATABASE_ALLOW_INSECURE", "true")
    code, lines = serve(capsys)
    assert code == 0
    warnings = [line for line in lines if "DATABASE_ALLOW_INSECURE" in line]
    assert warnings == [
        "WARNING:  {{ cookiecutter.package_name }}.main: DATABASE_ALLOW_INSECURE=true lets "
        "through what DATABASE_PROFILE=prod refuses: DATABASE_URL has an empty or placeholder "
        "password"
    ], lines


@pytest.mark.usefixtures("model_probes")
def test_serve_brings_a_stale_dev_sqlite_file_up_to_date_before_any_worker_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_url(DEV_SQLITE_URL).database
    assert path is not None
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE model_probes (id INTEGER PRIMARY KEY, name VARCHAR(200))")
    columns_when_serving: list[str] = []

    def run(_app: str, **_: object) -> None:
        with closing(sqlite3.connect(path)) as connection:
            query = "SELECT name FROM pragma_table_info('model_probes')"
            rows = connection.execute(query).fetchall()
        columns_when_serving.extend(name for (name,) in rows)

    monkeypatch.setattr(uvicorn, "run", run)
    monkeypatch.setenv("DATABASE_ECHO", "false")
    code, lines = serve(capsys)
    assert code == 0
    assert "description" in columns_when_serving
    rebuilt = [line for line in lines if "built from other models" in line]
    assert len(rebuilt) == 1, lines
