"""Health routes for load balancers, orchestrators and operators."""

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import QueuePool

from {{ cookiecutter.package_name }}.infrastructure.config import Profile, Settings
from {{ cookiecutter.package_name }}.infrastructure.database import DatabaseDep

# A probe must answer quickly even when the pool is exhausted or the server hangs.
READY_TIMEOUT_SECONDS = 2.0

router = APIRouter(prefix="/health", tags=["health"])


def get_settings(request: Request) -> Settings:
    """Return the settings the running application was built with."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


class HealthStatus(BaseModel):
    """Whether a part of the service can do its work."""

    status: Literal["ok", "unavailable"]


class PoolStatus(BaseModel):
    """The connection pool's configuration and live figures."""

    profile: Profile
    pool_size: int
    max_overflow: int
    pool_timeout: float
    checked_in: int
    checked_out: int
    overflow: int


@router.get("/live")
async def live() -> HealthStatus:
    """Report that the process is up; never touches the database."""
    return HealthStatus(status="ok")


@router.get(
    "/ready",
    responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"model": HealthStatus}},
)
async def ready(database: DatabaseDep, response: Response) -> HealthStatus:
    """Report whether the database answers a trivial query within a short timeout."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS), database.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (OSError, TimeoutError, SQLAlchemyError):
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return HealthStatus(status="unavailable")
    return HealthStatus(status="ok")


@router.get("/pool")
async def pool(database: DatabaseDep, settings: SettingsDep) -> PoolStatus:
    """Show the pool's settings and how many connections are in use right now."""
    pool = database.engine.pool
    if not isinstance(pool, QueuePool):
        raise TypeError(f"expected the engine's queue pool, found {type(pool).__name__}")
    return PoolStatus(
        profile=settings.database_profile,
        pool_size=pool.size(),
        max_overflow=settings.pool.max_overflow,
        pool_timeout=pool.timeout(),
        checked_in=pool.checkedin(),
        checked_out=pool.checkedout(),
        overflow=max(pool.overflow(), 0),
    )
