"""Connections the server has closed never reach a request, and live ones cost no ping."""

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from {{ cookiecutter.package_name }}.infrastructure.config import Settings
from {{ cookiecutter.package_name }}.infrastructure.database import Database
from {{ cookiecutter.package_name }}.infrastructure.liveness import PING_AFTER_IDLE_SECONDS
from tests.conftest import in_process_client
from tests.infrastructure.test_database_faults import admin_scalar, terminate_backends
from tests.probe import create_probe_app

WORKERS = 8


@pytest.fixture
async def app_without_ping(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app with DATABASE_POOL_PRE_PING off: only the checks that cost no round trip."""
    app = create_probe_app(settings.model_copy(update={"database_pool_pre_ping": False}))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def item_path(app_without_ping: FastAPI) -> AsyncIterator[str]:
    """The path of an item created for the test, and deleted after it."""
    async with in_process_client(app_without_ping) as client:
        created = await client.post("/probes", json={"name": "Liveness", "price": "1"})
        assert created.status_code == 201, created.text
        path = f"/probes/{created.json()['id']}"
        yield path
        await client.delete(path)


def count_pings(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> list[None]:
    """A list that grows by one with every ping the primary's pool sends."""
    database: Database = app.state.database
    dialect = database.engine.dialect
    pings: list[None] = []
    ping = dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        pings.append(None)
        return ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counted)
    return pings


async def warm_pool(client: AsyncClient, path: str) -> int:
    """Use several connections at once, so that the pool keeps them; return how many it keeps."""
    warm = await asyncio.gather(*(client.get(path) for _ in range(WORKERS)))
    assert {response.status_code for response in warm} == {200}
    pooled: int = (await client.get("/health/pool")).json()["checked_in"]
    assert pooled >= 2
    return pooled


async def backends_gone(pids: list[int]) -> None:
    """Wait until none of the server processes `pids` is left."""
    for _ in range(200):
        left = await admin_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)", pids=pids
        )
        if left == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"backends {pids} still there")


async def service_pids(application_name: str) -> list[int]:
    """The server processes serving the test's connections."""
    pids: list[int] = await admin_scalar(
        "SELECT coalesce(array_agg(pid), '{}') FROM pg_stat_activity "
        "WHERE application_name = :name",
        name=application_name,
    )
    return pids


async def answered(answers: list[tuple[float, int]], count: int) -> None:
    """Wait up to 30 s until `count` answers are in."""
    for _ in range(3000):
        if len(answers) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{len(answers)} answers, expected {count}")


async def test_connections_killed_a_moment_after_use_are_replaced_unseen(
    app_without_ping: FastAPI, item_path: str, application_name: str
) -> None:
    async with in_process_client(app_without_ping, request_timeout=30) as client:
        pooled = await warm_pool(client, item_path)
        pids = await service_pids(application_name)
        assert await terminate_backends(application_name) == pooled
        await backends_gone(pids)
        # Killed well within PING_AFTER_IDLE_SECONDS of their last use, and
        # drawn all at once: every request meets a dead connection first.
        reads = await asyncio.gather(*(client.get(item_path) for _ in range(pooled)))
        writes = await asyncio.gather(
            *(client.patch(item_path, json={"price": "2"}) for _ in range(pooled))
        )
        pool = (await client.get("/health/pool")).json()
    assert [response.status_code for response in [*reads, *writes]] == [200] * (2 * pooled)
    assert pool["invalidations"] >= pooled
    assert pool["checked_out"] == 0


async def test_a_kill_the_driver_has_not_read_yet_is_found_at_checkout(
    app_without_ping: FastAPI, item_path: str, application_name: str
) -> None:
    async with in_process_client(app_without_ping, request_timeout=30) as client:
        pooled = await warm_pool(client, item_path)
        pids = await service_pids(application_name)

        async def kill() -> None:
            await terminate_backends(application_name)
            await backends_gone(pids)

        # Killed from another thread while this event loop stands still, so that
        # the driver has not yet read the server's goodbye on any of them.
        worker = threading.Thread(target=asyncio.run, args=(kill(),))
        worker.start()
        worker.join()
        reads = await asyncio.gather(*(client.get(item_path) for _ in range(pooled)))
    assert [response.status_code for response in reads] == [200] * pooled


async def test_a_connection_used_within_the_last_second_is_not_pinged(
    app: FastAPI, application_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with in_process_client(app) as client:
        assert (await client.get("/probes")).status_code == 200
        pings = count_pings(app, monkeypatch)
        for _ in range(20):
            assert (await client.get("/probes")).status_code == 200
        assert pings == []
        await asyncio.sleep(PING_AFTER_IDLE_SECONDS + 0.1)
        assert (await client.get("/probes")).status_code == 200
    assert len(pings) == 1


async def test_killed_under_load_only_requests_in_flight_fail_and_with_503(
    app_without_ping: FastAPI, item_path: str, application_name: str
) -> None:
    answers: list[tuple[float, int]] = []
    stop = asyncio.Event()

    async def load(client: AsyncClient, worker: int) -> None:
        while not stop.is_set():
            started = time.monotonic()
            if worker % 2:
                response = await client.get(item_path)
            else:
                response = await client.patch(item_path, json={"price": str(worker)})
            answers.append((started, response.status_code))

    async with in_process_client(app_without_ping, request_timeout=30) as client:
        workers = [asyncio.create_task(load(client, n)) for n in range(WORKERS)]
        try:
            await answered(answers, 50)
            pids = await service_pids(application_name)
            killed = await terminate_backends(application_name)
            await backends_gone(pids)
            gone = time.monotonic()
            await answered(answers, len(answers) + 100)
        finally:
            stop.set()
            await asyncio.gather(*workers)
        assert (await client.get("/health/pool")).json()["checked_out"] == 0
    assert killed >= 1
    failed = [(started, status) for started, status in answers if status != 200]
    # At most one failure per killed connection: the request whose statement it
    # was running; every request started once the kill was over succeeded.
    assert {status for _, status in failed} <= {503}
    assert len(failed) <= killed
    assert all(started < gone for started, _ in failed)
