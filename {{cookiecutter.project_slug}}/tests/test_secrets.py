"""Secrets stay secret: the password is in no log, response or error; the pool status is guarded."""

import json
import logging
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url

from {{ cookiecutter.package_name }}.infrastructure.config import (
    Settings,
    load_settings,
)
from {{ cookiecutter.package_name }}.infrastructure.database import (
    DatabaseUnavailableError,
    SessionDep,
    init_db,
)
from {{ cookiecutter.package_name }}.logs import LogFormat
from tests.conftest import in_process_client
from tests.probe import create_probe_app

# The test server trusts local connections, so any password gets in; this one is
# distinctive enough that finding it anywhere means it leaked.
PASSWORD = "Xq7-pw-7c1e9b-do-not-log"
TOKEN = "Xq7-pool-token-3f8a"
ECHOING_LOGGERS = ("sqlalchemy.engine", "sqlalchemy.engine.Engine", "sqlalchemy.pool")


@pytest.fixture
def settings_with_password(database_url: str, application_name: str) -> Settings:
    """The test settings with a password in the URL and every SQL statement echoed."""
    url = make_url(database_url).set(password=PASSWORD)
    return load_settings(
        _env_file=None,
        database_url=url.render_as_string(hide_password=False),
        database_echo=True,
        database_application_name=application_name,
    )


@pytest.fixture
def everything_logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture every record at DEBUG, and remove the stdout handler that echo adds."""
    handlers = {name: list(logging.getLogger(name).handlers) for name in ECHOING_LOGGERS}
    caplog.set_level(logging.DEBUG)
    for name in (*ECHOING_LOGGERS, "{{ cookiecutter.package_name }}"):
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog
    for name, kept in handlers.items():
        logging.getLogger(name).handlers[:] = kept


def add_failing_routes(app: FastAPI) -> None:
    """A bug in Python and a bug in SQL, each answered with a 500."""

    async def crash() -> None:
        raise RuntimeError("handler bug")

    async def broken_sql(session: SessionDep) -> None:
        await session.execute(text("SELECT no_such_column FROM probe.probes"))

    app.add_api_route("/test/crash", crash)
    app.add_api_route("/test/broken-sql", broken_sql)


@pytest.mark.parametrize("log_format", list(LogFormat))
async def test_the_database_password_shows_nowhere(
    settings_with_password: Settings,
    everything_logged: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    unused_tcp_port: int,
    log_format: LogFormat,
) -> None:
    app = create_probe_app(settings_with_password.model_copy(update={"log_format": log_format}))
    add_failing_routes(app)
    async with in_process_client(app, lifespan=True) as client:
        created = await client.post("/probes", json={"name": "Secretive", "price": "1"})
        item = f"/probes/{created.json()['id']}"
        responses = [
            created,
            await client.get(item),
            await client.get("/probes"),
            await client.get("/probes/2000000000"),
            await client.post("/probes", json={"name": "", "price": "-1"}),
            await client.get("/test/crash"),
            await client.get("/test/broken-sql"),
            await client.get("/health/ready"),
            await client.get("/health/pool"),
            await client.delete(item),
        ]
    assert [response.status_code for response in responses] == [
        201, 200, 200, 404, 422, 500, 500, 200, 200, 204,
    ]  # fmt: skip
    for response in responses:
        assert PASSWORD not in response.text
        assert PASSWORD not in str(response.headers)

    unreachable = make_url(settings_with_password.url).set(port=unused_tcp_port)
    with pytest.raises(DatabaseUnavailableError) as failure:
        await init_db(
            load_settings(
                _env_file=None,
                database_url=unreachable.render_as_string(hide_password=False),
                database_echo=True,
            ).database_configs()[0]
        )
    assert PASSWORD not in str(failure.value)
    assert PASSWORD not in repr(failure.value)
    assert PASSWORD not in repr(settings_with_password)
    assert PASSWORD not in str(settings_with_password)

    records = everything_logged.records
    # The check means something only if SQL, pool and error records were written.
    logged = {record.name for record in records}
    assert {"sqlalchemy.engine.Engine", "{{ cookiecutter.package_name }}.errors"} <= logged
    assert any(record.name.startswith("sqlalchemy.pool") for record in records)
    for record in records:
        assert PASSWORD not in record.getMessage()
    # The formatted text includes every traceback logged with a record.
    assert "Traceback" in everything_logged.text
    assert PASSWORD not in everything_logged.text
    # And what the service's own handler wrote, in the format it was given.
    written = capsys.readouterr()
    assert "Traceback" in written.err
    assert PASSWORD not in written.err
    assert PASSWORD not in written.out
    if log_format is LogFormat.JSON:
        entries = [json.loads(line) for line in written.err.splitlines()]
        assert any(entry["logger"] == "sqlalchemy.engine.Engine" for entry in entries)
        assert any("exception" in entry for entry in entries)


async def pool_status(
    database_url: str, application_name: str, *, profile: str, token: str | None, sent: str | None
) -> tuple[int, str]:
    """Start the app with this profile and token; ask /health/pool sending `sent`."""
    settings = load_settings(
        _env_file=None,
        database_url=database_url,
        database_profile=profile,
        # Trust authentication needs no password; prod refuses that unless told.
        database_allow_insecure=True,
        database_pool_size=1,
        database_max_overflow=0,
        database_echo=False,
        database_application_name=application_name,
        health_pool_token=token,
    )
    app = create_probe_app(settings)
    headers = {} if sent is None else {"Authorization": f"Bearer {sent}"}
    async with in_process_client(app, lifespan=True) as client:
        response = await client.get("/health/pool", headers=headers)
    assert TOKEN not in response.text
    return response.status_code, response.text


@pytest.mark.parametrize(
    ("profile", "token", "sent", "expected"),
    [
        # Outside dev the pool status is private; without a token it is simply off.
        ("prod", None, None, 401),
        ("prod", None, "", 401),
        ("prod", None, TOKEN, 401),
        ("prod", TOKEN, TOKEN, 200),
        ("prod", TOKEN, None, 401),
        ("prod", TOKEN, "wrong-token", 401),
        ("prod", TOKEN, TOKEN[:-1], 401),
        ("prod", TOKEN, TOKEN + "x", 401),
        # In dev it is public, unless a token is set.
        ("dev", None, None, 200),
        ("dev", TOKEN, None, 401),
        ("dev", TOKEN, TOKEN, 200),
    ],
)
async def test_the_pool_status_needs_the_token_outside_dev(
    database_url: str,
    application_name: str,
    profile: str,
    token: str | None,
    sent: str | None,
    expected: int,
) -> None:
    status, body = await pool_status(
        database_url, application_name, profile=profile, token=token, sent=sent
    )
    assert status == expected
    if expected == 401:
        assert body == '{"detail":"Send HEALTH_POOL_TOKEN as a bearer token"}'
    else:
        assert '"checked_out":0' in body
        assert f'"profile":"{profile}"' in body
