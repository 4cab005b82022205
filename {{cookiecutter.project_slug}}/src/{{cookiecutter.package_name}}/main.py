"""Build the application: validated settings in, a FastAPI app that owns its database out."""

import gc
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Final

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from {{ cookiecutter.package_name }} import domains, health
from {{ cookiecutter.package_name }}.access_log import RequestLogMiddleware, document_request_id
from {{ cookiecutter.package_name }}.admission import Admission, AdmissionMiddleware
{%- if cookiecutter.use_sentry %}
from {{ cookiecutter.package_name }}.error_tracking import add_error_tracking
{%- endif %}
from {{ cookiecutter.package_name }}.errors import (
    document_constraint_answers,
    register_error_handlers,
)
from {{ cookiecutter.package_name }}.infrastructure.capacity import request_limit
from {{ cookiecutter.package_name }}.infrastructure.config import Settings, load_settings
from {{ cookiecutter.package_name }}.infrastructure.database import close_db, init_db
from {{ cookiecutter.package_name }}.infrastructure.extra_databases import open_extra_databases
from {{ cookiecutter.package_name }}.logs import configure_logging
{%- if cookiecutter.use_prometheus %}
from {{ cookiecutter.package_name }}.metrics import add_metrics
{%- endif %}
from {{ cookiecutter.package_name }}.request_checks import (
    BodyLimitMiddleware,
    TrustedHostMiddleware,
    document_body_limit,
)
{%- if cookiecutter.use_opentelemetry %}
from {{ cookiecutter.package_name }}.telemetry import add_telemetry
{%- endif %}

logger = logging.getLogger(__name__)

# Allocations between two collections of the youngest generation (CPython's default is
# 700 or 2,000): a request allocates hundreds, so the default collects every few requests.
YOUNG_GENERATION_THRESHOLD: Final = 50_000


class Service(FastAPI):
    """A FastAPI app whose outer layers log each request and refuse those it must not serve."""

    def build_middleware_stack(self) -> ASGIApp:
        """Wrap the usual stack, Starlette's ServerErrorMiddleware included."""
        # app.add_middleware would go inside ServerErrorMiddleware, and the 500
        # it sends for a bug would then leave without X-Request-ID. Refusals
        # are logged too, and cost the least before FastAPI has routed anything.
        admission: Admission = self.state.admission
        settings: Settings = self.state.settings
        stack: ASGIApp = AdmissionMiddleware(super().build_middleware_stack(), admission)
        stack = BodyLimitMiddleware(stack, settings.max_request_body_bytes)
        if settings.cors_allow_origins:
            # Outside every refusal, so that a browser can read a 413 or a 503 too.
            stack = CORSMiddleware(
                stack,
                allow_origins=settings.cors_allow_origins,
                allow_credentials=settings.cors_allow_credentials,
                allow_methods=["*"],
                allow_headers=["*"],
                expose_headers=["X-Request-ID", "Retry-After"],
            )
        if settings.trusted_hosts:
            stack = TrustedHostMiddleware(stack, settings.trusted_hosts)
        return RequestLogMiddleware(stack)

    def openapi(self) -> dict[str, Any]:
        """Build the OpenAPI document once, with the answers the middleware and handlers add."""
        if self.openapi_schema is None:
            # FastAPI keeps the document it returns, so the additions stay in it.
            schema = super().openapi()
            document_constraint_answers(schema)
            settings: Settings = self.state.settings
            document_body_limit(schema, settings.max_request_body_bytes)
            document_request_id(schema)
            return schema
        return self.openapi_schema


@contextmanager
def collect_less() -> Iterator[None]:
    """Freeze what start-up allocated out of the collector's way, and collect less often."""
    # Start-up's objects (modules, the app, the engines) live as long as the process;
    # scanning them in every full collection finds nothing. See docs/performance.md.
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service from `settings`, read from the environment when omitted."""
    if settings is None:
        settings = load_settings()
    # Here, not only in the CLI: each uvicorn worker process builds its own app,
    # and does not inherit the logging set up by the process that started it.
    configure_logging(settings.logs)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The engines (the primary's, then each extra database's) live exactly
        # as long as the application: built here rather than at import, and
        # disposed however the application stops, also if one fails to start.
        if insecurities := settings.allowed_insecurities:
            logger.warning(
                "DATABASE_ALLOW_INSECURE=true lets through what DATABASE_PROFILE=%s refuses: %s",
                settings.database_profile,
                "; ".join(insecurities),
            )
        primary, *extras = settings.database_configs()
        database = await init_db(primary)
        try:
            async with open_extra_databases(extras) as extra_databases:
                app.state.database = database
                app.state.extra_databases = extra_databases
                # Here, in each worker process, once everything start-up builds exists.
                with collect_less():
                    yield
        finally:
            await close_db(database)

    app = Service(
        title="{{ cookiecutter.project_name }}",
        description="{{ cookiecutter.description }}",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.admission = Admission(limit=request_limit(settings))
    register_error_handlers(app)
    app.include_router(health.router)
    for router in domains.ROUTERS:
        app.include_router(router)
{%- if cookiecutter.use_prometheus %}
    add_metrics(app)
{%- endif %}
{%- if cookiecutter.use_opentelemetry %}
    add_telemetry(app)
{%- endif %}
{%- if cookiecutter.use_sentry %}
    add_error_tracking(settings)
{%- endif %}
    return app
