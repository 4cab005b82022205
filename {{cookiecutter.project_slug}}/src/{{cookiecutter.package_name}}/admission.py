"""Turn requests away at the door once the service holds as many as its pools can serve."""

import logging
from dataclasses import dataclass, field
from typing import Annotated, Final

from fastapi import Depends, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from {{ cookiecutter.package_name }}.logs import BurstReport
from {{ cookiecutter.package_name }}.responses import AT_CAPACITY, unavailable

logger = logging.getLogger(__name__)

# Never turned away, nor counted: an orchestrator that cannot reach the
# probes of a busy process restarts it, and an operator wants the figures most
# when the service is at capacity.
{%- if cookiecutter.use_prometheus %}
EXEMPT_PATHS: Final = ("/health/", "/metrics")
{%- else %}
EXEMPT_PATHS: Final = ("/health/",)
{%- endif %}


@dataclass(slots=True)
class Admission:
    """How many requests may be in progress at once, how many are, and how many were refused."""

    limit: int
    in_flight: int = 0
    refused: int = 0
    refusal_report: BurstReport = field(default_factory=BurstReport)

    def record_refusal(self) -> None:
        """Count one refused request, and log the burst it belongs to at most every so often."""
        self.refused += 1
        if count := self.refusal_report.add():
            logger.warning(
                "At capacity: %d request(s) answered 503 since the last report "
                "(%d in progress, limit %d)",
                count,
                self.in_flight,
                self.limit,
            )


async def get_admission(request: Request) -> Admission:
    """Return the running application's request limit and counters."""
    admission: Admission = request.app.state.admission
    return admission


AdmissionDep = Annotated[Admission, Depends(get_admission)]


class AdmissionMiddleware:
    """Answer 503 at once to a request that arrives while `admission.limit` are in progress.

    Such a request could only be refused later by the pool's own guard
    (PoolPlace in infrastructure/capacity.py), after routing, validation and a
    session had been paid for, several times the CPU of a refusal here. On one
    event loop that decides whether the requests already admitted finish within
    pool_timeout, since every turn of the loop also serves every request being
    refused.
    """

    def __init__(self, app: ASGIApp, admission: Admission) -> None:
        self.app = app
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on if there is room, else answer it with a 503."""
        if scope["type"] != "http" or scope["path"].startswith(EXEMPT_PATHS):
            await self.app(scope, receive, send)
            return
        admission = self.admission
        if admission.in_flight >= admission.limit:
            admission.record_refusal()
            await unavailable(AT_CAPACITY)(scope, receive, send)
            return
        admission.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            admission.in_flight -= 1
