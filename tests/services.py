"""Run a baked project's service against the local PostgreSQL, for the slow tiers."""

import asyncio
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import pytest

from tests.baking import environment_without_virtualenv, run

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    """Wait until `process` listens on `port`, failing the test if it exits or takes 30 s."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode}", pytrace=False)
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"{what} did not listen on {port} within 30 s", pytrace=False)


async def admin(statement: str) -> None:
    """Run one statement as the local server's postgres user."""
    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def throwaway_database(prefix: str) -> Iterator[str]:
    """A new database on the local server, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield name
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def install(project: Path) -> dict[str, str]:
    """Install a baked project's runtime dependencies; return an environment to run it in."""
    env = environment_without_virtualenv()
    run(["uv", "sync", "--quiet", "--no-dev"], cwd=project, env=env)
    return env


def migrate(project: Path, env: dict[str, str], *commands: str) -> None:
    """Run Alembic commands (default: upgrade head) in the project with `env`."""
    alembic = str(project / ".venv" / "bin" / "alembic")
    for command in commands or ("upgrade head",):
        run([alembic, *command.split()], cwd=project, env=env)


@contextmanager
def serving(project: Path, env: dict[str, str]) -> Iterator[int]:
    """Run the project's `serve` on a free port; SIGTERM must stop it within 30 s."""
    port = free_port()
    command = [str(project / ".venv" / "bin" / project.name), "serve", "--port", str(port)]
    server = subprocess.Popen(
        command, cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port, server, "the service")
        yield port
    finally:
        server.send_signal(signal.SIGTERM)
        # uvicorn re-raises SIGTERM after a clean shutdown.
        assert server.wait(timeout=30) in (0, -signal.SIGTERM)
