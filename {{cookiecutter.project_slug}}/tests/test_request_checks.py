"""Listed browsers, listed hosts and bodies within the limit get through; the rest are refused."""

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from {{ cookiecutter.package_name }}.infrastructure.config import Settings
from {{ cookiecutter.package_name }}.infrastructure.database import SessionDep
from {{ cookiecutter.package_name }}.logs import LogFormat
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.request_checks import INVALID_HOST, too_large_detail
from tests.conftest import in_process_client
from tests.test_access_log import ACCESS_LOGGER, json_lines

LIMIT = 1024
ORIGIN = "https://app.example.com"
CHUNK = 256


class Note(BaseModel):
    """What the test route stores."""

    text: str


@pytest.fixture
def changes() -> dict[str, Any]:
    """Settings a test changes; parametrize it to change more."""
    return {}


@pytest.fixture
def settings(settings: Settings, changes: dict[str, Any]) -> Settings:
    """The test settings with a small body limit and the test's changes."""
    return settings.model_copy(update={"max_request_body_bytes": LIMIT} | changes)


@pytest.fixture
async def notes(app: FastAPI, connection: AsyncConnection) -> AsyncConnection:
    """A route that stores a note in PostgreSQL, in a table that ends with the test."""
    await connection.execute(text("CREATE TEMPORARY TABLE test_notes (note text NOT NULL)"))

    async def store(note: Note, session: SessionDep) -> dict[str, str]:
        """Store a note."""
        await session.execute(text("INSERT INTO test_notes VALUES (:note)"), {"note": note.text})
        return {"status": "stored"}

    app.add_api_route("/test/notes", store, methods=["POST"])
    return connection


async def stored(connection: AsyncConnection) -> int:
    """How many notes reached the database."""
    return (await connection.scalar(text("SELECT count(*) FROM test_notes"))) or 0


def note_of(size: int) -> bytes:
    """A JSON note whose encoded body is exactly `size` bytes."""
    body = json.dumps({"text": ""}).encode()
    return json.dumps({"text": "x" * (size - len(body))}).encode()


class Chunks:
    """A request body sent in pieces without Content-Length, counting the pieces taken."""

    def __init__(self, body: bytes) -> None:
        self.pieces = [body[start : start + CHUNK] for start in range(0, len(body), CHUNK)]
        self.taken = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            self.taken += 1
            yield piece


def cors_headers(response: Response) -> list[str]:
    """The names of the CORS headers in an answer."""
    return [name for name in response.headers if name.lower().startswith("access-control-")]


def assert_too_large(response: Response) -> None:
    """A 413 in the service's error shape, on a connection the server then closes."""
    assert response.status_code == 413
    assert response.json() == {"detail": too_large_detail(LIMIT)}
    assert response.headers["Connection"] == "close"
    assert response.headers["X-Request-ID"]


async def test_a_body_within_the_limit_is_stored(
    client: AsyncClient, notes: AsyncConnection
) -> None:
    response = await client.post(
        "/test/notes", content=note_of(LIMIT), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    assert await stored(notes) == 1


async def test_a_declared_body_over_the_limit_is_refused_before_any_of_it_is_read(
    client: AsyncClient, notes: AsyncConnection
) -> None:
    body = Chunks(note_of(LIMIT + 1))
    response = await client.post(
        "/test/notes",
        content=body,
        headers={"Content-Type": "application/json", "Content-Length": str(LIMIT + 1)},
    )
    assert_too_large(response)
    assert body.taken == 0
    assert await stored(notes) == 0


async def test_a_chunked_body_is_refused_once_it_passes_the_limit(
    client: AsyncClient, notes: AsyncConnection
) -> None:
    body = Chunks(note_of(LIMIT * 16))
    response = await client.post(
        "/test/notes", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert_too_large(response)
    # The piece that passed the limit was the last one read.
    assert body.taken == LIMIT // CHUNK + 1 < len(body.pieces)
    assert await stored(notes) == 0


async def test_a_chunked_body_within_the_limit_is_stored(
    client: AsyncClient, notes: AsyncConnection
) -> None:
    body = Chunks(note_of(LIMIT))
    response = await client.post(
        "/test/notes", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    assert await stored(notes) == 1


async def test_every_operation_with_a_body_documents_the_413(app: FastAPI, notes: object) -> None:
    document = app.openapi()
    operations = [
        (path, operation)
        for path, item in document["paths"].items()
        for operation in item.values()
        if isinstance(operation, dict)
    ]
    with_body = [(path, op) for path, op in operations if "requestBody" in op]
    assert "/test/notes" in [path for path, _ in with_body]
    for path, operation in with_body:
        answer = operation["responses"]["413"]["content"]["application/json"]
        assert answer["example"] == {"detail": too_large_detail(LIMIT)}, path
        assert answer["schema"]["$ref"].endswith("/ErrorMessage"), path
    assert all("413" not in op["responses"] for _, op in operations if "requestBody" not in op)


HOSTS = {"trusted_hosts": ("api.example.com", "*.example.net", "10.0.0.7")}


@pytest.mark.parametrize("changes", [HOSTS])
@pytest.mark.parametrize(
    "host", ["api.example.com", "API.Example.com:8443", "a.b.example.net", "10.0.0.7:8000"]
)
async def test_a_trusted_host_is_served(client: AsyncClient, host: str) -> None:
    response = await client.get("/openapi.json", headers={"Host": host})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "host", ["evil.example.com", "example.net", "api.example.com.evil.org", "10.0.0.8"]
)
async def test_any_other_host_gets_400_with_an_id_and_an_access_line(
    settings: Settings, capsys: pytest.CaptureFixture[str], host: str
) -> None:
    # Built here, so that its log lines go to the captured output.
    app = create_app(settings.model_copy(update=HOSTS | {"log_format": LogFormat.JSON}))
    async with in_process_client(app) as client:
        capsys.readouterr()
        response = await client.get("/openapi.json", headers={"Host": host})
    assert response.status_code == 400
    assert response.json() == {"detail": INVALID_HOST}
    logged = [
        entry for entry in json_lines(capsys.readouterr().err) if entry["logger"] == ACCESS_LOGGER
    ]
    assert [(entry["request_id"], entry["status"]) for entry in logged] == [
        (response.headers["X-Request-ID"], 400)
    ]


@pytest.mark.parametrize("changes", [HOSTS])
@pytest.mark.parametrize("path", ["/health/live", "/health/ready"])
async def test_the_probes_answer_whatever_the_host(client: AsyncClient, path: str) -> None:
    # The kubelet calls a pod by its IP address.
    response = await client.get(path, headers={"Host": "10.244.1.17:8000"})
    assert response.status_code == 200


def preflight(origin: str) -> dict[str, str]:
    """The headers a browser sends before a cross-origin JSON POST."""
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-request-id",
    }


async def test_without_origins_no_cors_header_is_sent(client: AsyncClient, notes: object) -> None:
    asked = await client.options("/test/notes", headers=preflight(ORIGIN))
    answered = await client.post("/test/notes", json={"text": "hi"}, headers={"Origin": ORIGIN})
    assert answered.status_code == 200
    assert cors_headers(asked) == []
    assert cors_headers(answered) == []


CORS = {"cors_allow_origins": (ORIGIN, "http://localhost:5173")}


@pytest.mark.parametrize("changes", [CORS])
async def test_a_listed_origin_may_call_and_read_the_answer(
    client: AsyncClient, notes: AsyncConnection
) -> None:
    asked = await client.options("/test/notes", headers=preflight(ORIGIN))
    assert asked.status_code == 200
    assert asked.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in asked.headers["Access-Control-Allow-Methods"]
    assert "content-type" in asked.headers["Access-Control-Allow-Headers"].lower()
    assert "Access-Control-Allow-Credentials" not in asked.headers
    answered = await client.post("/test/notes", json={"text": "hi"}, headers={"Origin": ORIGIN})
    assert answered.status_code == 200
    assert answered.headers["Access-Control-Allow-Origin"] == ORIGIN
    exposed = answered.headers["Access-Control-Expose-Headers"].lower()
    assert {"x-request-id", "retry-after"} <= set(exposed.replace(" ", "").split(","))
    assert await stored(notes) == 1


@pytest.mark.parametrize("changes", [CORS])
async def test_an_unlisted_origin_is_refused_the_preflight(
    client: AsyncClient, notes: object
) -> None:
    asked = await client.options("/test/notes", headers=preflight("https://evil.example"))
    answered = await client.get("/health/live", headers={"Origin": "https://evil.example"})
    assert asked.status_code == 400
    assert "Access-Control-Allow-Origin" not in asked.headers
    assert "Access-Control-Allow-Origin" not in answered.headers


@pytest.mark.parametrize("changes", [CORS | {"cors_allow_credentials": True}])
async def test_credentials_are_allowed_only_when_asked_for(client: AsyncClient) -> None:
    asked = await client.options("/health/live", headers=preflight(ORIGIN))
    assert asked.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert asked.headers["Access-Control-Allow-Credentials"] == "true"


@pytest.mark.parametrize("changes", [CORS])
async def test_a_browser_can_read_a_413(client: AsyncClient, notes: AsyncConnection) -> None:
    response = await client.post(
        "/test/notes",
        content=note_of(LIMIT + 1),
        headers={"Content-Type": "application/json", "Origin": ORIGIN},
    )
    assert_too_large(response)
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
