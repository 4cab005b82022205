"""A generated service through a real PostgreSQL restart, then a shutdown that leaves nothing.

This tier restarts the machine's PostgreSQL, which the generated test suites cannot do:
they share the server with everything else.
"""

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.baking import Bake
from tests.services import ADMIN_DSN, install, migrate, serving, throwaway_database

pytestmark = pytest.mark.slow

PING_AFTER_IDLE_SECONDS = 1.0  # as in the generated infrastructure/database.py


def cluster() -> str:
    """The local cluster's version (Debian's layout)."""
    versions = sorted(Path("/etc/postgresql").iterdir())
    if not versions or not shutil.which("pg_ctlcluster"):
        pytest.fail(
            "this tier needs Debian's PostgreSQL cluster tools (pg_ctlcluster)",
            pytrace=False,
        )
    return versions[-1].name


def wait_for_postgresql() -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"], check=False).returncode == 0:
            return
        time.sleep(0.2)
    pytest.fail("PostgreSQL did not come back within 60 s", pytrace=False)


def test_the_service_rides_out_a_database_restart_and_leaves_cleanly(bake: Bake) -> None:
    version = cluster()
    project = bake()
    env = install(project)
    with throwaway_database("test_restart") as database:
        env |= {
            "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}",
            "DATABASE_ECHO": "false",
            "DATABASE_APPLICATION_NAME": database,
        }
        migrate(project, env)
        with (
            serving(project, env) as port,
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
        ):
            item = client.post("/items", json={"name": "Survivor", "price": "1"}).json()

            cluster_command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]
            subprocess.run([*cluster_command, "stop", "-m", "fast"], check=True)
            try:
                assert client.get("/health/ready").status_code == 503
                assert client.get("/health/live").status_code == 200
                down = client.get(f"/items/{item['id']}")
                assert down.status_code == 503
                assert down.headers["Retry-After"] == "1"
            finally:
                subprocess.run([*cluster_command, "start"], check=True)
                wait_for_postgresql()

            # Connections idle past the ping window are checked and replaced.
            time.sleep(PING_AFTER_IDLE_SECONDS)
            assert client.get("/health/ready").status_code == 200
            statuses = [client.get(f"/items/{item['id']}").status_code for _ in range(20)]
            created = client.post("/items", json={"name": "After", "price": "2"})
            assert statuses + [created.status_code] == [200] * 20 + [201]
        assert asyncio.run(connections_named(database)) == 0


async def connections_named(name: str) -> int:
    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        for _ in range(50):
            count: int = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                name,
            )
            if count == 0:
                return 0
            await asyncio.sleep(0.1)
        return count
    finally:
        await connection.close()
