"""The generated service behind a real PgBouncer in transaction mode (Debian's pgbouncer)."""

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.baking import Bake
from tests.services import (
    free_port,
    install,
    migrate,
    serving,
    throwaway_database,
    wait_for_port,
)

pytestmark = pytest.mark.slow

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


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
    env = install(project)
    with throwaway_database("test_pgbouncer") as database:
        env |= {
            "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{pgbouncer}/{database}",
            "DATABASE_POOLER": "pgbouncer",
            "DATABASE_ECHO": "false",
        }
        migrate(project, env, "upgrade head", "check")
        with serving(project, env) as port:
            statuses = asyncio.run(mixed_load(f"http://127.0.0.1:{port}"))
    assert sorted(set(statuses)) == [200, 201, 404]
    assert statuses.count(404) == 20


def test_an_extra_database_behind_pgbouncer_gets_the_same_handling(
    bake: Bake, pgbouncer: int
) -> None:
    project = bake()
    env = install(project)
    with throwaway_database("test_pgbouncer_replica") as database:
        # The primary straight to PostgreSQL, the replica (the same database,
        # here) through PgBouncer: the listings then go through PgBouncer.
        env |= {
            "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}",
            "DATABASE_ECHO": "false",
            "DATABASES__REPLICA__URL": f"postgresql+asyncpg://postgres@127.0.0.1:{pgbouncer}/{database}",
            "DATABASES__REPLICA__POOLER": "pgbouncer",
            "DATABASES__REPLICA__ECHO": "false",
        }
        migrate(project, env, "upgrade head")
        with serving(project, env) as port:
            statuses = asyncio.run(mixed_load(f"http://127.0.0.1:{port}"))
            ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=10).json()
    assert sorted(set(statuses)) == [200, 201, 404]
    assert ready == {"status": "ok", "databases": {"primary": "ok", "replica": "ok"}}
