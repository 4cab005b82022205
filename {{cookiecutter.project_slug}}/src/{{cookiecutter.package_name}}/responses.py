"""What routes use to document and give error answers: the bodies, and the 503 and 500."""

from typing import Any, Final

from fastapi import status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

# Clients and load balancers may retry this soon; the pool frees up quickly.
RETRY_AFTER_SECONDS: Final = "1"
AT_CAPACITY: Final = "The service is at capacity; retry shortly."


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
CONFLICT: Final[dict[str, Any]] = {
    "model": ErrorMessage,
    "description": "The change conflicts with stored data (a unique value already taken, or a "
    "row still referenced by others); the detail names the database constraint; nothing was "
    "changed",
    "content": {
        "application/json": {
            "example": {"detail": "Conflicts with stored data (constraint uq_customers_email)"}
        }
    },
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


def internal_error_response() -> JSONResponse:
    """A 500 that says nothing about the code or the SQL behind it."""
    return JSONResponse(
        {"detail": "Internal server error"},
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
