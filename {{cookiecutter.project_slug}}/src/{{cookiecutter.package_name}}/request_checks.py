"""Refuse what the service must not read: a Host it does not serve, a body over the limit."""

import ipaddress
from collections.abc import Collection
from typing import Any, Final

from fastapi import status
from fastapi.exceptions import HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from {{ cookiecutter.package_name }}.admission import EXEMPT_PATHS
from {{ cookiecutter.package_name }}.responses import ErrorMessage

INVALID_HOST: Final = "The Host header names a host this service does not serve."
# The connection closes after a 413, so that the server does not read the rest of the body.
_CLOSE: Final = {"Connection": "close"}


def too_large_detail(limit: int) -> str:
    """The detail of a 413: what the service accepts."""
    return f"The request body is larger than the {limit} bytes this service accepts."


class BodyTooLargeError(HTTPException):
    """Raised while the body is read, once it passes the limit; FastAPI answers it as JSON."""

    def __init__(self, limit: int) -> None:
        super().__init__(status.HTTP_413_CONTENT_TOO_LARGE, too_large_detail(limit), _CLOSE)


class BodyLimitMiddleware:
    """Answer 413 to a body over `limit` bytes, before any of it is read or any route runs.

    A Content-Length over the limit is refused at once; a body without one
    (chunked) is counted as it arrives and refused the moment it passes the
    limit, so the route never sees a byte of it. One limit for every route.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a declared body over the limit; count an undeclared one as it is read."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            answer = JSONResponse(
                {"detail": too_large_detail(self.limit)},
                status_code=status.HTTP_413_CONTENT_TOO_LARGE,
                headers=_CLOSE,
            )
            await answer(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLargeError(self.limit)
            return message

        await self.app(scope, receive_within_limit, send)


class TrustedHostMiddleware:
    """Answer 400 to a request whose Host header names none of `hosts`.

    The probes and the metrics are exempt: the kubelet and Prometheus call a
    pod by its IP address, and those answers never depend on the Host header.
    """

    def __init__(self, app: ASGIApp, hosts: Collection[str]) -> None:
        self.app = app
        self.names = frozenset(host for host in hosts if not host.startswith("*."))
        # "*.example.com" matches any name ending in ".example.com".
        self.suffixes = tuple(host[1:] for host in hosts if host.startswith("*."))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass on a request for a trusted host, or a probe; refuse any other."""
        if scope["type"] not in {"http", "websocket"} or scope["path"].startswith(EXEMPT_PATHS):
            await self.app(scope, receive, send)
            return
        name = _host_name(scope)
        if name in self.names or name.endswith(self.suffixes):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            answer = JSONResponse({"detail": INVALID_HOST}, status_code=status.HTTP_400_BAD_REQUEST)
            await answer(scope, receive, send)


def document_body_limit(openapi: dict[str, Any], limit: int) -> None:
    """Add the 413 that BodyLimitMiddleware gives to every operation that takes a body."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(
        ErrorMessage.__name__,
        ErrorMessage.model_json_schema(ref_template="#/components/schemas/{model}"),
    )
    answer = {
        "description": f"The body is larger than {limit} bytes (MAX_REQUEST_BODY_BYTES); "
        "nothing was read or changed",
        "content": {
            "application/json": {
                "schema": {"$ref": f"#/components/schemas/{ErrorMessage.__name__}"},
                "example": {"detail": too_large_detail(limit)},
            }
        },
    }
    for path_item in openapi.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict) and "requestBody" in operation:
                operation.setdefault("responses", {}).setdefault("413", answer)


def _content_length(scope: Scope) -> int | None:
    name: bytes
    value: bytes
    for name, value in scope["headers"]:
        if name == b"content-length":
            # The server refuses a malformed one before the app runs.
            return int(value) if value.isdigit() else None
    return None


def _host_name(scope: Scope) -> str:
    # The name without its port, lowercased; an IPv6 address without brackets.
    name: bytes
    value: bytes
    for name, value in scope["headers"]:
        if name == b"host":
            host = value.decode("latin-1").strip().lower()
            break
    else:
        return ""
    if host.startswith("["):
        host = host[1 : host.find("]")]
    else:
        host = host.rpartition(":")[0] if ":" in host else host
    host = host.removesuffix(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host
