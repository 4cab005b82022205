"""Two workers, one scrape: /metrics of a real `serve` sums what every worker counted."""

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests import test_server

# A real two-worker server: `make test-fast` leaves it out.
pytestmark = pytest.mark.slow

# The fixture, under its own name, for the tests below.
start_server = test_server.start_server

# Requests only this test sends: no route matches them, and nothing else asks.
PATH = "/no/such/route"
UNMATCHED = {"method": "GET", "route": "unmatched", "status": "404"}
BATCH = 20
POOL_SIZE = 3


def samples(text: str, name: str) -> list[Sample]:
    """Every sample called `name` in a scrape."""
    return [
        found
        for family in text_string_to_metric_families(text)
        for found in family.samples
        if found.name == name
    ]


def unmatched_by_worker(directory: Path) -> dict[str, float]:
    """Each worker's count of the unmatched requests, read from that worker's own file."""
    counts = {}
    for path in directory.glob("counter_*.db"):
        # merge is how the scrape reads the files, here one worker's alone.
        merged = MultiProcessCollector.merge([str(path)], accumulate=False)  # type: ignore[no-untyped-call]
        for metric in merged:
            for found in metric.samples:
                if found.name == "http_requests_total" and found.labels == UNMATCHED:
                    counts[path.stem] = found.value
    return counts


async def test_one_scrape_sums_the_requests_and_shows_the_pools_of_both_workers(
    start_server: test_server.StartServer, tmp_path: Path
) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    server = start_server(
        WEB_CONCURRENCY="2", TMPDIR=str(temporary), DATABASE_POOL_SIZE=str(POOL_SIZE)
    )
    # serve made the directory the workers share.
    (directory,) = temporary.glob("*-metrics-*")
    workers = worker_pids(directory)
    # The kernel hands new connections to whichever worker accepts first, and
    # that is mostly the same one: each worker in turn is paused while the
    # other serves, so that both count requests.
    for paused in workers:
        os.kill(paused, signal.SIGSTOP)
        try:
            answers = await asyncio.gather(
                *[test_server.raw_request(server.port, "GET", PATH) for _ in range(BATCH)]
            )
        finally:
            os.kill(paused, signal.SIGCONT)
        assert {status for status, _ in answers} == {404}
    by_worker = unmatched_by_worker(directory)
    assert by_worker == {f"counter_{pid}": BATCH for pid in workers}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    # One worker answered the scrape, and it shows every worker's requests...
    (counted,) = [
        found.value
        for found in samples(response.text, "http_requests_total")
        if found.labels == UNMATCHED
    ]
    assert counted == 2 * BATCH
    # ...and every worker's pool, one series each.
    sizes = {
        int(found.labels["pid"]): found.value
        for found in samples(response.text, "db_pool_size")
        if found.labels.get("database") == "primary"
    }
    assert sizes == dict.fromkeys(workers, POOL_SIZE)
    server.stop()
    # Gone with the server.
    assert not directory.exists()


def worker_pids(directory: Path) -> list[int]:
    """The two workers' process ids, once both have written their pool figures."""
    deadline = time.monotonic() + 30
    while len(files := sorted(directory.glob("gauge_liveall_*.db"))) < 2:
        assert time.monotonic() < deadline, "the workers wrote no pool figures"
        time.sleep(0.05)
    return [int(path.stem.rpartition("_")[2]) for path in files]
