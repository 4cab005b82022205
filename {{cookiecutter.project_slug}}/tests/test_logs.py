"""Logging is set up in one place: JSON or console lines on stderr, once, from every logger."""

import json
import logging
import re
from pathlib import Path

import pytest
from sqlalchemy import text

from {{ cookiecutter.package_name }}.infrastructure.config import (
    Settings,
    load_settings,
)
from {{ cookiecutter.package_name }}.infrastructure.database import Database
from {{ cookiecutter.package_name }}.logs import (
    LogFormat,
    LogLevel,
    configure_logging,
    current_request_id,
)
from tests.conftest import in_process_client
from tests.probe import create_probe_app

# LEVEL:, padded, then the request id if there is one, the logger and the message.
CONSOLE_LINE = re.compile(r"(DEBUG|INFO|WARNING|ERROR|CRITICAL): +(\[[^\]]+\] )?[\w.]+: .*")
CONSOLE_ACCESS_LINE = re.compile(
    r"INFO:     \[console-1\] {{ cookiecutter.package_name }}\.access_log: "
    r"GET /probes 200 \d+\.\d ms"
)


async def test_dev_writes_readable_console_lines(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert settings.logs.format is LogFormat.CONSOLE
    app = create_probe_app(settings)
    async with in_process_client(app, lifespan=True) as client:
        await client.get("/probes", headers={"X-Request-ID": "console-1"})
    lines = capsys.readouterr().err.splitlines()
    assert lines, "nothing was logged"
    assert all(CONSOLE_LINE.fullmatch(line) for line in lines), lines
    access = [line for line in lines if ".access_log: " in line]
    assert len(access) == 1
    assert CONSOLE_ACCESS_LINE.fullmatch(access[0]), access


async def test_sql_echo_and_pool_lines_in_dev_carry_the_request_id(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    echoing = settings.model_copy(update={"database_echo": True, "log_level": LogLevel.DEBUG})
    app = create_probe_app(echoing)
    async with in_process_client(app, lifespan=True) as client:
        # An empty pool, so that the request opens a connection and the pool logs it.
        database: Database = app.state.database
        await database.engine.dispose()
        capsys.readouterr()  # start-up lines
        await client.get("/probes/1", headers={"X-Request-ID": "echo-1"})
    output = capsys.readouterr()
    # Each echoed statement is written once, through the one handler, not also to stdout.
    assert output.out == ""
    lines = output.err.splitlines()
    sql = [line for line in lines if "sqlalchemy.engine.Engine: SELECT" in line]
    pool = [line for line in lines if "database: pool: new connection" in line]
    assert len(sql) == 1, output.err
    assert len(pool) == 1, output.err
    assert sql[0].startswith("INFO:     [echo-1] sqlalchemy.engine.Engine: SELECT probe.probes.id")
    assert pool[0].startswith("DEBUG:    [echo-1] {{ cookiecutter.package_name }}.infrastructure.")


def test_configuring_again_replaces_the_handler(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(settings.logs)
    configure_logging(settings.model_copy(update={"log_format": LogFormat.JSON}).logs)
    logging.getLogger("{{ cookiecutter.package_name }}.test").warning("once")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["message"] == "once"


def test_uvicorn_lines_take_the_same_way_and_its_access_log_is_off(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    # As uvicorn's default configuration leaves them, when it is run directly.
    uvicorn_error = logging.getLogger("uvicorn.error")
    uvicorn_error.addHandler(logging.StreamHandler())
    uvicorn_error.propagate = False
    logging.getLogger("uvicorn.access").addHandler(logging.StreamHandler())
    configure_logging(settings.model_copy(update={"log_format": LogFormat.JSON}).logs)
    uvicorn_error.info("Started server process [%d]", 1)
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET / HTTP/1.1" 200')
    entries = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(entry["logger"], entry["message"]) for entry in entries] == [
        ("uvicorn.error", "Started server process [1]")
    ]
    assert not logging.getLogger("uvicorn.access").hasHandlers()


def test_json_lines_hold_extra_fields_and_tracebacks_on_one_line(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(settings.model_copy(update={"log_format": LogFormat.JSON}).logs)
    logger = logging.getLogger("{{ cookiecutter.package_name }}.test")
    try:
        raise ValueError("first line\nsecond line")
    except ValueError:
        logger.exception("failed for %s", "order 7", extra={"order": 7, "where": Path("/x")})
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["level"] == "ERROR"
    assert entry["message"] == "failed for order 7"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    assert entry["order"] == 7
    assert entry["where"] == "/x"
    assert entry["exception"].startswith("Traceback")
    assert "ValueError: first line\nsecond line" in entry["exception"]
    assert "request_id" not in entry


def test_the_log_level_applies_to_the_service_and_uvicorn(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(load_settings(_env_file=None, log_level="debug").logs)
    for name in ("{{ cookiecutter.package_name }}.test", "uvicorn.error", "alembic", "httpx"):
        logging.getLogger(name).debug("debug")
        logging.getLogger(name).info("info")
        logging.getLogger(name).warning("warning")
    configure_logging(load_settings(_env_file=None, log_level="ERROR").logs)
    for name in ("{{ cookiecutter.package_name }}.test", "alembic"):
        logging.getLogger(name).warning("warning")
        logging.getLogger(name).error("error")
    # Other libraries only from WARNING, however verbose the service is.
    assert capsys.readouterr().err.splitlines() == [
        "DEBUG:    {{ cookiecutter.package_name }}.test: debug",
        "INFO:     {{ cookiecutter.package_name }}.test: info",
        "WARNING:  {{ cookiecutter.package_name }}.test: warning",
        "DEBUG:    uvicorn.error: debug",
        "INFO:     uvicorn.error: info",
        "WARNING:  uvicorn.error: warning",
        "WARNING:  alembic: warning",
        "WARNING:  httpx: warning",
        "ERROR:    {{ cookiecutter.package_name }}.test: error",
        "ERROR:    alembic: error",
    ]


async def test_sql_echo_shows_the_statements_sent_and_nothing_that_reads_like_a_failure(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_probe_app(settings.model_copy(update={"database_echo": True}))
    async with in_process_client(app, lifespan=True) as client:
        # Start-up's own checks are not echoed.
        assert "sqlalchemy.engine" not in capsys.readouterr().err
        # A read runs on an autocommit connection, where SQLAlchemy notes a
        # BEGIN and a ROLLBACK that it does not send.
        await client.get("/probes/1", headers={"X-Request-ID": "echo-read"})
        database: Database = app.state.database
        async with database.begin() as connection:
            await connection.execute(text("SELECT 1"))
    echoed = [
        line.split("sqlalchemy.engine.Engine: ", 1)[1]
        for line in capsys.readouterr().err.splitlines()
        if "sqlalchemy.engine.Engine: " in line
    ]
    # Each statement (its parameters on a line of their own, in brackets), and
    # the real transaction's BEGIN and COMMIT; no notes about the DBAPI.
    sql = [message.split()[0] for message in echoed if not message.startswith("[")]
    assert sql == ["SELECT", "BEGIN", "SELECT", "COMMIT"], echoed


def test_the_console_line_takes_the_format_the_team_sets(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    custom = settings.model_copy(update={"log_console_format": "{level} {request_id} | {message}"})
    configure_logging(custom.logs)
    logger = logging.getLogger("{{ cookiecutter.package_name }}.test")
    token = current_request_id.set("fmt-1")
    try:
        logger.warning("inside a request")
    finally:
        current_request_id.reset(token)
    logger.warning("outside one")
    assert capsys.readouterr().err.splitlines() == [
        "WARNING fmt-1 | inside a request",
        "WARNING - | outside one",
    ]
