"""A generated service through a real PostgreSQL restart, then a shutdown that leaves nothing.

This tier restarts the machine's PostgreSQL, which the generated test suites cannot do:
they share the server with everything else.
"""

import asyncio
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.baking import Bake, environment_without_virtualenv, run
from tests.test_pgbouncer import ADMIN_DSN, admin, free_port, wait_for_port

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


def test_the_service_rides_out_a_database_restart_and_leaves_cleanly(
    bake: Bake,
) -> None:
    version = cluster()
    project = bake()
    env = environment_without_virtualenv()
    run(["uv", "sync", "--quiet", "--no-dev"], cwd=project, env=env)
    database = f"test_restart_{uuid.uuid4().hex[:10]}"
    asyncio.run(admin(f'CREATE DATABASE "{database}"'))
    try:
        env |= {
            "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}",
            "DATABASE_ECHO": "false",
            "DATABASE_APPLICATION_NAME": database,
        }
        run(
            [str(project / ".venv" / "bin" / "alembic"), "upgrade", "head"],
            cwd=project,
            env=env,
        )
        port = free_port()
        server = subprocess.Popen(
            [
                str(project / ".venv" / "bin" / project.name),
                "serve",
                "--port",
                str(port),
            ],
            cwd=project,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port, server, "the service")
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                item = client.post("/items", json={"name": "Survivor", "price": "1"}).json()

                stop = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]
                subprocess.run([*stop, "stop", "-m", "fast"], check=True)
                try:
                    assert client.get("/health/ready").status_code == 503
                    assert client.get("/health/live").status_code == 200
                    down = client.get(f"/items/{item['id']}")
                    assert down.status_code == 503
                    assert down.headers["Retry-After"] == "1"
                finally:
                    subprocess.run([*stop, "start"], check=True)
                    wait_for_postgresql()

                # Connections idle past the ping window are checked and replaced.
                time.sleep(PING_AFTER_IDLE_SECONDS)
                assert client.get("/health/ready").status_code == 200
                statuses = [client.get(f"/items/{item['id']}").status_code for _ in range(20)]
                statuses.append(
                    client.post("/items", json={"name": "After", "price": "2"}).status_code
                )
                assert statuses == [200] * 20 + [201]
        finally:
            server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=30) in (0, -signal.SIGTERM)
        left = asyncio.run(connections_named(database))
        assert left == 0
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


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
