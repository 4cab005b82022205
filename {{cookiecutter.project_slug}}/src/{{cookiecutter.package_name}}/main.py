"""Build the application: validated settings in, a FastAPI app that owns its database out."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from {{ cookiecutter.package_name }} import health
from {{ cookiecutter.package_name }}.errors import register_error_handlers
from {{ cookiecutter.package_name }}.infrastructure.config import Settings, load_settings
from {{ cookiecutter.package_name }}.infrastructure.database import close_db, init_db
from {{ cookiecutter.package_name }}.infrastructure.extra_databases import open_extra_databases
from {{ cookiecutter.package_name }}.items.router import router as items_router


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service from `settings`, read from the environment when omitted."""
    if settings is None:
        settings = load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The engines (the primary's, then each extra database's) live exactly
        # as long as the application: built here rather than at import, and
        # disposed however the application stops, also if one fails to start.
        database = await init_db(settings)
        try:
            async with open_extra_databases(settings) as extra_databases:
                app.state.database = database
                app.state.extra_databases = extra_databases
                yield
        finally:
            await close_db(database)

    app = FastAPI(
        title="{{ cookiecutter.project_name }}",
        description="{{ cookiecutter.description }}",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    register_error_handlers(app)
    app.include_router(health.router)
    app.include_router(items_router)
    return app
