"""Tracing: a span per request, its statements' spans under it, its trace id on its log lines."""

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util._once import Once
from sqlalchemy import text

from {{ cookiecutter.package_name }}.infrastructure.config import Settings
from {{ cookiecutter.package_name }}.infrastructure.database import SessionDep
from {{ cookiecutter.package_name }}.logs import LogFormat
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.telemetry import configure_from_environment, tracer_provider
from tests.conftest import in_process_client
from tests.test_access_log import access_lines, json_lines

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
CALLER_SPAN_ID = 0x00F067AA0BA902B7
TRACEPARENT = f"00-{TRACE_ID:032x}-{CALLER_SPAN_ID:016x}-01"
# What a client sends that no span may hold: in the query string, a header,
# the body, a SQL parameter, and the error message a failing statement quotes.
SECRET = "s3cret-Value-81f2"


@dataclass
class Traces:
    """The spans the service finished, as its collector would receive them."""

    provider: TracerProvider
    exporter: InMemorySpanExporter

    def finished(self) -> list[ReadableSpan]:
        """Every span exported so far."""
        self.provider.force_flush()
        return list(self.exporter.get_finished_spans())


def reset_global_providers() -> None:
    """Forget the process's tracer and meter providers; the API allows setting each only once."""
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    metrics_internal._METER_PROVIDER_SET_ONCE = Once()
    metrics_internal._METER_PROVIDER = None


@pytest.fixture
def traces() -> Iterator[Traces]:
    """The service's own provider, exporting in memory instead of to a collector."""
    exporter = InMemorySpanExporter()
    provider = tracer_provider(exporter)
    reset_global_providers()
    trace.set_tracer_provider(provider)
    yield Traces(provider, exporter)
    provider.shutdown()
    reset_global_providers()


def add_test_routes(app: FastAPI) -> None:
    """A route that runs a statement with a parameter, and one whose statement fails."""

    async def lookup(session: SessionDep, token: str) -> dict[str, Any]:
        value = await session.scalar(text("SELECT CAST(:token AS text)"), {"token": token})
        return {"length": len(str(value))}

    async def bad_cast(session: SessionDep, token: str) -> None:
        # PostgreSQL's error quotes the value: invalid input syntax for type integer: "..."
        await session.execute(text("SELECT CAST(:token AS integer)"), {"token": token})

    app.add_api_route("/test/lookup", lookup)
    app.add_api_route("/test/bad-cast", bad_cast)


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[AsyncClient]:
    """Start the service with JSON log lines and the test routes; give a client."""
    # Built inside the test, so that its log handler writes to the stderr capsys reads.
    app = create_app(settings.model_copy(update={"log_format": LogFormat.JSON}))
    add_test_routes(app)
    async with in_process_client(app, lifespan=True) as client:
        yield client


@pytest.fixture
async def traced_client(settings: Settings, traces: Traces) -> AsyncIterator[AsyncClient]:
    """A client of the service, started once tracing is configured."""
    async with serving(settings) as client:
        yield client


def request_span(spans: list[ReadableSpan], trace_id: int) -> ReadableSpan:
    """The one server span of the trace `trace_id`."""
    (found,) = [
        span
        for span in spans
        if span.kind is SpanKind.SERVER and span.context is not None
        if span.context.trace_id == trace_id
    ]
    return found


def statement_spans(spans: list[ReadableSpan], under: ReadableSpan) -> list[ReadableSpan]:
    """The database statements' spans that descend from the span `under`."""
    by_id = {span.context.span_id: span for span in spans if span.context is not None}
    assert under.context is not None

    def descends(span: ReadableSpan) -> bool:
        while span.parent is not None and span.parent.span_id in by_id:
            span = by_id[span.parent.span_id]
            if span is under:
                return True
        return False

    return [span for span in spans if _statement(span) is not None and descends(span)]


def _statement(span: ReadableSpan) -> Any:
    attributes = span.attributes or {}
    return attributes.get("db.statement", attributes.get("db.query.text"))


def everything_recorded(spans: list[ReadableSpan]) -> str:
    """All text the spans carry, for a search."""
    return repr(
        [(span.name, dict(span.attributes or {}), span.events, span.status) for span in spans]
    )


async def test_a_callers_trace_continues_with_a_span_per_statement_under_the_request(
    settings: Settings, traces: Traces, capsys: pytest.CaptureFixture[str]
) -> None:
    async with serving(settings) as client:
        capsys.readouterr()  # start-up lines
        response = await client.get(
            f"/test/lookup?token={SECRET}",
            headers={"traceparent": TRACEPARENT, "Authorization": f"Bearer {SECRET}"},
        )
    assert response.status_code == 200, response.text
    spans = traces.finished()
    served = request_span(spans, TRACE_ID)
    assert served.parent is not None
    assert served.parent.span_id == CALLER_SPAN_ID
    assert (served.attributes or {})["http.route"] == "/test/lookup"
    statements = statement_spans(spans, served)
    # The SQL with its placeholder, never the value bound to it.
    assert [_statement(span) for span in statements] == ["SELECT CAST($1 AS text)"]
    assert all(span.kind is SpanKind.CLIENT for span in statements)
    # The trace id is the request id: returned, and on the request's log lines.
    request_id = f"{TRACE_ID:032x}"
    assert response.headers["X-Request-ID"] == request_id
    (access,) = access_lines(json_lines(capsys.readouterr().err))
    assert access["request_id"] == request_id
    assert SECRET not in everything_recorded(spans)


async def test_a_failed_statement_is_marked_without_its_message(
    traced_client: AsyncClient, traces: Traces
) -> None:
    response = await traced_client.get(f"/test/bad-cast?token={SECRET}")
    assert response.status_code == 500
    spans = traces.finished()
    served = request_span(spans, int(response.headers["X-Request-ID"], 16))
    assert served.status.status_code is StatusCode.ERROR
    (failed,) = statement_spans(spans, served)
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description is None
    assert SECRET not in everything_recorded(spans)


async def test_an_untraced_caller_gets_a_new_trace_and_keeps_its_own_request_id(
    traced_client: AsyncClient, traces: Traces
) -> None:
    fresh = await traced_client.get("/test/lookup?token=a")
    given = await traced_client.get("/test/lookup?token=b", headers={"X-Request-ID": "mine-1"})
    spans = traces.finished()
    # Without a traceparent the trace is new, and its id is the request id...
    assert statement_spans(spans, request_span(spans, int(fresh.headers["X-Request-ID"], 16)))
    # ...unless the caller named the request itself.
    assert given.headers["X-Request-ID"] == "mine-1"
    assert len([span for span in spans if span.kind is SpanKind.SERVER]) == 2


async def test_nothing_is_traced_or_instrumented_without_a_provider(settings: Settings) -> None:
    app = create_app(settings)
    add_test_routes(app)
    async with in_process_client(app, lifespan=True) as client:
        assert not SQLAlchemyInstrumentor().is_instrumented_by_opentelemetry
        response = await client.get("/test/lookup?token=a")
    assert len(response.headers["X-Request-ID"]) == 16


@pytest.mark.parametrize(
    ("environment", "traced", "metered"),
    [
        ({}, False, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True, False),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"},
            False,
            False,
        ),
    ],
)
def test_export_starts_only_when_a_collector_is_named(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], traced: bool, metered: bool
) -> None:
    for name in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OTEL_SDK_DISABLED",
    ]:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    reset_global_providers()
    try:
        configure_from_environment()
        tracer_provider_set = trace.get_tracer_provider()
        meter_provider_set = metrics.get_meter_provider()
        assert isinstance(tracer_provider_set, TracerProvider) is traced
        assert isinstance(meter_provider_set, MeterProvider) is metered
        if isinstance(tracer_provider_set, TracerProvider):
            service = tracer_provider_set.resource.attributes["service.name"]
            assert service == "{{ cookiecutter.project_slug }}"
    finally:
        for provider in [trace.get_tracer_provider(), metrics.get_meter_provider()]:
            if isinstance(provider, TracerProvider | MeterProvider):
                provider.shutdown()
        reset_global_providers()
