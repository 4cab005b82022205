"""Requests beyond MAX_REQUESTS_IN_FLIGHT get a 503 at once; the rest, and the probes, go on."""

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response

from {{ cookiecutter.package_name }}.infrastructure.capacity import pool_max_waiting
from {{ cookiecutter.package_name }}.infrastructure.config import Settings
from {{ cookiecutter.package_name }}.main import create_app
from tests.conftest import in_process_client
from tests.probe import create_probe_app
from tests.test_errors import AT_CAPACITY

LIMIT = 2


@dataclass
class Holding:
    """The requests in /test/hold: how many arrived, and the event that lets them finish."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    all_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: int = 0


@pytest.fixture
async def holding() -> Holding:
    return Holding()


def limited_app(settings: Settings, holding: Holding) -> FastAPI:
    """An app that admits LIMIT requests at once, with a route that holds one until released."""
    app = create_probe_app(settings.model_copy(update={"max_requests_in_flight": LIMIT}))

    async def hold() -> dict[str, str]:
        holding.arrived += 1
        if holding.arrived == LIMIT:
            holding.all_arrived.set()
        await holding.release.wait()
        return {"status": "done"}

    app.add_api_route("/test/hold", hold)
    return app


@pytest.fixture
async def limited_client(settings: Settings, holding: Holding) -> AsyncIterator[AsyncClient]:
    """A client of limited_app."""
    app = limited_app(settings, holding)
    async with in_process_client(app, lifespan=True, request_timeout=30) as client:
        yield client


async def hold_every_place(client: AsyncClient, holding: Holding) -> list[asyncio.Task[Response]]:
    """Start LIMIT requests that stay in progress until `release` is set."""
    held = [asyncio.create_task(client.get("/test/hold")) for _ in range(LIMIT)]
    async with asyncio.timeout(10):
        await holding.all_arrived.wait()
    return held


async def test_a_request_beyond_the_limit_is_refused_at_once_and_the_others_finish(
    limited_client: AsyncClient, holding: Holding, caplog: pytest.LogCaptureFixture
) -> None:
    held = await hold_every_place(limited_client, holding)
    with caplog.at_level(logging.INFO):
        refused = await limited_client.get("/probes", headers={"X-Request-ID": "turned-away"})
    assert refused.status_code == 503
    assert refused.json() == {"detail": AT_CAPACITY}
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["X-Request-ID"] == "turned-away"
    messages = [record.getMessage() for record in caplog.records]
    assert "GET /probes 503" in " ".join(messages)
    assert (
        "At capacity: 1 request(s) answered 503 since the last report (2 in progress, limit 2)"
        in messages
    )
    # The probes are neither refused nor counted.
    assert (await limited_client.get("/health/live")).status_code == 200
    assert (await limited_client.get("/health/ready")).status_code == 200
    figures = (await limited_client.get("/health/pool")).json()["requests"]
    assert figures == {"limit": LIMIT, "in_flight": LIMIT, "refused": 1}
    holding.release.set()
    assert [(await request).status_code for request in held] == [200] * LIMIT
    assert (await limited_client.get("/probes")).status_code == 200
    figures = (await limited_client.get("/health/pool")).json()["requests"]
    assert figures == {"limit": LIMIT, "in_flight": 0, "refused": 1}


async def test_a_request_whose_client_leaves_gives_its_place_back(
    limited_client: AsyncClient, holding: Holding
) -> None:
    held = await hold_every_place(limited_client, holding)
    held[0].cancel()
    with pytest.raises(asyncio.CancelledError):
        await held[0]
    assert (await limited_client.get("/health/pool")).json()["requests"]["in_flight"] == 1
    third = asyncio.create_task(limited_client.get("/test/hold"))
    await asyncio.sleep(0.1)
    assert not third.done(), "the freed place must admit a new request"
    holding.release.set()
    assert (await held[1]).status_code == 200
    assert (await third).status_code == 200
    assert (await limited_client.get("/health/pool")).json()["requests"]["in_flight"] == 0


async def test_the_default_limit_is_what_the_pools_can_serve_and_queue(
    settings: Settings, replica_settings: Settings
) -> None:
    def limit_of(app: FastAPI) -> int:
        limit: int = app.state.admission.limit
        return limit

    small = settings.model_copy(
        update={
            "database_pool_size": 3,
            "database_max_overflow": 2,
            "database_pool_max_waiting": 7,
        }
    )
    assert limit_of(create_app(small)) == 3 + 2 + 7
    # Every database's pool counts: a request may use any one of them.
    primary, replica = replica_settings.database_configs()
    expected = sum(
        view.pool.pool_size + view.pool.max_overflow + pool_max_waiting(view)
        for view in (primary, replica)
    )
    assert limit_of(create_app(replica_settings)) == expected > limit_of(create_app(settings))
