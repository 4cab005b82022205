"""Overload and slow queries get a quick 503 with a JSON body; bugs get a JSON 500 with no SQL."""

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import text

from {{ cookiecutter.package_name }}.infrastructure.config import Settings
from {{ cookiecutter.package_name }}.infrastructure.database import SessionDep
from {{ cookiecutter.package_name }}.main import create_app
from tests.conftest import in_process_client

AT_CAPACITY = "The service is at capacity; retry shortly."
TOO_SLOW = "The database took too long to answer; retry shortly."

SLOW_QUERY_SECONDS = 0.2
POOL_TIMEOUT = 1.0


def add_test_routes(app: FastAPI) -> None:
    """Routes that hold a connection for a while, or run broken SQL."""

    async def slow(session: SessionDep, seconds: float = SLOW_QUERY_SECONDS) -> dict[str, str]:
        await session.execute(text("SELECT pg_sleep(:seconds)"), {"seconds": seconds})
        return {"status": "done"}

    async def broken_sql(session: SessionDep) -> None:
        await session.execute(text("SELECT no_such_column FROM items"))

    app.add_api_route("/test/slow", slow)
    app.add_api_route("/test/broken-sql", broken_sql)


def small_pool(settings: Settings, **changes: object) -> Settings:
    """The test settings with a 5+0 pool that gives up waiting after POOL_TIMEOUT."""
    values = {"database_pool_size": 5, "database_max_overflow": 0} | changes
    return settings.model_copy(update={"database_pool_timeout": POOL_TIMEOUT} | values)


@pytest.fixture
async def small_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app on a 5+0 pool, with the test routes."""
    app = create_app(small_pool(settings))
    add_test_routes(app)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def small_client(small_app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with in_process_client(small_app, request_timeout=30) as client:
        yield client


async def test_an_exhausted_pool_answers_503_with_retry_after(
    small_client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    slow = [asyncio.create_task(small_client.get("/test/slow?seconds=3")) for _ in range(5)]
    await asyncio.sleep(0.3)  # let the slow requests take every connection
    with caplog.at_level(logging.WARNING):
        responses = await asyncio.gather(*(small_client.get("/items") for _ in range(3)))
    for response in responses:
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert response.json() == {"detail": AT_CAPACITY}
    assert [r.getMessage() for r in caplog.records if "exhausted" in r.getMessage()] == [
        "Connection pool exhausted: 1 request(s) answered 503 since the last report "
        "(size 5, checked out 5, overflow 0)"
    ]
    assert all(not record.exc_info for record in caplog.records)
    assert [(await task).status_code for task in slow] == [200] * 5


async def test_a_thousand_concurrent_requests_all_get_an_answer(
    small_client: AsyncClient,
) -> None:
    # How long each one waits is checked against a real server in test_server.py;
    # here the client shares the event loop, so only completeness is checked.
    async with asyncio.timeout(60):
        responses = await asyncio.gather(*(small_client.get("/test/slow") for _ in range(1000)))
    statuses = [response.status_code for response in responses]
    assert set(statuses) <= {200, 503}
    assert statuses.count(200) >= 5
    # The moment the load is gone, the service serves normally again.
    assert (await small_client.get("/items")).status_code == 200
    pool = (await small_client.get("/health/pool")).json()
    assert pool["checked_out"] == 0
    # On a loaded machine opening one of the pool's connections can itself
    # time out: that 503 says so, and is no pool timeout.
    details = [
        response.json().get("detail") for response in responses if response.status_code == 503
    ]
    assert set(details) <= {AT_CAPACITY, TOO_SLOW}
    # Turned away at the door (admission.py) or by the pool, never lost.
    assert pool["timeouts"] + pool["requests"]["refused"] == details.count(AT_CAPACITY)
    assert pool["requests"]["in_flight"] == 0


async def test_a_query_past_the_statement_timeout_is_a_503_and_frees_its_connection(
    settings: Settings,
) -> None:
    app = create_app(small_pool(settings, database_statement_timeout_ms=100))
    add_test_routes(app)
    async with in_process_client(app, lifespan=True) as client:
        responses = await asyncio.gather(*(client.get("/test/slow?seconds=5") for _ in range(10)))
        assert {response.status_code for response in responses} == {503}
        assert responses[0].json() == {"detail": TOO_SLOW}
        assert (await client.get("/items")).status_code == 200
        assert (await client.get("/health/pool")).json()["checked_out"] == 0


async def test_a_bug_is_a_json_500_without_sql_or_traceback(small_client: AsyncClient) -> None:
    response = await small_client.get("/test/broken-sql")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error"}
    assert "no_such_column" not in response.text
    assert (await small_client.get("/health/pool")).json()["checked_out"] == 0
