"""Every request gets an id, returned and on each of its log lines, and exactly one access line."""

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import text
from starlette.types import Message, Receive, Scope, Send

from {{ cookiecutter.package_name }}.access_log import RequestLogMiddleware
from {{ cookiecutter.package_name }}.infrastructure.config import Settings
from {{ cookiecutter.package_name }}.infrastructure.database import SessionDep
from {{ cookiecutter.package_name }}.logs import LogFormat, LogLevel
from tests.conftest import in_process_client
from tests.probe import create_probe_app

GENERATED_ID = re.compile(r"[0-9a-f]{16}")
ACCESS_LOGGER = "{{ cookiecutter.package_name }}.access_log"


def add_test_routes(app: FastAPI, *, waiting: asyncio.Event | None = None) -> None:
    """A bug in Python, a bug in SQL, and a route that waits until the test lets it go."""

    async def crash() -> None:
        raise RuntimeError("handler bug")

    async def broken_sql(session: SessionDep) -> None:
        await session.execute(text("SELECT no_such_column FROM probe.probes"))

    async def wait() -> None:
        if waiting is not None:
            await waiting.wait()

    app.add_api_route("/test/crash", crash)
    app.add_api_route("/test/broken-sql", broken_sql)
    app.add_api_route("/test/wait", wait)


@asynccontextmanager
async def serving(settings: Settings, **routes: Any) -> AsyncIterator[AsyncClient]:
    """Build the app from `settings` (which configures logging), start it, give a client."""
    app = create_probe_app(settings)
    add_test_routes(app, **routes)
    async with in_process_client(app, lifespan=True) as client:
        yield client


def json_lines(output: str) -> list[dict[str, Any]]:
    """Parse every line written; any line that is not one JSON object fails the test."""
    return [json.loads(line) for line in output.splitlines()]


def access_lines(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The access lines among the entries."""
    return [entry for entry in entries if entry["logger"] == ACCESS_LOGGER]


@pytest.fixture
def json_settings(settings: Settings) -> Settings:
    """The test settings writing JSON lines."""
    return settings.model_copy(update={"log_format": LogFormat.JSON})


async def test_a_given_request_id_is_returned_and_on_every_line_of_its_request(
    json_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    async with serving(json_settings) as client:
        capsys.readouterr()  # start-up lines
        response = await client.get("/test/broken-sql", headers={"X-Request-ID": "req-7:a.b"})
    entries = json_lines(capsys.readouterr().err)
    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "req-7:a.b"
    during = [entry for entry in entries if entry.get("request_id") == "req-7:a.b"]
    # The handler's error line, with its traceback, and the access line.
    assert [entry["logger"] for entry in during] == [
        "{{ cookiecutter.package_name }}.errors",
        ACCESS_LOGGER,
    ]
    error, access = during
    assert error["level"] == "ERROR"
    assert error["message"] == "Database error on GET /test/broken-sql"
    assert "no_such_column" in error["exception"]
    assert access["message"].startswith("GET /test/broken-sql 500 ")
    assert access["method"] == "GET"
    assert access["path"] == "/test/broken-sql"
    assert access["status"] == 500
    assert access["duration_ms"] >= 0
    assert access["client"] == "127.0.0.1"


async def test_each_request_gets_one_access_line_whatever_its_outcome(
    json_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    async with serving(json_settings) as client:
        responses = [
            await client.get("/probes"),
            await client.get("/probes/2000000000"),
            await client.post("/probes", json={"name": "", "price": "-1"}),
            await client.get("/test/crash"),
            await client.get("/no/such/route"),
        ]
    statuses = [response.status_code for response in responses]
    assert statuses == [200, 404, 422, 500, 404]
    ids = [response.headers["X-Request-ID"] for response in responses]
    assert all(GENERATED_ID.fullmatch(request_id) for request_id in ids)
    assert len(set(ids)) == len(ids)
    logged = access_lines(json_lines(capsys.readouterr().err))
    assert [(entry["request_id"], entry["status"]) for entry in logged] == list(
        zip(ids, statuses, strict=True)
    )


@pytest.mark.parametrize(
    "given",
    [
        "has spaces",
        "x" * 129,
        "semi;colon",
        '"quoted"',
        '{"json": true}',
        "",
    ],
)
async def test_an_unusable_request_id_is_replaced_and_never_logged(
    json_settings: Settings, capsys: pytest.CaptureFixture[str], given: str
) -> None:
    async with serving(json_settings) as client:
        response = await client.get("/probes", headers={"X-Request-ID": given})
    output = capsys.readouterr().err
    request_id = response.headers["X-Request-ID"]
    assert GENERATED_ID.fullmatch(request_id)
    assert [entry["request_id"] for entry in access_lines(json_lines(output))] == [request_id]
    if given:
        assert given not in output


async def test_the_longest_accepted_request_id_is_kept(
    json_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    given = "A-z_0.9:+/=" * 11 + "x" * 7  # 128 characters
    async with serving(json_settings) as client:
        response = await client.get("/probes", headers={"X-Request-ID": given})
    assert response.headers["X-Request-ID"] == given
    logged = access_lines(json_lines(capsys.readouterr().err))
    assert [entry["request_id"] for entry in logged] == [given]


async def test_the_access_line_has_no_query_string_body_or_credentials(
    json_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "Xq7-access-secret"
    async with serving(json_settings) as client:
        await client.get(f"/probes?token={secret}", headers={"Authorization": f"Bearer {secret}"})
        await client.post("/probes", json={"name": secret, "price": "not a price"})
        # A decoded %0A would end the line in a console; the raw path stays one token.
        await client.get("/probes/%0Aforged%20line")
    # httpx, the test's client, logs the URLs it asks for; the service logs none of it.
    entries = [entry for entry in json_lines(capsys.readouterr().err) if entry["logger"] != "httpx"]
    assert entries
    assert secret not in json.dumps(entries)
    assert [entry["path"] for entry in access_lines(entries)] == [
        "/probes",
        "/probes",
        "/probes/%0Aforged%20line",
    ]


@pytest.mark.parametrize(
    ("raw_path", "path", "logged"),
    [
        # Servers differ on whether raw_path holds the query string.
        (b"/probes?token=Xq7-query", "/probes", "/probes"),
        # Without raw_path, the decoded path is escaped rather than logged as it is.
        (None, "/probes/\nINFO: forged\x1b[2J", "/probes/\\nINFO: forged\\x1b[2J"),
    ],
)
async def test_the_logged_path_is_one_line_without_the_query(
    caplog: pytest.LogCaptureFixture, raw_path: bytes | None, path: str, logged: str
) -> None:
    async def no_content(_scope: Scope, _receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(_message: Message) -> None:
        pass

    scope: Scope = {"type": "http", "method": "GET", "path": path, "headers": []}
    if raw_path is not None:
        scope["raw_path"] = raw_path
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        await RequestLogMiddleware(no_content)(scope, receive, send)
    [record] = caplog.records
    assert record.getMessage().startswith(f"GET {logged} 204 ")
    assert "\n" not in record.getMessage()
    assert "Xq7-query" not in record.getMessage()


async def test_a_request_whose_client_leaves_still_gets_its_access_line(
    json_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    waiting = asyncio.Event()
    async with serving(json_settings, waiting=waiting) as client:
        request = asyncio.create_task(client.get("/test/wait", headers={"X-Request-ID": "gone"}))
        await asyncio.sleep(0.1)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
    logged = access_lines(json_lines(capsys.readouterr().err))
    assert [(entry["request_id"], entry["status"]) for entry in logged] == [("gone", 499)]


async def test_the_servers_traceback_for_a_bug_carries_the_request_id(
    json_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_probe_app(json_settings)
    add_test_routes(app)
    scope: Scope = {
        "type": "http",
        "method": "GET",
        "path": "/test/crash",
        "raw_path": b"/test/crash",
        "query_string": b"",
        "headers": [(b"x-request-id", b"bug-1")],
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    # As uvicorn serves a request: in a task of its own, logging what escapes the app.
    async def serve_like_uvicorn() -> None:
        try:
            await app(scope, receive, send)
        except RuntimeError:
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")

    await asyncio.create_task(serve_like_uvicorn())
    assert sent[0]["status"] == 500
    assert (b"x-request-id", b"bug-1") in sent[0]["headers"]
    entries = json_lines(capsys.readouterr().err)
    assert [(entry["logger"], entry.get("request_id")) for entry in entries] == [
        (ACCESS_LOGGER, "bug-1"),
        ("uvicorn.error", "bug-1"),
    ]
    assert "RuntimeError: handler bug" in entries[1]["exception"]


async def test_the_request_id_does_not_outlive_its_request(
    json_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    async with serving(json_settings) as client:
        await client.get("/probes", headers={"X-Request-ID": "finished"})
        logging.getLogger("{{ cookiecutter.package_name }}.test").warning("after the request")
    after = [
        entry for entry in json_lines(capsys.readouterr().err) if entry["logger"].endswith(".test")
    ]
    assert len(after) == 1
    assert "request_id" not in after[0]


async def test_a_log_level_above_info_turns_the_access_lines_off(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    quiet = settings.model_copy(
        update={"log_format": LogFormat.JSON, "log_level": LogLevel.WARNING}
    )
    async with serving(quiet) as client:
        response = await client.get("/test/crash")
    assert response.status_code == 500
    assert "X-Request-ID" in response.headers
    assert access_lines(json_lines(capsys.readouterr().err)) == []
