"""The real server process: overload is answered in time, SIGTERM drains and disposes."""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from tests.conftest import PROJECT_ROOT, connection_count

# Real server processes and floods of requests: `make test-fast` leaves them out.
pytestmark = pytest.mark.slow

POOL_TIMEOUT = 1.0
POOL_SIZE = 5
CONCURRENT_REQUESTS = 1000
# How long the lock's holder waits at most for every refusal: far beyond the pool
# timeout, so a slow machine only waits longer, and a service that makes requests
# wait for a connection to come free fails the test rather than hanging it.
HOLD_BOUND = 30 * POOL_TIMEOUT
# Keep-alive connections that keep the server busy, and the burst of new ones
# that must be served beside them.
BUSY_CONNECTIONS = 100
NEW_CONNECTIONS = 100
LIVENESS_REQUEST = b"GET /health/live HTTP/1.1\r\nHost: test\r\n\r\n"
# How long the server's processes get to exit on SIGTERM before they are killed.
STOP_GRACE = 10.0
# The `serve` command, run as its console script runs it, with the probe's routes in every worker.
COMMAND = [sys.executable, "-c", "from tests.probe import serve; serve()"]


@dataclass
class Server:
    """A running `serve` process."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def stop(self) -> str:
        """Send SIGTERM, wait for the exit, and return everything the server printed."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        return self.log.read_text()


def end_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server and its workers, then SIGKILL whatever is left after a bound."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while group_is_alive(process) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def group_is_alive(process: subprocess.Popen[bytes]) -> bool:
    """Whether any process of the server's group still exists (workers may outlive it)."""
    process.poll()  # reap the server itself once it has exited
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    return True


StartServer = Callable[..., Server]


@pytest.fixture
def start_server(
    database_url: str, application_name: str, unused_tcp_port: int, tmp_path: Path
) -> Iterator[StartServer]:
    """Start `serve` on a free port with extra environment variables; end it afterwards.

    Each server leads a process group of its own, and the group is ended, so that
    no worker is left listening when the server itself has died or a test failed.
    """
    processes: list[subprocess.Popen[bytes]] = []
    # A file, not a pipe: a pipe nobody reads fills up and blocks the server.
    log = tmp_path / "server.log"

    def start(**environment: str) -> Server:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(PROJECT_ROOT),
            "DATABASE_URL": database_url,
            "DATABASE_APPLICATION_NAME": application_name,
            "DATABASE_ECHO": "false",
        } | environment
        with log.open("wb") as output:
            process = subprocess.Popen(
                [*COMMAND, "serve", "--port", str(unused_tcp_port)],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        processes.append(process)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                httpx.get(f"http://127.0.0.1:{unused_tcp_port}/health/live", timeout=1)
            except httpx.TransportError:
                time.sleep(0.1)
            else:
                return Server(process, unused_tcp_port, log)
        end_process_group(process)
        pytest.fail(f"the server did not start:\n{log.read_text()}", pytrace=False)

    yield start
    for process in processes:
        end_process_group(process)
    # pytest shows a test's captured output only when it fails: then the server's
    # lines (a worker restarted, a traceback) say what the client could not see.
    if log.exists():
        print(f"server output:\n{log.read_text()}")


async def raw_request(port: int, method: str, path: str, body: bytes = b"") -> tuple[int, float]:
    """Send one HTTP/1.1 request on a fresh socket; return the status and the seconds it took.

    A bare socket keeps the client's own work out of the measurement.
    """
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
    response = await reader.read()
    writer.close()
    return int(response.split(b" ", 2)[1]), time.perf_counter() - started


async def read_response(reader: asyncio.StreamReader) -> bytes:
    """Read one keep-alive response (headers and a Content-Length body); return the body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return await reader.readexactly(length)


async def run_admin_sql(database_url: str, statement: str, **parameters: object) -> None:
    """Run one statement on the test database, outside the server."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(statement), parameters)
    finally:
        await engine.dispose()


@asynccontextmanager
async def locked_probe(database_url: str, item_id: int) -> AsyncIterator[AsyncConnection]:
    """Hold a row lock on the probe, so that requests changing it wait like slow queries."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.execute(
                text("SELECT id FROM probe.probes WHERE id = :id FOR UPDATE"), {"id": item_id}
            )
            yield connection
            await connection.rollback()
    finally:
        await engine.dispose()


async def test_a_thousand_concurrent_requests_without_a_connection_are_refused_while_it_is_held(
    start_server: StartServer, database_url: str
) -> None:
    # An ordering, not a stopwatch: the requests that get none of the pool's
    # connections must all be answered 503 while the holders still wait on the
    # lock, that is by the pool timeout or the queue, never by a connection
    # coming free; then the holders finish with 200.
    port = start_server(
        DATABASE_POOL_SIZE=str(POOL_SIZE),
        DATABASE_MAX_OVERFLOW="0",
        DATABASE_POOL_TIMEOUT=str(POOL_TIMEOUT),
    ).port
    released, refused_all = asyncio.Event(), asyncio.Event()
    answered_while_held = 0

    async def send(path: str, body: bytes) -> tuple[int, bool]:
        """Send one request; return its status and whether the lock was still held."""
        nonlocal answered_while_held
        status, _ = await raw_request(port, "PATCH", path, body)
        held = not released.is_set()
        if held:
            answered_while_held += 1
            if answered_while_held == CONCURRENT_REQUESTS - POOL_SIZE:
                refused_all.set()
        return status, held

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        item = (await client.post("/probes", json={"name": "Hot", "price": "1"})).json()
        path = f"/probes/{item['id']}"
        async with locked_probe(database_url, item["id"]):
            requests = [send(path, b'{"price": "2.00"}') for _ in range(CONCURRENT_REQUESTS)]
            load = asyncio.gather(*requests)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HOLD_BOUND):
                    await refused_all.wait()
            released.set()
        results = await load
        while_held = [status for status, held in results if held]
        after_release = [status for status, held in results if not held]
        assert set(while_held) == {503}, f"{while_held.count(200)} answered 200 while held"
        assert after_release == [200] * POOL_SIZE, f"after the release: {after_release}"
        # Load gone: the service serves normally, with every connection back.
        assert (await client.get(path)).json()["price"] == "2.00"
        pool = (await client.get("/health/pool")).json()
        assert pool["checked_out"] == 0
        assert pool["timeouts"] + pool["requests"]["refused"] == len(while_held)
        await client.delete(path)


async def test_new_connections_are_served_while_the_server_is_busy(
    start_server: StartServer,
) -> None:
    # Counted in turns of the busy clients rather than in seconds: with uvloop,
    # which accepts one connection per loop turn, the burst took about one turn
    # per connection (100); with asyncio's loop, which `serve` uses, two.
    port = start_server().port
    answered = 0
    warm, stop = asyncio.Event(), asyncio.Event()

    async def keep_busy() -> None:
        nonlocal answered
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while not stop.is_set():
            writer.write(LIVENESS_REQUEST)
            await read_response(reader)
            answered += 1
            if answered == 5 * BUSY_CONNECTIONS:
                warm.set()
        writer.close()

    async def connect_once() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(LIVENESS_REQUEST)
        await read_response(reader)
        writer.close()
        return answered

    # A bound on the whole exchange, so that a server gone wrong fails the test
    # instead of hanging it.
    async with asyncio.timeout(60):
        busy = [asyncio.create_task(keep_busy()) for _ in range(BUSY_CONNECTIONS)]
        await warm.wait()
        before = answered
        finished = await asyncio.gather(*(connect_once() for _ in range(NEW_CONNECTIONS)))
        stop.set()
        await asyncio.gather(*busy)
    turns = (max(finished) - before) / BUSY_CONNECTIONS
    assert turns <= 10, f"the last new connection waited {turns:.0f} turns of the busy ones"


async def test_sigterm_finishes_in_flight_requests_then_closes_every_connection(
    start_server: StartServer, database_url: str, application_name: str
) -> None:
    server = start_server()
    base_url = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        item = (await client.post("/probes", json={"name": "Last", "price": "1"})).json()
        async with locked_probe(database_url, item["id"]):
            in_flight = asyncio.create_task(
                client.patch(f"/probes/{item['id']}", json={"name": "Finished"})
            )
            await asyncio.sleep(0.5)
            assert await connection_count(application_name, expected=2) >= 1
            stopping = asyncio.create_task(asyncio.to_thread(server.stop))
            await asyncio.sleep(0.5)
            assert not in_flight.done(), "the server must wait for the request"
        response = await in_flight
        output = await stopping
    assert response.status_code == 200
    assert response.json()["name"] == "Finished"
    # uvicorn re-raises SIGTERM after its clean shutdown, so the status says how it stopped.
    assert server.process.returncode == -signal.SIGTERM
    assert "Application shutdown complete" in output
    assert "Traceback" not in output
    assert await connection_count(application_name, expected=0) == 0


async def test_sigterm_cancels_what_outlasts_the_graceful_shutdown_timeout(
    start_server: StartServer, database_url: str, application_name: str
) -> None:
    server = start_server(GRACEFUL_SHUTDOWN_TIMEOUT="1")
    base_url = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        item = (await client.post("/probes", json={"name": "Stuck", "price": "1"})).json()
        # The lock is held until the server has exited: only the timeout can end the request.
        async with locked_probe(database_url, item["id"]):
            in_flight = asyncio.create_task(
                client.patch(f"/probes/{item['id']}", json={"name": "Never"})
            )
            await asyncio.sleep(0.5)
            output = await asyncio.to_thread(server.stop)
        with pytest.raises(httpx.RemoteProtocolError):
            await in_flight
    assert "timeout graceful shutdown exceeded" in output
    assert "Application shutdown complete" in output
    assert await connection_count(application_name, expected=0) == 0
    await run_admin_sql(database_url, "DELETE FROM probe.probes WHERE id = :id", id=item["id"])


async def test_each_worker_has_its_own_pool_and_all_stay_within_the_budget(
    start_server: StartServer, application_name: str
) -> None:
    server = start_server(WEB_CONCURRENCY="2", DATABASE_POOL_SIZE="2", DATABASE_MAX_OVERFLOW="1")
    limit = 2 * (2 + 1)
    peak = 0

    async def watch(stop: asyncio.Event) -> None:
        nonlocal peak
        while not stop.is_set():
            # within=0: read the count once, without waiting for any value.
            now = await connection_count(application_name, expected=-1, within=0)
            peak = max(peak, now)
            await asyncio.sleep(0.02)

    stop = asyncio.Event()
    watcher = asyncio.create_task(watch(stop))
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{server.port}", limits=limits, timeout=30
    ) as client:
        responses = await asyncio.gather(*(client.get("/probes") for _ in range(400)))
    stop.set()
    await watcher
    assert {response.status_code for response in responses} <= {200, 503}
    # More connections than one pool may hold, so each worker has its own, and
    # never more than all the workers' pools together.
    assert 2 + 1 < peak <= limit
    server.stop()
    assert await connection_count(application_name, expected=0) == 0


async def test_prod_writes_every_line_as_json_with_one_access_line_per_request(
    start_server: StartServer,
) -> None:
    # Two workers, so that the lines of the process supervising them are checked too.
    server = start_server(
        DATABASE_PROFILE="prod",
        # Trust authentication needs no password; prod refuses that unless told.
        DATABASE_ALLOW_INSECURE="true",
        WEB_CONCURRENCY="2",
        DATABASE_POOL_SIZE="1",
        DATABASE_MAX_OVERFLOW="0",
    )
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        listed = await client.get("/probes?secret=Xq7-query", headers={"X-Request-ID": "srv-1"})
        missing = await client.get("/probes/2000000000")
    output = server.stop()
    assert listed.status_code == 200
    assert listed.headers["X-Request-ID"] == "srv-1"
    assert missing.status_code == 404
    # uvicorn's own lines too: start-up, shutdown, and none of its access lines.
    entries = [json.loads(line) for line in output.splitlines()]
    messages = [entry["message"] for entry in entries if entry["logger"] == "uvicorn.error"]
    assert any(message.startswith("Started parent process") for message in messages)
    assert messages.count("Application shutdown complete.") == 2
    access = [entry for entry in entries if entry["logger"].endswith(".access_log")]
    # The start-up probe's requests first, then this test's two.
    assert [(entry["method"], entry["path"], entry["status"]) for entry in access[-2:]] == [
        ("GET", "/probes", 200),
        ("GET", "/probes/2000000000", 404),
    ]
    assert access[-2]["request_id"] == "srv-1"
    assert access[-1]["request_id"] == missing.headers["X-Request-ID"]
    assert all(entry["path"] == "/health/live" for entry in access[:-2])
    assert "Xq7-query" not in output


async def test_ending_a_server_whose_supervisor_died_leaves_no_worker_listening(
    start_server: StartServer,
) -> None:
    server = start_server(WEB_CONCURRENCY="2")
    # Only the supervisor dies, as when a test run is killed: its workers keep the port.
    server.process.kill()
    server.process.wait()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        assert (await client.get("/health/live")).status_code == 200
    end_process_group(server.process)
    assert not group_is_alive(server.process)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", server.port)


@pytest.mark.parametrize(
    ("framing", "sent"),
    [
        (b"Content-Length: 1048576", b""),
        # One chunk of 2 KiB, and never the chunk that would end the body.
        (b"Transfer-Encoding: chunked", b"800\r\n" + b"x" * 2048 + b"\r\n"),
    ],
)
async def test_a_body_over_the_limit_is_answered_413_before_the_client_sends_the_rest(
    start_server: StartServer, framing: bytes, sent: bytes
) -> None:
    server = start_server(MAX_REQUEST_BODY_BYTES="1024")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = b"POST /items HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
    writer.write(head + framing + b"\r\n\r\n" + sent)
    await writer.drain()
    # The server answers and closes the connection, rather than waiting for the body.
    async with asyncio.timeout(10):
        response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"x-request-id: " in head.lower()
    assert json.loads(body) == {
        "detail": "The request body is larger than the 1024 bytes this service accepts."
    }
