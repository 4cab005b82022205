"""Answer database trouble with a clear status and JSON body, never a traceback or a hang."""

import logging
import re
from dataclasses import dataclass
from typing import Any, Final

import asyncpg
from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match

from {{ cookiecutter.package_name }}.infrastructure.capacity import PoolExhaustedError, pool_figures
from {{ cookiecutter.package_name }}.infrastructure.config import PRIMARY
from {{ cookiecutter.package_name }}.infrastructure.database import Database, get_database
from {{ cookiecutter.package_name }}.responses import (
    AT_CAPACITY,
    CONFLICT,
    INVALID_REQUEST,
    ErrorMessage,
    InvalidRequest,
    internal_error_response,
    unavailable,
)

logger = logging.getLogger(__name__)

# What FastAPI says when a body cannot be decoded at all (not UTF-8 JSON, say).
_BODY_NOT_PARSED: Final = "There was an error parsing the body"

# PostgreSQL error codes that mean "too slow", not "broken".
_CANCELLED_FOR_TIME: Final = frozenset({"57014", "25P03"})  # statement / idle-in-transaction

# PostgreSQL's integrity constraint violations (SQLSTATE class 23).
UNIQUE_VIOLATION: Final = "23505"
FOREIGN_KEY_VIOLATION: Final = "23503"
NOT_NULL_VIOLATION: Final = "23502"
CHECK_VIOLATION: Final = "23514"
EXCLUSION_VIOLATION: Final = "23P01"

# SQLite (the dev database) names the violated rule only in its message.
_SQLITE_VIOLATIONS: Final = {
    "UNIQUE": UNIQUE_VIOLATION,
    "FOREIGN KEY": FOREIGN_KEY_VIOLATION,
    "NOT NULL": NOT_NULL_VIOLATION,
    "CHECK": CHECK_VIOLATION,
}
_SQLITE_MESSAGE: Final = re.compile(
    r"(UNIQUE|FOREIGN KEY|NOT NULL|CHECK) constraint failed(?:: (.*))?"
)


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
    # SQLAlchemy's error carries the driver's as `orig`; DriverConnectionDep's is the driver's.
    sqlstate = getattr(getattr(error, "orig", error), "sqlstate", None) or ""
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


@dataclass(frozen=True, slots=True)
class Violation:
    """Which database constraint a write broke, without the values that broke it."""

    sqlstate: str
    # The constraint's name (on SQLite: the table.column it names, if any).
    constraint: str | None
    column: str | None = None
    # A foreign key broken by changing or deleting the row others refer to.
    still_referenced: bool = False


def violation_of(error: IntegrityError | asyncpg.IntegrityConstraintViolationError) -> Violation:
    """Read which constraint failed from the driver's error: asyncpg's fields, or SQLite's text."""
    if isinstance(error, asyncpg.IntegrityConstraintViolationError):
        return _postgresql_violation(error.sqlstate, error)
    orig = error.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is None:
        match = _SQLITE_MESSAGE.match(str(orig))
        if match is None:
            return Violation(sqlstate="23000", constraint=None)
        rule, named = match.groups()
        # SQLite does not say which side of a foreign key failed; a DELETE can only be the parent.
        deleting = (error.statement or "").lstrip().upper().startswith("DELETE")
        column = named.rpartition(".")[2] if rule == "NOT NULL" and named else None
        return Violation(
            sqlstate=_SQLITE_VIOLATIONS[rule],
            constraint=None if rule == "NOT NULL" else named,
            column=column,
            still_referenced=rule == "FOREIGN KEY" and deleting,
        )
    # SQLAlchemy's asyncpg adapter keeps asyncpg's own error, with its fields, as the cause.
    return _postgresql_violation(sqlstate, getattr(orig, "__cause__", None))


def _postgresql_violation(sqlstate: str, cause: BaseException | None) -> Violation:
    """Read the violation from asyncpg's error, `cause`, whose fields PostgreSQL filled in."""
    constraint = getattr(cause, "constraint_name", None)
    table = getattr(cause, "table_name", None)
    still_referenced = False
    if sqlstate == FOREIGN_KEY_VIOLATION and constraint and table:
        # The error names the referring table in both directions; only when the
        # referenced row changed does its message name that table again after the
        # constraint ("update or delete on table a violates ... c on table b").
        message = str(getattr(cause, "message", ""))
        still_referenced = table in message.partition(constraint)[2]
    return Violation(
        sqlstate=sqlstate,
        constraint=constraint,
        column=getattr(cause, "column_name", None),
        still_referenced=still_referenced,
    )


async def constraint_violated(request: Request, error: Exception) -> JSONResponse:
    """Answer a broken constraint with 409 or 422 naming it, never with the values sent."""
    if not isinstance(error, IntegrityError | asyncpg.IntegrityConstraintViolationError):
        return await database_error(request, error)
    violation = violation_of(error)
    named = f" (constraint {violation.constraint})" if violation.constraint else ""
    logger.info(
        "Constraint violated on %s %s: SQLSTATE %s%s",
        request.method,
        request.url.path,
        violation.sqlstate,
        named,
    )
    if violation.sqlstate in {UNIQUE_VIOLATION, EXCLUSION_VIOLATION}:
        return conflict(f"Conflicts with stored data{named}")
    if violation.sqlstate == FOREIGN_KEY_VIOLATION and violation.still_referenced:
        return conflict(f"Still referenced by other data{named}")
    if violation.sqlstate == FOREIGN_KEY_VIOLATION:
        return unstorable("foreign_key_violation", f"Refers to data that does not exist{named}")
    if violation.sqlstate == NOT_NULL_VIOLATION:
        column = f" {violation.column}" if violation.column else ""
        return unstorable("not_null_violation", f"The column{column} may not be empty")
    if violation.sqlstate == CHECK_VIOLATION:
        return unstorable("check_violation", f"Breaks a rule of the stored data{named}")
    return conflict(f"Conflicts with stored data{named}")


def conflict(detail: str) -> JSONResponse:
    """A 409 saying `detail`: the request is valid, but not with the data stored now."""
    return JSONResponse({"detail": detail}, status_code=status.HTTP_409_CONFLICT)


def unstorable(kind: str, message: str) -> JSONResponse:
    """A 422 in the shape of INVALID_REQUEST, for a value the database refuses to store."""
    problem = {"loc": ["body"], "msg": message, "type": kind}
    return JSONResponse({"detail": [problem]}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


# Methods whose routes change data, and so may break a constraint.
_WRITE_METHODS: Final = frozenset({"post", "put", "patch", "delete"})


def document_constraint_answers(openapi: dict[str, Any]) -> None:
    """Add the 409 and 422 that constraint_violated may give to every route that writes."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    for component in (ErrorMessage, InvalidRequest):
        # FieldProblem comes along with InvalidRequest, under $defs.
        schema = component.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas.setdefault(component.__name__, schema)
    answers: dict[str, tuple[type[BaseModel], dict[str, Any]]] = {
        "409": (ErrorMessage, CONFLICT),
        "422": (InvalidRequest, INVALID_REQUEST),
    }
    for path_item in openapi.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in _WRITE_METHODS or not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            for code, (model, answer) in answers.items():
                if code in responses:
                    continue
                ref = {"$ref": f"#/components/schemas/{model.__name__}"}
                content = {"schema": ref} | answer.get("content", {}).get("application/json", {})
                responses[code] = {
                    "description": answer["description"],
                    "content": {"application/json": content},
                }


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


async def http_error(request: Request, error: Exception) -> Response:
    """FastAPI's answer to an HTTPException, with the two it gets wrong made exact.

    Starlette answers a 405 from the first route whose path matches, so its
    Allow header names that route's methods only; and an undecodable body is a
    400 no route documents, where an invalid one is the documented 422.
    """
    if not isinstance(error, HTTPException):
        return await unexpected_error(request, error)
    if error.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        error.headers = {**(error.headers or {}), "Allow": ", ".join(allowed_methods(request))}
    elif error.status_code == status.HTTP_400_BAD_REQUEST and error.detail == _BODY_NOT_PARSED:
        return unstorable("body_not_parsed", "The body could not be decoded as its content type")
    return await http_exception_handler(request, error)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers for the request's path."""
    methods: set[str] = set()
    for route in request.app.routes:
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route_methods
    return sorted(methods)


async def unexpected_error(_request: Request, _error: Exception) -> JSONResponse:
    """Answer a bug with a JSON 500; the server still logs its traceback once."""
    return internal_error_response()


def register_error_handlers(app: FastAPI) -> None:
    """Install the handlers above on `app`."""
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(PoolTimeoutError, pool_exhausted)
    app.add_exception_handler(IntegrityError, constraint_violated)
    app.add_exception_handler(DBAPIError, database_error)
    # What the driver raises itself, on DriverConnectionDep and ReadDriverConnectionDep.
    app.add_exception_handler(asyncpg.IntegrityConstraintViolationError, constraint_violated)
    app.add_exception_handler(asyncpg.PostgresError, database_error)
    app.add_exception_handler(TimeoutError, database_error)
    app.add_exception_handler(OSError, database_error)
    app.add_exception_handler(Exception, unexpected_error)
