"""Answer database trouble with a clear status and JSON body, never a traceback or a hang."""

import logging
from typing import Final

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from {{ cookiecutter.package_name }}.infrastructure.capacity import PoolExhaustedError, pool_figures
from {{ cookiecutter.package_name }}.infrastructure.config import PRIMARY
from {{ cookiecutter.package_name }}.infrastructure.database import Database, get_database
from {{ cookiecutter.package_name }}.responses import (
    AT_CAPACITY,
    internal_error_response,
    unavailable,
)

logger = logging.getLogger(__name__)

# PostgreSQL error codes that mean "too slow", not "broken".
_CANCELLED_FOR_TIME: Final = frozenset({"57014", "25P03"})  # statement / idle-in-transaction


async def pool_exhausted(request: Request, error: Exception) -> JSONResponse:
    """No connection came free within pool_timeout: the service is over capacity."""
    # The dependencies name the pool that ran dry, an extra database's maybe.
    database: Database = (
        error.database if isinstance(error, PoolExhaustedError) else await get_database(request)
    )
    if count := database.stats.record_timeout():
        pool = pool_figures(database)
        figures = f"size {pool.pool_size}, checked out {pool.checked_out}, overflow {pool.overflow}"
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
