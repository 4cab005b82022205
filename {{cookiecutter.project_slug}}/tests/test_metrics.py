"""/metrics: request counts and latencies by route, and the pools' live figures, read back."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from prometheus_client.parser import text_string_to_metric_families

from {{ cookiecutter.package_name }}.infrastructure.config import Settings, load_settings
from {{ cookiecutter.package_name }}.infrastructure.database import Database
from tests.conftest import in_process_client
from tests.probe import create_probe_app
from tests.test_admission import LIMIT, Holding, hold_every_place, limited_app
from tests.test_errors import add_test_routes

PROBE_ROUTE = {"method": "GET", "route": "/probes/{probe_id}"}


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample `name` with exactly `labels` in a scrape, or None if absent."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return found.value
    return None


async def scrape(client: AsyncClient, headers: dict[str, str] | None = None) -> str:
    """Fetch /metrics and return its text."""
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


@pytest.fixture
async def holding_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app on its own pool, with a route that holds a connection for a while."""
    app = create_probe_app(settings)
    add_test_routes(app)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def holding_client(holding_app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with in_process_client(holding_app, request_timeout=30) as client:
        yield client


async def test_requests_are_counted_by_route_template_and_status(client: AsyncClient) -> None:
    created = await client.post("/probes", json={"name": "Cup", "price": "9.5"})
    assert created.status_code == 201, created.text
    probe_id = created.json()["id"]
    before = await scrape(client)
    for _ in range(3):
        assert (await client.get(f"/probes/{probe_id}")).status_code == 200
    assert (await client.get(f"/probes/{probe_id + 1000}")).status_code == 404
    after = await scrape(client)
    counted_before = sample(before, "http_requests_total", **PROBE_ROUTE, status="200") or 0
    assert sample(after, "http_requests_total", **PROBE_ROUTE, status="200") == counted_before + 3
    assert sample(after, "http_requests_total", **PROBE_ROUTE, status="404") == 1
    timed_before = sample(before, "http_request_duration_seconds_count", **PROBE_ROUTE) or 0
    assert sample(after, "http_request_duration_seconds_count", **PROBE_ROUTE) == timed_before + 4
    # Never the raw path: one series per route, however many probes there are.
    assert f"/probes/{probe_id}" not in after


async def test_unmatched_paths_share_one_label(client: AsyncClient) -> None:
    for path in ["/no/such/path", "/wp-login.php"]:
        assert (await client.get(path)).status_code == 404
    text = await scrape(client)
    labels = {"method": "GET", "route": "unmatched", "status": "404"}
    assert sample(text, "http_requests_total", **labels) == 2
    assert "wp-login" not in text


async def test_pool_gauges_follow_a_request_that_holds_a_connection(
    holding_app: FastAPI, holding_client: AsyncClient
) -> None:
    primary = {"database": "primary"}
    idle = await scrape(holding_client)
    assert sample(idle, "db_pool_checked_out", **primary) == 0
    assert sample(idle, "db_pool_size", **primary) == 5
    assert sample(idle, "db_pool_max_overflow", **primary) == 10
    slow = asyncio.create_task(holding_client.get("/test/slow?seconds=2"))
    async with asyncio.timeout(10):
        while True:
            busy = await scrape(holding_client)
            if sample(busy, "db_pool_checked_out", **primary) == 1:
                break
            await asyncio.sleep(0.02)
    assert (await slow).status_code == 200
    done = await scrape(holding_client)
    assert sample(done, "db_pool_checked_out", **primary) == 0
    assert sample(done, "db_pool_checkouts_waiting", **primary) == 0
    assert sample(done, "db_pool_overflow", **primary) == 0
    database: Database = holding_app.state.database
    assert database.stats.connects >= 1
    assert sample(done, "db_pool_connects_total", **primary) == database.stats.connects
    assert sample(done, "db_pool_checkouts_total", **primary) == database.stats.checkouts
    assert sample(done, "db_pool_invalidations_total", **primary) == 0


async def test_checkout_waits_are_counted_per_request(holding_client: AsyncClient) -> None:
    primary = {"database": "primary"}
    before = await scrape(holding_client)
    for _ in range(4):
        assert (await holding_client.get("/test/slow?seconds=0")).status_code == 200
    after = await scrape(holding_client)
    waits_before = sample(before, "db_pool_checkout_wait_seconds_count", **primary)
    assert waits_before is not None
    assert sample(after, "db_pool_checkout_wait_seconds_count", **primary) == waits_before + 4
    longest = sample(after, "db_pool_checkout_wait_seconds_bucket", **primary, le="+Inf")
    assert longest == waits_before + 4


async def test_requests_in_progress_and_refused_are_shown(settings: Settings) -> None:
    holding = Holding()
    app = limited_app(settings, holding)
    async with in_process_client(app, lifespan=True) as client:
        held = await hold_every_place(client, holding)
        assert (await client.get("/probes")).status_code == 503
        # Scrapes are never refused, nor counted among the requests in progress.
        text = await scrape(client)
        holding.release.set()
        await asyncio.gather(*held)
        done = await scrape(client)
    assert sample(text, "http_requests_in_flight") == LIMIT
    assert sample(text, "http_requests_in_flight_limit") == LIMIT
    assert sample(text, "http_requests_refused_total") == 1
    assert sample(done, "http_requests_in_flight") == 0


async def test_extra_databases_get_their_own_series(replica_settings: Settings) -> None:
    app = create_probe_app(replica_settings)
    async with in_process_client(app, lifespan=True) as client:
        text = await scrape(client)
    for name in ["primary", "replica"]:
        assert sample(text, "db_pool_checked_out", database=name) == 0
        assert (sample(text, "db_pool_connects_total", database=name) or 0) >= 1


async def test_two_apps_in_one_process_count_separately(settings: Settings) -> None:
    first, second = create_probe_app(settings), create_probe_app(settings)
    async with (
        in_process_client(first, lifespan=True) as one,
        in_process_client(second, lifespan=True) as other,
    ):
        for _ in range(2):
            assert (await one.get("/health/live")).status_code == 200
        live = {"method": "GET", "route": "/health/live", "status": "200"}
        assert sample(await scrape(one), "http_requests_total", **live) == 2
        assert sample(await scrape(other), "http_requests_total", **live) is None


@pytest.mark.parametrize(("sent", "expected"), [(None, 401), ("wrong", 401), ("s3cret", 200)])
async def test_metrics_need_the_pool_token_outside_dev(
    database_url: str, application_name: str, sent: str | None, expected: int
) -> None:
    settings = load_settings(
        _env_file=None,
        database_url=database_url,
        database_profile="prod",
        # Trust authentication needs no password; prod refuses that unless told.
        database_allow_insecure=True,
        database_pool_size=1,
        database_max_overflow=0,
        database_echo=False,
        database_application_name=application_name,
        health_pool_token="s3cret",
    )
    app = create_probe_app(settings)
    headers = {} if sent is None else {"Authorization": f"Bearer {sent}"}
    async with in_process_client(app, lifespan=True) as client:
        response = await client.get("/metrics", headers=headers)
    assert response.status_code == expected
    if expected == 200:
        assert sample(response.text, "db_pool_size", database="primary") == 1


async def test_bugs_are_counted_as_500s_of_their_route(
    holding_app: FastAPI, holding_client: AsyncClient
) -> None:
    async def crash() -> None:
        raise RuntimeError("a bug")

    # Broken SQL gets its JSON 500 inside the stack; an unexpected exception
    # leaves it, and Starlette's outermost layer answers.
    holding_app.add_api_route("/test/crash", crash)
    for path in ["/test/broken-sql", "/test/crash"]:
        assert (await holding_client.get(path)).status_code == 500
    text = await scrape(holding_client)
    for route in ["/test/broken-sql", "/test/crash"]:
        labels = {"method": "GET", "route": route, "status": "500"}
        assert sample(text, "http_requests_total", **labels) == 1
