"""The generated service behind a real PgBouncer in transaction mode (Debian's pgbouncer)."""

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.baking import Bake, environment_without_virtualenv, run

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode}", pytrace=False)
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"{what} did not listen on {port} within 30 s", pytrace=False)


@pytest.fixture(scope="module")
def pgbouncer() -> Iterator[int]:
    """PgBouncer in transaction mode on a free port, in front of the local PostgreSQL."""
    if not Path(PGBOUNCER).exists():
        pytest.fail("pgbouncer is not installed: apt-get install pgbouncer", pytrace=False)
    workdir = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    port = free_port()
    (workdir / "userlist.txt").write_text('"postgres" ""\n')
    (workdir / "pgbouncer.ini").write_text(
        "[databases]\n"
        "* = host=127.0.0.1 port=5432\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {workdir}/userlist.txt\n"
        "pool_mode = transaction\ndefault_pool_size = 5\nmax_client_conn = 500\n"
        f"logfile = {workdir}/pgbouncer.log\npidfile = {workdir}/pgbouncer.pid\n"
    )
    command = [PGBOUNCER, str(workdir / "pgbouncer.ini")]
    if os.geteuid() == 0:
        # PgBouncer refuses to run as root.
        shutil.chown(workdir, "postgres")
        for path in workdir.iterdir():
            shutil.chown(path, "postgres")
        command[1:1] = ["-u", "postgres"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process, "pgbouncer")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


async def admin(statement: str) -> None:
    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def mixed_load(base_url: str) -> list[int]:
    """Concurrent writes, reads, changes and misses: more clients than server connections."""
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        created = await asyncio.gather(
            *(
                client.post("/items", json={"name": f"item {n}", "price": "1.50"})
                for n in range(100)
            )
        )
        ids = [response.json()["id"] for response in created]
        others = await asyncio.gather(
            *(client.get(f"/items/{item_id}") for item_id in ids),
            *(client.patch(f"/items/{item_id}", json={"price": "2.50"}) for item_id in ids),
            *(client.get("/items", params={"limit": 100}) for _ in range(20)),
            *(client.get("/items/2000000000") for _ in range(20)),
            client.get("/health/ready"),
        )
        listed = (await client.get("/items", params={"limit": 100})).json()
        assert len(listed) == 100
        assert {item["price"] for item in listed} == {"2.50"}
        return [response.status_code for response in (*created, *others)]


def test_the_service_and_its_migrations_work_behind_pgbouncer(bake: Bake, pgbouncer: int) -> None:
    project = bake()
    env = environment_without_virtualenv()
    run(["uv", "sync", "--quiet", "--no-dev"], cwd=project, env=env)
    database = f"test_pgbouncer_{uuid.uuid4().hex[:10]}"
    asyncio.run(admin(f'CREATE DATABASE "{database}"'))
    try:
        env |= {
            "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{pgbouncer}/{database}",
            "DATABASE_POOLER": "pgbouncer",
            "DATABASE_ECHO": "false",
        }
        alembic = str(project / ".venv" / "bin" / "alembic")
        run([alembic, "upgrade", "head"], cwd=project, env=env)
        run([alembic, "check"], cwd=project, env=env)

        port = free_port()
        server = subprocess.Popen(
            [str(project / ".venv" / "bin" / project.name), "serve", "--port", str(port)],
            cwd=project,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port, server, "the service")
            statuses = asyncio.run(mixed_load(f"http://127.0.0.1:{port}"))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        assert sorted(set(statuses)) == [200, 201, 404]
        assert statuses.count(404) == 20
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
