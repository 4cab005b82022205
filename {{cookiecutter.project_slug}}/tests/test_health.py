"""Health routes: liveness without the database, readiness with it, and the pool's figures."""

from httpx import AsyncClient

from {{ cookiecutter.package_name }}.infrastructure.config import Settings
from tests.conftest import in_process_client
from tests.probe import create_probe_app
from tests.proxy import TcpProxy


async def test_live_answers_without_the_database(client: AsyncClient) -> None:
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_the_database_answers(client: AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "databases": {"primary": "ok"}}


async def test_pool_shows_the_profile_and_live_figures(client: AsyncClient) -> None:
    body = (await client.get("/health/pool")).json()
    assert body["profile"] == "dev"
    assert body["pool_size"] == 5
    assert body["max_overflow"] == 10
    assert body["pool_timeout"] == 30
    # The test's own transaction holds one connection while the request runs.
    assert body["checked_out"] == 1
    assert body["overflow"] == 0
    assert body["checked_in"] >= 0


async def test_ready_says_503_while_the_database_is_gone_and_recovers(
    proxied_settings: Settings, proxy: TcpProxy
) -> None:
    app = create_probe_app(proxied_settings)
    async with in_process_client(app, lifespan=True) as client:
        assert (await client.get("/health/ready")).status_code == 200

        await proxy.cut()
        down = await client.get("/health/ready")
        assert down.status_code == 503
        assert down.json() == {"status": "unavailable", "databases": {"primary": "unavailable"}}
        assert (await client.get("/health/live")).status_code == 200

        await proxy.start()
        assert (await client.get("/health/ready")).status_code == 200
        assert (await client.get("/probes")).status_code == 200
