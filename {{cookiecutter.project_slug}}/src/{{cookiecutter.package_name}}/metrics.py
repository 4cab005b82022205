"""Prometheus metrics at /metrics: requests by route, and every connection pool's figures.

Each application gets its own registry, built in `add_metrics`: tests and
workers that build several applications in one process never share a series.
With several workers, worker_metrics.py makes one scrape cover them all.
Pool figures are read from the running databases when Prometheus scrapes, so
the request path pays nothing for them.
"""

import time
from collections.abc import Iterable, Iterator
from typing import Final

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.datastructures import State
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from {{ cookiecutter.package_name }}.access_log import unanswered_status
from {{ cookiecutter.package_name }}.admission import Admission
from {{ cookiecutter.package_name }}.health import require_pool_token
from {{ cookiecutter.package_name }}.infrastructure.capacity import (
    CHECKOUT_WAIT_BUCKETS,
    pool_figures,
)
from {{ cookiecutter.package_name }}.infrastructure.config import PRIMARY
from {{ cookiecutter.package_name }}.infrastructure.database import Database
from {{ cookiecutter.package_name }}.worker_metrics import (
    WorkerFigures,
    scrape_registry,
    shared_between_workers,
    sync_while_running,
)

# The route label of requests no route matched: their raw paths would give
# every scanner's guess a series of its own.
UNMATCHED_ROUTE: Final = "unmatched"

router = APIRouter(tags=["metrics"])


class RequestMetrics:
    """The request counter and latency histogram of one application."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time from receiving a request to sending the end of its response.",
            ["method", "route"],
            registry=registry,
        )


class RequestMetricsMiddleware:
    """Count every HTTP request and time it, labelled by the route that served it.

    A pure ASGI middleware, like the access log's, rather than Starlette's
    BaseHTTPMiddleware, which costs a task and a stream per request.
    """

    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request, then count it under its route and status however it ended."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0
        started = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        except BaseException as error:
            # ServerErrorMiddleware, outside this one, sends the 500 for a bug.
            self._observe(scope, status or unanswered_status(error), started)
            raise
        self._observe(scope, status or unanswered_status(None), started)

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        # The router has recorded the matched route in the scope by now.
        route, method = _route_template(scope), scope["method"]
        self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)
        self.metrics.requests.labels(method, route, str(status)).inc()


def _route_template(scope: Scope) -> str:
    path = getattr(scope.get("route"), "path_format", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class PoolCollector(Collector):
    """Read each database's pool figures from the running application at scrape time."""

    def __init__(self, state: State) -> None:
        self.state = state

    def collect(self) -> Iterable[Metric]:
        """Yield one series per database for every pool figure."""
        size = GaugeMetricFamily(
            "db_pool_size", "Connections the pool keeps open.", labels=["database"]
        )
        max_overflow = GaugeMetricFamily(
            "db_pool_max_overflow",
            "Connections the pool may open beyond its size.",
            labels=["database"],
        )
        checked_out = GaugeMetricFamily(
            "db_pool_checked_out", "Connections in use right now.", labels=["database"]
        )
        overflow = GaugeMetricFamily(
            "db_pool_overflow", "Connections open beyond the pool size.", labels=["database"]
        )
        waiting = GaugeMetricFamily(
            "db_pool_checkouts_waiting",
            "Requests taking or waiting for a connection right now.",
            labels=["database"],
        )
        counters = {
            name: CounterMetricFamily(f"db_pool_{name}", text, labels=["database"])
            for name, text in [
                ("connects", "Connections opened to the server."),
                ("checkouts", "Connections handed out by the pool."),
                ("invalidations", "Connections discarded as broken or stale."),
                ("timeouts", "Requests that gave up waiting for a connection."),
            ]
        }
        wait = HistogramMetricFamily(
            "db_pool_checkout_wait_seconds",
            "Time requests waited for their connection.",
            labels=["database"],
        )
        for name, database in self._databases():
            # The same figures /health/pool shows, so the two never disagree.
            figures, stats = pool_figures(database), database.stats
            size.add_metric([name], figures.pool_size)
            max_overflow.add_metric([name], figures.max_overflow)
            checked_out.add_metric([name], figures.checked_out)
            overflow.add_metric([name], figures.overflow)
            waiting.add_metric([name], stats.acquiring)
            counters["connects"].add_metric([name], figures.connects)
            counters["checkouts"].add_metric([name], figures.checkouts)
            counters["invalidations"].add_metric([name], figures.invalidations)
            counters["timeouts"].add_metric([name], figures.timeouts)
            wait.add_metric(
                [name], _cumulative_buckets(stats.checkout_waits), stats.checkout_wait_seconds
            )
        yield from [size, max_overflow, checked_out, overflow, waiting, *counters.values(), wait]
        yield from self._requests()

    def _requests(self) -> Iterator[Metric]:
        admission: Admission | None = getattr(self.state, "admission", None)
        if admission is None:
            return
        yield GaugeMetricFamily(
            "http_requests_in_flight",
            "Requests in progress right now (health and metrics routes aside).",
            value=admission.in_flight,
        )
        yield GaugeMetricFamily(
            "http_requests_in_flight_limit",
            "Requests that may be in progress at once (MAX_REQUESTS_IN_FLIGHT).",
            value=admission.limit,
        )
        yield CounterMetricFamily(
            "http_requests_refused",
            "Requests answered 503 at once because the limit was reached.",
            value=admission.refused,
        )

    def _databases(self) -> Iterator[tuple[str, Database]]:
        # Before the lifespan has run, and after it ended, there is nothing to read.
        database: Database | None = getattr(self.state, "database", None)
        if database is not None:
            yield PRIMARY, database
        extra: dict[str, Database] = getattr(self.state, "extra_databases", {})
        yield from extra.items()


def _cumulative_buckets(counts: list[int]) -> list[tuple[str, float]]:
    bounds = [str(bound) for bound in CHECKOUT_WAIT_BUCKETS] + ["+Inf"]
    running = 0
    buckets = []
    for bound, count in zip(bounds, counts, strict=True):
        running += count
        buckets.append((bound, float(running)))
    return buckets


@router.get(
    "/metrics",
    dependencies=[Depends(require_pool_token)],
    response_class=Response,
    responses={401: {"description": "Missing or wrong token"}},
)
async def metrics(request: Request) -> Response:
    """Show request and connection pool metrics in Prometheus' text format."""
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def add_metrics(app: FastAPI) -> None:
    """Give `app` its own registry, count its requests, and serve them at /metrics."""
    if shared_between_workers():
        # Every worker writes to the shared files; a scrape reads them all back.
        registry = scrape_registry()
        metrics = RequestMetrics(CollectorRegistry())
        sync_while_running(app, WorkerFigures(CollectorRegistry()))
    else:
        registry = CollectorRegistry()
        registry.register(PoolCollector(app.state))
        metrics = RequestMetrics(registry)
    app.state.metrics_registry = registry
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    app.include_router(router)
