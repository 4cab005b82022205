"""Extra databases: an engine each, routes on the right one, all disposed, all in the health routes.

Two real databases of the local server play the primary and the read replica;
they hold different rows, so an answer shows which one served it.
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI
from httpx import AsyncClient
from pydantic import SecretStr
from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from {{ cookiecutter.package_name }}.infrastructure.capacity import ConnectionBudgetError
from {{ cookiecutter.package_name }}.infrastructure.config import Settings, load_settings
from {{ cookiecutter.package_name }}.infrastructure.database import (
    Database,
    DatabaseUnavailableError,
)
from {{ cookiecutter.package_name }}.infrastructure.extra_databases import database_session
from tests.conftest import connection_count, empty_tables, in_process_client
from tests.infrastructure.test_capacity import server_budget
from tests.probe import create_probe_app, probes
from tests.proxy import TcpProxy


async def empty_tables_at(url: str) -> None:
    """Empty every table of the database at `url`, outside the application."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await empty_tables(connection)
    finally:
        await engine.dispose()


async def add_probe(url: str, name: str) -> None:
    """Commit one probe straight into the database at `url`."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(probes).values(name=name, price=Decimal(1)))
    finally:
        await engine.dispose()


async def probe_names(url: str) -> list[str]:
    """The names of the probes in the database at `url`."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return list(
                (await connection.scalars(select(probes.c.name).order_by(probes.c.id))).all()
            )
    finally:
        await engine.dispose()


@pytest.fixture
async def two_databases(
    database_url: str, replica_database_url: str
) -> AsyncIterator[tuple[str, str]]:
    """The primary's and the replica's URLs; both databases' tables are emptied afterwards."""
    yield database_url, replica_database_url
    for url in (database_url, replica_database_url):
        await empty_tables_at(url)


@pytest.fixture
async def replica_app(replica_settings: Settings) -> AsyncIterator[FastAPI]:
    """The application with a replica, started and stopped through its lifespan."""
    app = create_probe_app(replica_settings)
    async with app.router.lifespan_context(app):
        yield app


async def test_each_extra_database_has_its_own_engine_and_all_are_disposed(
    replica_settings: Settings, replica_database_url: str, application_name: str
) -> None:
    app = create_probe_app(replica_settings)
    async with app.router.lifespan_context(app):
        primary: Database = app.state.database
        replica: Database = app.state.extra_databases["replica"]
        assert replica.engine is not primary.engine
        async with replica.engine.connect() as connection:
            served_by = await connection.scalar(text("SELECT current_database()"))
        assert served_by == make_url(replica_database_url).database
        # Each pool keeps the connection it checked the database with.
        assert await connection_count(application_name, expected=2) == 2
    assert await connection_count(application_name, expected=0) == 0


async def test_listings_read_from_the_replica_and_writes_go_to_the_primary(
    replica_app: FastAPI, two_databases: tuple[str, str]
) -> None:
    primary_url, replica_url = two_databases
    await add_probe(replica_url, "Only on the replica")
    async with in_process_client(replica_app) as client:
        created = await client.post("/probes", json={"name": "Only on the primary", "price": "2"})
        assert created.status_code == 201
        listed = (await client.get("/probes")).json()
        # Reading back what was just written stays on the primary.
        read_back = await client.get(f"/probes/{created.json()['id']}")
    assert [probe["name"] for probe in listed] == ["Only on the replica"]
    assert read_back.json()["name"] == "Only on the primary"
    assert await probe_names(primary_url) == ["Only on the primary"]


async def test_without_a_replica_listings_read_from_the_primary(client: AsyncClient) -> None:
    created = await client.post("/probes", json={"name": "Primary", "price": "2"})
    assert [probe["id"] for probe in (await client.get("/probes")).json()] == [created.json()["id"]]


async def test_a_session_on_an_extra_database_commits_there(
    replica_app: FastAPI, two_databases: tuple[str, str]
) -> None:
    primary_url, replica_url = two_databases
    replica_session = Depends(database_session("replica"), scope="function")

    async def add_on_replica(session: Annotated[AsyncSession, replica_session]) -> None:
        await session.execute(insert(probes).values(name="Written to the replica", price=3))

    replica_app.add_api_route("/test/replica-write", add_on_replica, methods=["POST"])
    async with in_process_client(replica_app) as client:
        assert (await client.post("/test/replica-write")).status_code == 200
    assert await probe_names(replica_url) == ["Written to the replica"]
    assert await probe_names(primary_url) == []


async def test_a_route_on_a_database_that_is_not_configured_fails_with_a_500(
    app: FastAPI,
) -> None:
    analytics_session = Depends(database_session("analytics", read_only=True))

    async def count(session: Annotated[AsyncSession, analytics_session]) -> None:
        await session.execute(text("SELECT 1"))  # pragma: no cover - never reached

    app.add_api_route("/test/analytics", count)
    async with in_process_client(app) as client:
        response = await client.get("/test/analytics")
    assert (response.status_code, response.json()) == (500, {"detail": "Internal server error"})


async def test_an_extra_database_down_at_start_fails_in_one_line_and_leaks_nothing(
    database_url: str,
    replica_database_url: str,
    application_name: str,
    unused_tcp_port: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = f"postgresql://svc:s3cret-pw@127.0.0.1:{unused_tcp_port}/reports"
    settings = load_settings(
        _env_file=None,
        database_url=database_url,
        database_echo=False,
        database_application_name=application_name,
        database_connect_timeout=2,
        # Started in name order: the replica is up before "reporting" fails.
        databases={
            "replica": {"url": replica_database_url, "echo": False},
            "reporting": {"url": down, "echo": False},
        },
    )
    app = create_probe_app(settings)
    with caplog.at_level(logging.INFO), pytest.raises(DatabaseUnavailableError) as failure:
        async with app.router.lifespan_context(app):
            pass  # pragma: no cover - start-up must fail
    message = str(failure.value)
    assert "\n" not in message
    assert message.startswith("DATABASES__REPORTING__URL: cannot use the database at ")
    assert f"127.0.0.1:{unused_tcp_port}/reports" in message
    assert "s3cret-pw" not in message
    # The replica was up before the failure, and its engine is disposed too.
    connected = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Connected")]
    assert any(f"/{make_url(replica_database_url).database} " in line for line in connected)
    assert await connection_count(application_name, expected=0) == 0


async def test_ready_names_the_replica_when_only_the_replica_is_cut(
    replica_settings: Settings, proxy: TcpProxy, two_databases: tuple[str, str]
) -> None:
    _, replica_url = two_databases
    proxied = make_url(replica_url).set(host="127.0.0.1", port=proxy.port)
    settings = replica_settings.model_copy(
        update={
            "databases": {
                "replica": replica_settings.databases["replica"].model_copy(
                    update={"url": SecretStr(proxied.render_as_string(hide_password=False))}
                )
            },
            "database_connect_timeout": 1,
        }
    )
    app = create_probe_app(settings)
    async with in_process_client(app, lifespan=True) as client:
        ready = await client.get("/health/ready")
        assert (ready.status_code, ready.json()) == (
            200,
            {"status": "ok", "databases": {"primary": "ok", "replica": "ok"}},
        )

        await proxy.cut()
        down = await client.get("/health/ready")
        assert (down.status_code, down.json()) == (
            503,
            {"status": "unavailable", "databases": {"primary": "ok", "replica": "unavailable"}},
        )
        # The primary still serves; the listing, which reads the replica, cannot.
        assert (await client.post("/probes", json={"name": "Mug", "price": "1"})).status_code == 201
        assert (await client.get("/probes")).status_code == 503

        await proxy.start()
        assert (await client.get("/health/ready")).status_code == 200
        assert (await client.get("/probes")).status_code == 200


async def test_pool_shows_every_pool(
    replica_settings: Settings, database_url: str, replica_database_url: str
) -> None:
    settings = replica_settings.model_copy(
        update={
            "databases": {
                "replica": replica_settings.databases["replica"].model_copy(
                    update={"pool_size": 2, "max_overflow": 1}
                )
            }
        }
    )
    app = create_probe_app(settings)
    async with in_process_client(app, lifespan=True) as client:
        body = (await client.get("/health/pool")).json()
    assert (body["profile"], body["pool_size"], body["max_overflow"]) == ("dev", 5, 10)
    replica = body["databases"]["replica"]
    assert (replica["pool_size"], replica["max_overflow"], replica["checked_out"]) == (2, 1, 0)
    assert replica["connects"] == 1
    assert list(body["databases"]) == ["replica"]


# Turned away at once (no queue), or after waiting out the pool timeout in it.
@pytest.mark.parametrize(
    "queue", [{"pool_max_waiting": 0}, {"pool_max_waiting": 1, "pool_timeout": 0.2}]
)
async def test_an_exhausted_replica_pool_is_counted_and_reported_as_the_replica_s(
    replica_settings: Settings, caplog: pytest.LogCaptureFixture, queue: dict[str, float]
) -> None:
    one_connection = {"pool_size": 1, "max_overflow": 0, **queue}
    replica = replica_settings.databases["replica"].model_copy(update=one_connection)
    app = create_probe_app(replica_settings.model_copy(update={"databases": {"replica": replica}}))
    held, release = asyncio.Event(), asyncio.Event()
    replica_session = Depends(database_session("replica", read_only=True), scope="function")

    async def hold(session: Annotated[AsyncSession, replica_session]) -> None:
        # The session took the replica's only connection before the handler runs.
        held.set()
        await release.wait()

    app.add_api_route("/test/hold-replica", hold)
    async with in_process_client(app, lifespan=True) as client:
        holding = asyncio.create_task(client.get("/test/hold-replica"))
        async with asyncio.timeout(10):
            await held.wait()
        with caplog.at_level(logging.WARNING):
            turned_away = await client.get("/probes")
        release.set()
        assert (await holding).status_code == 200
        pools = (await client.get("/health/pool")).json()
    assert turned_away.status_code == 503
    assert turned_away.json() == {"detail": "The service is at capacity; retry shortly."}
    assert (pools["timeouts"], pools["databases"]["replica"]["timeouts"]) == (0, 1)
    assert [r.getMessage() for r in caplog.records if "exhausted" in r.getMessage()] == [
        "Connection pool exhausted: 1 request(s) answered 503 since the last report "
        "(replica: size 1, checked out 1, overflow 0)"
    ]


async def test_the_budget_counts_every_pool_on_the_same_server(
    database_url: str, replica_database_url: str, application_name: str
) -> None:
    max_connections, reserved = await server_budget()
    available = max_connections - reserved

    def budget(**databases: dict[str, object]) -> Settings:
        return load_settings(
            _env_file=None,
            database_url=database_url,
            database_echo=False,
            database_application_name=application_name,
            database_pool_size=available - 10,
            database_max_overflow=0,
            database_budget_check="fail",
            databases=databases,
        )

    # The primary's pool alone fits ...
    alone = create_probe_app(budget())
    async with alone.router.lifespan_context(alone):
        pass
    # ... but not with the replica's on the same server.
    replica = {"url": replica_database_url, "pool_size": 20, "max_overflow": 0, "echo": False}
    together = create_probe_app(budget(replica=replica))
    with pytest.raises(ConnectionBudgetError) as failure:
        async with together.router.lifespan_context(together):
            pass  # pragma: no cover - start-up must fail
    message = str(failure.value)
    assert "\n" not in message
    needed = available - 10 + 20
    assert (
        f"1 worker(s) x (primary {available - 10} pool + 0 overflow, "
        f"replica 20 pool + 0 overflow) = {needed} > {available} available"
    ) in message
    assert "DATABASES__<NAME>__" in message
    assert await connection_count(application_name, expected=0) == 0
