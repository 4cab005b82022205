"""OpenTelemetry: a trace per request, with a span per database statement, sent over OTLP.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is
set: a service with no collector pays nothing for spans nobody would receive.
FastAPI's own telemetry layer makes the request spans with the provider set
here; the exporters read the other standard OTEL_* variables themselves
(headers, timeout, certificate, compression; the service name and resource).
What leaves the process holds no request input: no query string, header or
body, no SQL parameter, and no error message, which may quote a stored value.
"""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Final

from fastapi import FastAPI
from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Status
from sqlalchemy import Engine

from {{ cookiecutter.package_name }}.infrastructure.config import (
    SERVICE_NAME as DEFAULT_SERVICE_NAME,
)
from {{ cookiecutter.package_name }}.infrastructure.database import Database

# Attributes, by name or prefix, that would carry what a client sent or a row
# held: FastAPI records the query string, and instrumentations may add these.
REQUEST_INPUT: Final = (
    "url.query",
    "url.full",
    "http.request.header.",
    "http.response.header.",
    "http.request.body",
    "db.query.parameter.",
    "db.statement.parameters",
    "exception.",
)


def endpoint_configured(signal: str) -> bool:
    """Whether OTEL_* names a collector for `signal` (TRACES, METRICS) and leaves the SDK on."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(
        os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


class RedactingSpanExporter(SpanExporter):
    """Export spans without request input, SQL parameters or error messages."""

    def __init__(self, exporter: SpanExporter) -> None:
        self.exporter = exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Pass each span on, rebuilt without what it must not carry."""
        return self.exporter.export([redacted(span) for span in spans])

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter."""
        return self.exporter.force_flush(timeout_millis)


def redacted(span: ReadableSpan) -> ReadableSpan:
    """Return `span` without request input, exception events or a status message."""
    attributes = dict(span.attributes or {})
    kept = {key: value for key, value in attributes.items() if not key.startswith(REQUEST_INPUT)}
    # A failed statement's status quotes the driver's message, and with it the
    # value that broke a constraint; the span keeps only that it failed.
    events = [event for event in span.events if event.name != "exception"]
    if (
        len(kept) == len(attributes)
        and len(events) == len(span.events)
        and not span.status.description
    ):
        return span
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=kept,
        events=events,
        links=span.links,
        kind=span.kind,
        status=Status(span.status.status_code),
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def tracer_provider(exporter: SpanExporter) -> TracerProvider:
    """Build the provider the service traces with, exporting through `exporter` in batches."""
    provider = TracerProvider(resource=service_resource())
    provider.add_span_processor(BatchSpanProcessor(RedactingSpanExporter(exporter)))
    return provider


def service_resource() -> Resource:
    """Name this process: OTEL_SERVICE_NAME if set, else the project's name; its own instance id."""
    # An id per process: each worker's metrics are a series of their own, not
    # one series that two workers keep overwriting.
    resource = Resource.create({SERVICE_INSTANCE_ID: str(uuid.uuid4())})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


def configure_from_environment() -> None:
    """Install this process's tracer and meter providers if OTEL_* names a collector."""
    # Once per process: each uvicorn worker calls this from its own create_app.
    if endpoint_configured("TRACES") and not isinstance(
        trace.get_tracer_provider(), TracerProvider
    ):
        trace.set_tracer_provider(tracer_provider(OTLPSpanExporter()))
    if endpoint_configured("METRICS") and not isinstance(
        metrics.get_meter_provider(), MeterProvider
    ):
        reader = PeriodicExportingMetricReader(OTLPMetricExporter())
        provider = MeterProvider(metric_readers=[reader], resource=service_resource())
        metrics.set_meter_provider(provider)


def engines_of(app: FastAPI) -> list[Engine]:
    """The engines of every database the running application owns."""
    database: Database = app.state.database
    extra_databases: dict[str, Database] = app.state.extra_databases
    return [each.engine.sync_engine for each in (database, *extra_databases.values())]


def add_telemetry(app: FastAPI) -> None:
    """Trace `app`'s requests and every database statement, once a collector is configured."""
    configure_from_environment()
    run_app = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Around the application's own lifespan: its engines exist only inside it.
        async with run_app(app):
            provider = trace.get_tracer_provider()
            traced = provider if isinstance(provider, TracerProvider) else None
            if traced is not None:
                # Each statement's span, a child of the request's; pool usage
                # too, through the meter provider when one is configured. The
                # instrumentation declares SQLAlchemy < 2.1 but works with 2.1,
                # which tests/test_telemetry.py proves on every run.
                SQLAlchemyInstrumentor().instrument(
                    engines=engines_of(app), tracer_provider=traced, skip_dep_check=True
                )
            try:
                yield
            finally:
                if traced is not None:
                    SQLAlchemyInstrumentor().uninstrument()
                    await asyncio.to_thread(traced.force_flush)

    app.router.lifespan_context = lifespan
