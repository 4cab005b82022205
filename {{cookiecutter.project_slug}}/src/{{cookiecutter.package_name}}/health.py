"""Health routes for load balancers, orchestrators and operators."""

import asyncio
import hmac
from typing import Annotated, Final, Literal

from fastapi import APIRouter, Depends, HTTPException, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from {{ cookiecutter.package_name }}.admission import AdmissionDep
from {{ cookiecutter.package_name }}.dependencies import SettingsDep
from {{ cookiecutter.package_name }}.infrastructure.capacity import PoolFigures, pool_figures
from {{ cookiecutter.package_name }}.infrastructure.config import PRIMARY
from {{ cookiecutter.package_name }}.infrastructure.database import Database, DatabaseDep
from {{ cookiecutter.package_name }}.infrastructure.extra_databases import ExtraDatabasesDep
from {{ cookiecutter.package_name }}.infrastructure.profiles import Profile
from {{ cookiecutter.package_name }}.responses import ErrorMessage

# A probe must answer quickly even when the pool is exhausted or the server hangs.
READY_TIMEOUT_SECONDS: Final = 2.0

router = APIRouter(prefix="/health", tags=["health"])
bearer = HTTPBearer(auto_error=False, description="HEALTH_POOL_TOKEN")


async def require_pool_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Let the request through only with HEALTH_POOL_TOKEN, unless the pool status is public."""
    if settings.pool_status_is_public:
        return
    expected = settings.health_pool_token
    given = credentials.credentials if credentials is not None else ""
    # Without a configured token nothing is accepted: the route is off.
    if expected is None or not hmac.compare_digest(
        given.encode(), expected.get_secret_value().encode()
    ):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="Send HEALTH_POOL_TOKEN as a bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )


Availability = Literal["ok", "unavailable"]


class HealthStatus(BaseModel):
    """Whether a part of the service can do its work."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: Availability


class ReadinessStatus(HealthStatus):
    """Whether every database answers, and which one does not."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"status": "ok", "databases": {"primary": "ok"}}]}
    )

    # By name: "primary" (DATABASE_URL), then each DATABASES__<NAME>__URL.
    databases: dict[str, Availability]


class RequestFigures(BaseModel):
    """How many requests may be in progress at once, how many are, and how many were refused."""

    limit: int
    in_flight: int
    refused: int


class PoolStatus(PoolFigures):
    """The primary's pool figures, the profile, every extra database's pool, and the requests."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "pool_size": 10,
                    "max_overflow": 20,
                    "pool_timeout": 5.0,
                    "checked_in": 8,
                    "checked_out": 2,
                    "overflow": 0,
                    "connects": 12,
                    "checkouts": 48210,
                    "invalidations": 0,
                    "timeouts": 0,
                    "profile": "prod",
                    "databases": {},
                    "requests": {"limit": 150, "in_flight": 2, "refused": 0},
                }
            ]
        }
    )

    profile: Profile
    databases: dict[str, PoolFigures]
    requests: RequestFigures


@router.get("/live", summary="Liveness probe")
async def live() -> HealthStatus:
    """Report that the process is up; never touches the database."""
    return HealthStatus(status="ok")


@router.get(
    "/ready",
    summary="Readiness probe",
    responses={
        status.HTTP_503_SERVICE_UNAVAILABLE: {
            "model": ReadinessStatus,
            "description": "A database did not answer in time",
            "content": {
                "application/json": {
                    "example": {
                        "status": "unavailable",
                        "databases": {"primary": "ok", "replica": "unavailable"},
                    }
                }
            },
        }
    },
)
async def ready(
    database: DatabaseDep, extra_databases: ExtraDatabasesDep, response: Response
) -> ReadinessStatus:
    """Report whether every database answers a trivial query within a short timeout."""
    databases = {PRIMARY: database, **extra_databases}
    # Side by side, so that the answer comes within one timeout however many there are.
    answers = await asyncio.gather(*(_answers(database) for database in databases.values()))
    statuses: dict[str, Availability] = {
        name: "ok" if answered else "unavailable"
        for name, answered in zip(databases, answers, strict=True)
    }
    if not all(answers):
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return ReadinessStatus(status="unavailable", databases=statuses)
    return ReadinessStatus(status="ok", databases=statuses)


async def _answers(database: Database) -> bool:
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS), database.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    # Python 3.11 to 3.13 need the parentheses, which ruff drops when it formats for 3.14.
    except (OSError, TimeoutError, SQLAlchemyError):  # fmt: skip
        return False
    return True


@router.get(
    "/pool",
    summary="Connection pool status",
    dependencies=[Depends(require_pool_token)],
    responses={
        status.HTTP_401_UNAUTHORIZED: {
            "model": ErrorMessage,
            "description": "Missing or wrong token",
            "content": {
                "application/json": {
                    "example": {"detail": "Send HEALTH_POOL_TOKEN as a bearer token"}
                }
            },
        }
    },
)
async def pool(
    database: DatabaseDep,
    extra_databases: ExtraDatabasesDep,
    admission: AdmissionDep,
    settings: SettingsDep,
) -> PoolStatus:
    """Show each pool's settings and how many connections and requests are in progress."""
    return PoolStatus(
        profile=settings.database_profile,
        databases={name: pool_figures(extra) for name, extra in extra_databases.items()},
        requests=RequestFigures(
            limit=admission.limit, in_flight=admission.in_flight, refused=admission.refused
        ),
        **pool_figures(database).model_dump(),
    )
