"""Answer database trouble with a clear status and JSON body, never a traceback or a hang."""

import logging
from typing import Any, Final

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from {{ cookiecutter.package_name }}.infrastructure.config import PRIMARY
from {{ cookiecutter.package_name }}.infrastructure.database import (
    Database,
    PoolExhaustedError,
    get_database,
)
from {{ cookiecutter.package_name }}.infrastructure.pool import BurstPool

logger = logging.getLogger(__name__)

# Clients and load balancers may retry this soon; the pool frees up quickly.
RETRY_AFTER_SECONDS: Final = "1"
AT_CAPACITY: Final = "The service is at capacity; retry shortly."

# PostgreSQL error codes that mean "too slow", not "broken".
_CANCELLED_FOR_TIME: Final = frozenset({"57014", "25P03"})  # statement / idle-in-transaction


class ErrorMessage(BaseModel):
    """An error answer: one sentence saying what went wrong."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"detail": "The database is unavailable; retry shortly."}]}
    )

    detail: str


class FieldProblem(BaseModel):
    """One part of a request that does not validate, and why."""

    loc: list[str | int]
    msg: str
    type: str
    ctx: dict[str, Any] | None = None


class InvalidRequest(BaseModel):
    """A 422 answer: every problem found in the request, without the input itself."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "detail": [
                        {
                            "loc": ["body", "price"],
                            "msg": "Input should be greater than or equal to 0",
                            "type": "greater_than_equal",
                            "ctx": {"ge": 0},
                        }
                    ]
                }
            ]
        }
    )

    detail: list[FieldProblem]


# For `responses=` on routes, so that the OpenAPI page shows the answers the
# handlers below give.
INVALID_REQUEST: Final[dict[str, Any]] = {
    "model": InvalidRequest,
    "description": "The request does not validate; nothing was changed",
}
DATABASE_UNAVAILABLE: Final[dict[str, Any]] = {
    "model": ErrorMessage,
    "description": "The database is unavailable or too slow, or the service is at capacity; "
    "retry after `Retry-After` seconds",
}


def unavailable(detail: str) -> JSONResponse:
    """A 503 saying `detail`, which clients and load balancers may retry after a second."""
    return JSONResponse(
        {"detail": detail},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


async def pool_exhausted(request: Request, error: Exception) -> JSONResponse:
    """No connection came free within pool_timeout: the service is over capacity."""
    # The dependencies name the pool that ran dry, an extra database's maybe.
    database: Database = (
        error.database if isinstance(error, PoolExhaustedError) else await get_database(request)
    )
    stats = database.stats
    stats.timeouts += 1
    if count := stats.timeout_report.add():
        pool = database.engine.pool
        figures = (
            f"size {pool.kept}, checked out {pool.checkedout()}, overflow {pool.overflow()}"
            if isinstance(pool, BurstPool)
            else type(pool).__name__
        )
        if database.name != PRIMARY:
            figures = f"{database.name}: {figures}"
        logger.warning(
            "Connection pool exhausted: %d request(s) answered 503 since the last report (%s)",
            count,
            figures,
        )
    return unavailable(AT_CAPACITY)


async def database_error(request: Request, error: Exception) -> JSONResponse:
    """Tell a slow or unreachable database apart from a bug, without showing any SQL."""
    sqlstate = getattr(getattr(error, "orig", None), "sqlstate", None) or ""
    if sqlstate in _CANCELLED_FOR_TIME or isinstance(error, TimeoutError):
        logger.warning("Query cancelled as too slow: %s %s", request.method, request.url.path)
        return unavailable("The database took too long to answer; retry shortly.")
    if (
        isinstance(error, OSError | InterfaceError)
        or (isinstance(error, DBAPIError) and error.connection_invalidated)
        or sqlstate.startswith("08")
        or sqlstate.startswith("57P")
    ):
        logger.warning("Database unavailable: %s", type(error).__name__)
        return unavailable("The database is unavailable; retry shortly.")
    logger.error("Database error on %s %s", request.method, request.url.path, exc_info=error)
    return internal_error_response()


def internal_error_response() -> JSONResponse:
    """A 500 that says nothing about the code or the SQL behind it."""
    return JSONResponse(
        {"detail": "Internal server error"},
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


async def invalid_request(_request: Request, error: Exception) -> JSONResponse:
    """Name each field that is wrong and why, without echoing what was sent."""
    # FastAPI's own handler copies every input into the answer: a 1 MB name
    # came back whole, and a NaN price or a lone UTF-16 surrogate in a name
    # could not be encoded at all, so the client got a 500 instead of a 422.
    problems = error.errors() if isinstance(error, RequestValidationError) else []
    details = [
        {key: value for key, value in problem.items() if key != "input"} for problem in problems
    ]
    return JSONResponse(
        {"detail": jsonable_encoder(details)}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT
    )


async def unexpected_error(_request: Request, _error: Exception) -> JSONResponse:
    """Answer a bug with a JSON 500; the server still logs its traceback once."""
    return internal_error_response()


def register_error_handlers(app: FastAPI) -> None:
    """Install the handlers above on `app`."""
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(PoolTimeoutError, pool_exhausted)
    app.add_exception_handler(DBAPIError, database_error)
    app.add_exception_handler(TimeoutError, database_error)
    app.add_exception_handler(OSError, database_error)
    app.add_exception_handler(Exception, unexpected_error)
