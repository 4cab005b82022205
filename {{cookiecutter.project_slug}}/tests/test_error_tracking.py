"""Sentry: one event per unhandled error, tagged with the request id; none for chosen answers."""

import json
from collections.abc import AsyncIterator, Iterator

import pytest
import sentry_sdk
from fastapi import FastAPI, HTTPException
from httpx import AsyncClient
from pydantic import BaseModel, SecretStr
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport
from sentry_sdk.types import Event
from sqlalchemy import text

from {{ cookiecutter.package_name }}.infrastructure.config import Settings, load_settings
from {{ cookiecutter.package_name }}.infrastructure.database import SessionDep
from {{ cookiecutter.package_name }}.infrastructure.settings_errors import SettingsError
from {{ cookiecutter.package_name }}.main import create_app
from tests.conftest import in_process_client

DSN = "https://public-key@sentry.invalid/42"
# What a client sends that no event may hold: in the query string, a header, the body.
SECRET = "s3cret-Value-5c1d"


class CapturingTransport(Transport):
    """Keep the events the SDK would send, instead of sending them."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Event] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        """Keep the envelope's event, if it holds one."""
        event = envelope.get_event()
        if event is not None:
            self.events.append(event)


class Order(BaseModel):
    card: str


def add_test_routes(app: FastAPI) -> None:
    """Bugs in Python and in SQL, a chosen 503, and a route that takes a body."""

    async def crash(order: Order) -> None:
        raise RuntimeError("handler bug")

    async def broken_sql(session: SessionDep) -> None:
        await session.execute(text("SELECT no_such_column FROM no_such_table"))

    async def busy() -> None:
        raise HTTPException(503, "busy")

    async def outage() -> None:
        # What a dropped database connection looks like: answered 503 by errors.py.
        raise ConnectionResetError("connection lost")

    app.add_api_route("/test/crash", crash, methods=["POST"])
    app.add_api_route("/test/broken-sql", broken_sql)
    app.add_api_route("/test/busy", busy)
    app.add_api_route("/test/outage", outage)


@pytest.fixture
def transport() -> Iterator[CapturingTransport]:
    """Where the events go; the SDK is switched off again after the test."""
    capturing = CapturingTransport()
    yield capturing
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)


@pytest.fixture
async def client(settings: Settings, transport: CapturingTransport) -> AsyncIterator[AsyncClient]:
    """A client of the service, reporting to Sentry through the capturing transport."""
    app = create_app(settings.model_copy(update={"sentry_dsn": SecretStr(DSN)}))
    add_test_routes(app)
    # The SDK was started from the settings, as in production; only its sending is replaced.
    client = sentry_sdk.get_client()
    assert client.is_active()
    if client.transport is not None:
        client.transport.kill()
    client.transport = transport
    async with in_process_client(app, lifespan=True) as http:
        yield http


async def test_each_unhandled_error_is_one_event_with_its_request_id(
    client: AsyncClient, transport: CapturingTransport
) -> None:
    crashed = await client.post(
        f"/test/crash?token={SECRET}",
        json={"card": SECRET},
        headers={"Authorization": f"Bearer {SECRET}", "Cookie": f"session={SECRET}"},
    )
    broken = await client.get("/test/broken-sql")
    sentry_sdk.flush()
    assert [crashed.status_code, broken.status_code] == [500, 500]
    assert len(transport.events) == 2
    tags = [event.get("tags", {}).get("request_id") for event in transport.events]
    assert tags == [crashed.headers["X-Request-ID"], broken.headers["X-Request-ID"]]
    first = transport.events[0]
    assert first["exception"]["values"][-1]["type"] == "RuntimeError"
    assert str(first["request"]["url"]).endswith("/test/crash")
    assert SECRET not in json.dumps(transport.events, default=str)


async def test_chosen_answers_send_no_event(
    client: AsyncClient, transport: CapturingTransport
) -> None:
    answers = [
        await client.get("/no/such/route"),
        await client.post("/test/crash", json={"card": 1}),
        await client.get("/test/busy"),
        await client.get("/test/outage"),
    ]
    sentry_sdk.flush()
    assert [answer.status_code for answer in answers] == [404, 422, 503, 503]
    assert transport.events == []


def test_no_dsn_starts_nothing(settings: Settings) -> None:
    create_app(settings)
    assert not sentry_sdk.get_client().is_active()


@pytest.mark.parametrize("value", ["not a dsn", "https://sentry.invalid/42", "ftp://k@host/1"])
def test_a_malformed_dsn_is_refused_in_one_line_without_showing_it(value: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(_env_file=None, sentry_dsn=value)
    message = str(refused.value)
    assert message.startswith("SENTRY_DSN: not a Sentry DSN")
    assert "\n" not in message
    assert value not in message


def test_an_empty_dsn_means_no_reports() -> None:
    assert load_settings(_env_file=None, sentry_dsn="").sentry_dsn is None
