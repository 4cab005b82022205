"""Metrics with several workers: each writes its figures to a shared directory, /metrics sums them.

With WEB_CONCURRENCY > 1, `serve` makes a temporary directory for
prometheus-client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR) and removes it
on exit. Request counts and latencies go there by themselves; the pool and
admission figures, which live in each worker's memory, are copied there every
SYNC_INTERVAL_SECONDS. Gauges keep one series per live worker (a `pid` label):
sum them for the service, compare them to find a worker in trouble.
"""

import asyncio
import atexit
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.datastructures import State

from {{ cookiecutter.package_name }}.admission import Admission
from {{ cookiecutter.package_name }}.infrastructure.capacity import (
    CHECKOUT_WAIT_BUCKETS,
    pool_figures,
)
from {{ cookiecutter.package_name }}.infrastructure.config import PRIMARY, SERVICE_NAME
from {{ cookiecutter.package_name }}.infrastructure.database import Database

MULTIPROCESS_DIRECTORY: Final = "PROMETHEUS_MULTIPROC_DIR"
# How stale a worker's pool figures may be in a scrape.
SYNC_INTERVAL_SECONDS: Final = 1.0

_POOL_GAUGES: Final = {
    "size": "Connections the pool keeps open.",
    "max_overflow": "Connections the pool may open beyond its size.",
    "checked_out": "Connections in use right now.",
    "overflow": "Connections open beyond the pool size.",
    "checkouts_waiting": "Requests taking or waiting for a connection right now.",
}
_POOL_COUNTERS: Final = {
    "connects": "Connections opened to the server.",
    "checkouts": "Connections handed out by the pool.",
    "invalidations": "Connections discarded as broken or stale.",
    "timeouts": "Requests that gave up waiting for a connection.",
}


def share_metrics_between_workers(workers: int) -> None:
    """Give several workers a directory to write metrics to, removed when this process exits."""
    if workers < 2 or os.environ.get(MULTIPROCESS_DIRECTORY):
        return
    directory = tempfile.mkdtemp(prefix=f"{SERVICE_NAME}-metrics-")
    # Before uvicorn starts the workers: prometheus-client reads it at import.
    os.environ[MULTIPROCESS_DIRECTORY] = directory
    atexit.register(shutil.rmtree, directory, ignore_errors=True)


def shared_between_workers() -> bool:
    """Whether this process writes its metrics where every worker's are summed."""
    return bool(os.environ.get(MULTIPROCESS_DIRECTORY))


def scrape_registry() -> CollectorRegistry:
    """A registry that reads every worker's files when scraped."""
    registry = CollectorRegistry()
    # prometheus-client leaves its multiprocess module without annotations.
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


class WorkerFigures:
    """This worker's pool and admission figures, written where /metrics sums them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["database"]
        self.gauges = {
            name: Gauge(
                f"db_pool_{name}", text, labels, registry=registry, multiprocess_mode="liveall"
            )
            for name, text in _POOL_GAUGES.items()
        }
        self.counters = {
            name: Counter(f"db_pool_{name}", text, labels, registry=registry)
            for name, text in _POOL_COUNTERS.items()
        }
        self.waits = Histogram(
            "db_pool_checkout_wait_seconds",
            "Time requests waited for their connection.",
            labels,
            buckets=CHECKOUT_WAIT_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "http_requests_in_flight",
            "Requests in progress right now (health and metrics routes aside).",
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.limit = Gauge(
            "http_requests_in_flight_limit",
            "Requests that may be in progress at once (MAX_REQUESTS_IN_FLIGHT).",
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.refused = Counter(
            "http_requests_refused",
            "Requests answered 503 at once because the limit was reached.",
            registry=registry,
        )
        # What the counters above already hold, by counter and database.
        self.written: dict[tuple[str, str], int] = {}

    def watch(self, state: State) -> None:
        """Record each database's checkout waits as they happen."""
        for name, database in databases(state):
            database.stats.checkout_wait_observers.append(self.waits.labels(name).observe)

    def sync(self, state: State) -> None:
        """Copy the worker's current figures into the shared files."""
        for name, database in databases(state):
            figures = pool_figures(database)
            current = {
                "size": figures.pool_size,
                "max_overflow": figures.max_overflow,
                "checked_out": figures.checked_out,
                "overflow": figures.overflow,
                "checkouts_waiting": database.stats.acquiring,
            }
            for gauge, value in current.items():
                self.gauges[gauge].labels(name).set(value)
            totals = {
                "connects": figures.connects,
                "checkouts": figures.checkouts,
                "invalidations": figures.invalidations,
                "timeouts": figures.timeouts,
            }
            for counter, total in totals.items():
                self._add((counter, name), self.counters[counter].labels(name), total)
        admission: Admission | None = getattr(state, "admission", None)
        if admission is not None:
            self.in_flight.set(admission.in_flight)
            self.limit.set(admission.limit)
            self._add(("refused", ""), self.refused, admission.refused)

    def _add(self, key: tuple[str, str], counter: Counter, total: int) -> None:
        # A shared file holds a counter, so each sync adds what is new since the last.
        new = total - self.written.get(key, 0)
        if new > 0:
            counter.inc(new)
            self.written[key] = total


def databases(state: State) -> list[tuple[str, Database]]:
    """The running application's databases by name; none before it starts or after it stops."""
    database: Database | None = getattr(state, "database", None)
    primary = [(PRIMARY, database)] if database is not None else []
    extra: dict[str, Database] = getattr(state, "extra_databases", {})
    return [*primary, *extra.items()]


def sync_while_running(app: FastAPI, figures: WorkerFigures) -> None:
    """Wrap `app`'s lifespan: copy its figures while it runs; drop its gauges when it stops."""
    run_app = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with run_app(app):
            figures.watch(app.state)
            syncing = asyncio.create_task(_keep_synced(app.state, figures))
            try:
                yield
            finally:
                syncing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await syncing
                figures.sync(app.state)
                # Its counters stay in the sums; its gauges leave with the worker.
                mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    app.router.lifespan_context = lifespan


async def _keep_synced(state: State, figures: WorkerFigures) -> None:
    while True:
        figures.sync(state)
        await asyncio.sleep(SYNC_INTERVAL_SECONDS)
