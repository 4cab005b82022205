"""Give every HTTP request an id, send it back, and write one access line per request."""

import asyncio
import logging
import re
import secrets
import time
from typing import Any, Final

from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from {{ cookiecutter.package_name }}.logs import current_request_id

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER: Final = b"x-request-id"
# W3C Trace Context: a caller's trace id, taken as the request id when traced.
TRACEPARENT_HEADER: Final = b"traceparent"
# An id a client or proxy chose is kept if it looks like one: UUIDs, trace ids
# and base64 tokens fit; a line break, a terminal escape or a novel do not.
VALID_REQUEST_ID: Final = re.compile(rb"[A-Za-z0-9._:+/=-]{1,128}")
# Bytes of randomness in a new id: 16 hex digits, unique enough to find one
# request's lines among billions, and short enough to read in a console.
REQUEST_ID_BYTES: Final = 8
# Longer paths are cut in the access line; the server already bounds them.
MAX_LOGGED_PATH: Final = 1024
# nginx's status for a request whose client left before it was answered.
CLIENT_CLOSED_REQUEST: Final = 499


class RequestLogMiddleware:
    """Tag each HTTP request with an id, return it as X-Request-ID, and log it once it ends.

    A pure ASGI middleware rather than Starlette's BaseHTTPMiddleware, which
    costs a task and a stream per request and runs the app in another task.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request with its id set, and write its access line however it ends."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        token = current_request_id.set(request_id)
        id_header = (REQUEST_ID_HEADER, request_id.encode())
        status = 0
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # A new list: the response object may still own the old one.
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except BaseException as error:
            # Starlette's ServerErrorMiddleware, inside this one, has usually
            # answered a bug with a 500 already.
            _log_access(scope, status or unanswered_status(error), started)
            # The id stays set: the server logs the traceback next, in this
            # request's own task, and that line belongs to the request too.
            raise
        _log_access(scope, status or unanswered_status(None), started)
        current_request_id.reset(token)


def document_request_id(openapi: dict[str, Any]) -> None:
    """Add X-Request-ID to every operation of an OpenAPI document: sent if wanted, always returned.

    The middleware, not the routes, handles the header, so FastAPI cannot
    know of it; without this the API's users would have to guess.
    """
    parameter = {
        "name": "X-Request-ID",
        "in": "header",
        "required": False,
        # Any value is accepted (an unsafe one is replaced, not refused), so the
        # schema states no constraint; the description says which are kept.
        "description": "Your id for this request, kept if it is 1 to 128 letters, digits "
        "or `._:+/=-`; any other value is replaced by a new id.",
        "schema": {"type": "string"},
    }
    header = {
        "description": "The id of this request, on every log line written for it.",
        "schema": {"type": "string"},
    }
    for path_item in openapi.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            operation.setdefault("parameters", []).append(parameter)
            for response in operation["responses"].values():
                response.setdefault("headers", {})["X-Request-ID"] = header


def unanswered_status(error: BaseException | None) -> int:
    """Return the status to record for a request that ended without a response."""
    # A cancellation, or an app that returned without answering, means the
    # client went away first; any other exception is a bug.
    if error is None or isinstance(error, asyncio.CancelledError):
        return CLIENT_CLOSED_REQUEST
    return 500


def _request_id(scope: Scope) -> str:
    # FastAPI's telemetry, outside this middleware, has started the request's
    # span when tracing is on; its trace id finds the request's trace from a log line.
    span = trace.get_current_span().get_span_context()
    given: str | None = None
    traceparent = False
    name: bytes
    value: bytes
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER and given is None:
            given = value.decode("ascii") if VALID_REQUEST_ID.fullmatch(value) else ""
        elif name == TRACEPARENT_HEADER:
            traceparent = True
    if span.is_valid and (traceparent or not given):
        return trace.format_trace_id(span.trace_id)
    return given or secrets.token_hex(REQUEST_ID_BYTES)


def _log_access(scope: Scope, status: int, started: float) -> None:
    if not logger.isEnabledFor(logging.INFO):
        return
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    method, path = scope["method"], _loggable_path(scope)
    client = scope.get("client")
    # Never the body, the headers or the query string: they carry passwords,
    # tokens and personal data. The fields are for JSON; the message for people.
    fields = {
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": duration_ms,
        "client": client[0] if client else None,
    }
    # Made directly rather than with logger.info, which would walk the stack
    # for a file and line number that would always point here.
    record = logger.makeRecord(
        logger.name,
        logging.INFO,
        __file__,
        0,
        "%s %s %d %.1f ms",
        (method, path, status, duration_ms),
        None,
        extra=fields,
    )
    logger.handle(record)


def _loggable_path(scope: Scope) -> str:
    # The path as the client sent it, still percent-encoded: scope["path"] is
    # decoded and may hold a line break or a terminal escape.
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    path = raw.partition(b"?")[0][:MAX_LOGGED_PATH].decode("ascii", "backslashreplace")
    return path if path.isprintable() else ascii(path)[1:-1]
