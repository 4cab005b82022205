"""Faults under a running service: killed connections, an outage, a small server, cancellation."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool, QueuePool

from {{ cookiecutter.package_name }}.infrastructure.config import Settings
from {{ cookiecutter.package_name }}.infrastructure.database import (
    Database,
    SessionDep,
    close_db,
    init_db,
    session_scope,
)
from {{ cookiecutter.package_name }}.infrastructure.liveness import PING_AFTER_IDLE_SECONDS
from tests.conftest import admin_url, connection_count, in_process_client
from tests.probe import create_probe_app
from tests.proxy import TcpProxy

UNAVAILABLE = {"detail": "The database is unavailable; retry shortly."}
AT_CAPACITY = {"detail": "The service is at capacity; retry shortly."}
# Event-loop steps to cut requests after: a quick request takes about 70.
REQUEST_STEPS = 120


async def admin_scalar(query: str, **parameters: Any) -> Any:
    """Run one query on a connection of its own, outside the service's pool."""
    engine = create_async_engine(admin_url(), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.scalar(text(query), parameters)
    finally:
        await engine.dispose()


async def terminate_backends(application_name: str) -> int:
    """Kill every server process serving `application_name`, as a failover or a DBA would."""
    killed: int = await admin_scalar(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = :name",
        name=application_name,
    )
    return killed


def checked_out(database: Database) -> int:
    """How many of the pool's connections are in use."""
    pool = database.engine.pool
    assert isinstance(pool, QueuePool)
    return pool.checkedout()


async def test_requests_get_fresh_connections_after_the_server_killed_the_pooled_ones(
    app: FastAPI, application_name: str
) -> None:
    async with in_process_client(app, request_timeout=30) as client:
        # Concurrent requests, so that the pool keeps several connections.
        warm = await asyncio.gather(*(client.get("/probes") for _ in range(5)))
        assert [response.status_code for response in warm] == [200] * 5
        before = (await client.get("/health/pool")).json()
        pooled = before["checked_in"]
        assert pooled >= 2

        assert await terminate_backends(application_name) == pooled
        assert await connection_count(application_name, expected=0) == 0
        # Idle for long enough to be pinged too (see liveness.py; test_liveness.py
        # kills connections used a moment ago).
        await asyncio.sleep(PING_AFTER_IDLE_SECONDS)

        created = await client.post("/probes", json={"name": "After the kill", "price": "1"})
        assert created.status_code == 201, created.text
        # As many requests at once as there were pooled connections draw every dead one.
        path = f"/probes/{created.json()['id']}"
        reads = await asyncio.gather(*(client.get(path) for _ in range(pooled)))
        assert [read.status_code for read in reads] == [200] * pooled
        after = (await client.get("/health/pool")).json()
        await client.delete(f"/probes/{created.json()['id']}")
    # Every dead connection was found at checkout and replaced by a new one.
    assert after["invalidations"] > before["invalidations"]
    assert after["connects"] >= before["connects"] + pooled
    assert after["checked_out"] == 0


@pytest.fixture
async def proxied_app(proxied_settings: Settings) -> AsyncIterator[FastAPI]:
    """The app reaching its database through the proxy, with a route that holds a query."""
    app = create_probe_app(proxied_settings)

    async def slow(session: SessionDep) -> dict[str, str]:
        await session.execute(text("SELECT pg_sleep(5)"))
        return {"status": "done"}

    app.add_api_route("/test/slow", slow)
    async with app.router.lifespan_context(app):
        yield app


def assert_unavailable(response: Response) -> None:
    assert (response.status_code, response.json()) == (503, UNAVAILABLE), response.text
    assert response.headers["Retry-After"] == "1"


async def test_a_database_outage_is_a_503_and_the_service_recovers_by_itself(
    proxied_app: FastAPI, proxy: TcpProxy, application_name: str
) -> None:
    async with in_process_client(proxied_app, request_timeout=30) as client:
        item = (await client.post("/probes", json={"name": "Before", "price": "1"})).json()
        warm = await asyncio.gather(*(client.get("/probes") for _ in range(5)))
        assert {response.status_code for response in warm} == {200}
        in_flight = asyncio.create_task(client.get("/test/slow"))
        assert await wait_for_query(application_name, "pg_sleep", running=True)

        await proxy.cut()
        assert_unavailable(await in_flight)
        down = await asyncio.gather(
            *(client.get("/probes") for _ in range(5)),
            *(client.get(f"/probes/{item['id']}") for _ in range(5)),
            *(client.post("/probes", json={"name": "During", "price": "1"}) for _ in range(5)),
            *(client.patch(f"/probes/{item['id']}", json={"price": "2"}) for _ in range(5)),
        )
        for response in down:
            assert_unavailable(response)
        ready = await client.get("/health/ready")
        unavailable = {"status": "unavailable", "databases": {"primary": "unavailable"}}
        assert (ready.status_code, ready.json()) == (503, unavailable)
        live = await client.get("/health/live")
        assert (live.status_code, live.json()) == (200, {"status": "ok"})

        await proxy.start()
        back = await asyncio.gather(
            *(client.get("/probes") for _ in range(20)),
            *(client.get(f"/probes/{item['id']}") for _ in range(10)),
            *(client.post("/probes", json={"name": f"After {n}", "price": "1"}) for n in range(10)),
            *(client.get("/health/ready") for _ in range(10)),
        )
        assert [response.status_code for response in back] == [200] * 30 + [201] * 10 + [200] * 10
        # Nothing written while the database was gone, everything written after it came back.
        names = [row["name"] for row in (await client.get("/probes?limit=100")).json()]
        assert sorted(names) == sorted(["Before"] + [f"After {n}" for n in range(10)])
        assert (await client.get("/health/pool")).json()["checked_out"] == 0
        for row in (await client.get("/probes?limit=100")).json():
            await client.delete(f"/probes/{row['id']}")


async def wait_for_query(application_name: str, fragment: str, *, running: bool) -> bool:
    """Wait up to 5 s until a query containing `fragment` is (or is no longer) running."""
    for _ in range(100):
        count = await admin_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
            "AND state = 'active' AND strpos(query, :fragment) > 0",
            name=application_name,
            fragment=fragment,
        )
        if (count > 0) == running:
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.mark.parametrize("where", ["mid-query", "between-queries"])
async def test_session_scope_returns_its_connection_when_cancelled(
    settings: Settings, application_name: str, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    database = await init_db(settings.database_configs()[0])
    caplog.set_level(logging.WARNING)
    holding = asyncio.Event()
    try:

        async def work() -> None:
            async with session_scope(database) as session:
                if where == "mid-query":
                    await session.execute(text("SELECT pg_sleep(30)"))
                else:
                    await session.execute(text("SELECT 1"))
                    holding.set()
                    await asyncio.sleep(30)

        task = asyncio.create_task(work())
        if where == "mid-query":
            assert await wait_for_query(application_name, "pg_sleep", running=True)
        else:
            await holding.wait()
        assert checked_out(database) == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert checked_out(database) == 0
        # The server stopped the query too, rather than sleeping on for nobody.
        assert await wait_for_query(application_name, "pg_sleep", running=False)
        async with session_scope(database) as session:
            assert await session.scalar(text("SELECT 1")) == 1
    finally:
        await close_db(database)
    assert await connection_count(application_name, expected=0) == 0
    # Returned by session_scope itself, not rescued by the garbage collector.
    assert [record.getMessage() for record in caplog.records] == []


async def test_requests_cancelled_at_any_step_leave_the_overload_guard_working(
    settings: Settings,
) -> None:
    # Two connections and no queue: with both in use, one more request is turned away at once.
    app = create_probe_app(
        settings.model_copy(
            update={
                "database_pool_size": 2,
                "database_max_overflow": 0,
                "database_pool_max_waiting": 0,
            }
        )
    )
    holding: list[None] = []
    release = asyncio.Event()

    async def hold(session: SessionDep) -> dict[str, str]:
        await session.execute(text("SELECT 1"))
        holding.append(None)
        await release.wait()
        return {"status": "released"}

    app.add_api_route("/test/hold", hold)
    async with in_process_client(app, lifespan=True, request_timeout=30) as client:
        # Cancel requests after 0, 1, 2, ... steps of the event loop, so that they
        # are cut at every point of their way, taking a connection included.
        for steps in range(REQUEST_STEPS):
            task = asyncio.create_task(client.get("/probes"))
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert (await client.get("/health/pool")).json()["checked_out"] == 0

        holders = [asyncio.create_task(client.get("/test/hold")) for _ in range(2)]
        for _ in range(500):
            if len(holding) == 2:
                break
            await asyncio.sleep(0.01)
        # Answered while both connections are still held, not after pool_timeout.
        extra = asyncio.create_task(client.get("/probes"))
        done, _ = await asyncio.wait({extra}, timeout=5)
        release.set()
        assert extra in done, "the request waited for a connection instead of a quick 503"
        assert (extra.result().status_code, extra.result().json()) == (503, AT_CAPACITY)
        assert [(await holder).status_code for holder in holders] == [200, 200]
        assert (await client.get("/probes")).status_code == 200
