"""Report unhandled errors to Sentry when SENTRY_DSN is set: one event per 500, with its request id.

Answers the service chose (4xx, and the 503s for overload or a database
outage) are not errors to report. Events carry no personal data, no request
body, query string, cookie or header beyond a few harmless ones, and no local
variables, which hold what the request sent. SENTRY_ENVIRONMENT and
SENTRY_RELEASE are read by the SDK itself.
"""

from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import sentry_sdk
from sentry_sdk.integrations.fastapi import FastApiIntegration
from sentry_sdk.integrations.sqlalchemy import SqlalchemyIntegration
from sentry_sdk.integrations.starlette import StarletteIntegration
from sentry_sdk.types import Event, Hint

from {{ cookiecutter.package_name }}.infrastructure.config import Settings
from {{ cookiecutter.package_name }}.logs import current_request_id

# The request headers an event may keep: none of them identifies or authorises anyone.
SAFE_HEADERS: Final = frozenset({"accept", "content-length", "content-type", "host", "user-agent"})


def add_error_tracking(settings: Settings) -> None:
    """Start reporting to Sentry if SENTRY_DSN is set; once per process, like the SDK."""
    if settings.sentry_dsn is None:
        return
    # Only exceptions nothing handled: an HTTPException is an answer the code chose.
    status_codes: set[int] = set()
    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        # What send_default_pii=False meant, and less; every field is named, since
        # the SDK fills the ones left out with its most generous defaults.
        data_collection={
            "user_info": False,
            "cookies": {"mode": "off"},
            "http_headers": {"request": {"mode": "allowlist", "terms": sorted(SAFE_HEADERS)}},
            "http_bodies": [],
            "url_query_params": {"mode": "off"},
            "graphql": {"document": False, "variables": False},
            "gen_ai": {"inputs": False, "outputs": False},
            "database_query_data": False,
            "queues": False,
            "stack_frame_variables": False,
        },
        integrations=[
            StarletteIntegration(failed_request_status_codes=status_codes),
            FastApiIntegration(failed_request_status_codes=status_codes),
            SqlalchemyIntegration(),
        ],
        before_send=scrubbed,
    )


def scrubbed(event: Event, _hint: Hint) -> Event | None:
    """Tag `event` with the request id and keep only the harmless parts of its request."""
    request_id = current_request_id.get()
    if request_id is not None:
        event.setdefault("tags", {})["request_id"] = request_id
    request: dict[str, Any] | None = event.get("request")
    if request is not None:
        # The address without its query string; no body, cookies or environment.
        url = urlsplit(str(request.get("url", "")))
        headers: dict[str, str] = request.get("headers") or {}
        event["request"] = {
            "method": request.get("method"),
            "url": urlunsplit((url.scheme, url.netloc, url.path, "", "")),
            "headers": {
                name: value for name, value in headers.items() if name.lower() in SAFE_HEADERS
            },
        }
    return event
