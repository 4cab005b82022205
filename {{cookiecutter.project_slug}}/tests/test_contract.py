"""Every route keeps the contract its OpenAPI document publishes, under generated requests.

Schemathesis reads the app's own /openapi.json and sends each operation
requests built from it, valid and invalid, in this process, against the test
database, and runs all its checks on the answers: no 5xx, statuses, bodies and
headers as documented, invalid data refused, valid data accepted, and a 405
that names every method of its path. A route a team adds is held to it too.
"""

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI, status
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis import Response
from schemathesis.checks import positive_data_acceptance
from schemathesis.python.asgi import shutdown_lifespans
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from starlette.types import Receive, Scope, Send

from {{ cookiecutter.package_name }}.infrastructure.config import Settings, load_settings
from {{ cookiecutter.package_name }}.main import create_app
from tests.conftest import empty_tables, is_database_variable, logging_restored

# Enough to find a mismatch between the document and the service; few enough
# that the whole contract takes well under a minute.
MAX_EXAMPLES = 25
POOL_TOKEN = "contract-test-token"


async def empty_database(url: str) -> None:
    """Empty every table the generated requests may have written to."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await empty_tables(connection)
    finally:
        await engine.dispose()


def published_document() -> dict[str, Any]:
    """The OpenAPI document the app serves; building it needs no database."""
    with pytest.MonkeyPatch.context() as environment, logging_restored():
        # Read at collection, before the fixtures that keep the developer's variables out.
        for name in [name for name in os.environ if is_database_variable(name)]:
            environment.delenv(name)
        return create_app(load_settings(_env_file=None)).openapi()


class ServedApp:
    """The ASGI app schemathesis calls: the one the running test serves."""

    def __init__(self) -> None:
        self.app: FastAPI | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the call on to the test's app."""
        assert self.app is not None, "no app served: use the served_app fixture"
        await self.app(scope, receive, send)


served = ServedApp()
contract = schemathesis.openapi.from_dict(published_document())
# As from_asgi does: the probes some checks send go to the app too.
contract.app = served


@pytest.fixture
def served_app(settings: Settings, database_url: str) -> Iterator[None]:
    """Serve the app on the test database; schemathesis starts its lifespan, this stops it."""
    # With a token, as in production, so that /health/pool refuses requests without it.
    served.app = create_app(
        settings.model_copy(update={"health_pool_token": SecretStr(POOL_TOKEN)})
    )
    yield
    shutdown_lifespans()
    served.app = None
    asyncio.run(empty_database(database_url))


@pytest.mark.slow
@pytest.mark.usefixtures("served_app")
@contract.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    # The same requests on every run: a failure is the code's, never the draw's.
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_operation_keeps_its_published_contract(case: schemathesis.Case[Any]) -> None:
    headers = {"Authorization": f"Bearer {POOL_TOKEN}"}
    response = case.call(headers=headers)
    # A schema cannot say which rows exist: a well-formed reference to a missing
    # one is refused by the database (see errors.py), not by the contract.
    excluded = [positive_data_acceptance] if refers_to_missing_rows(response) else []
    case.validate_response(
        response, headers=headers, excluded_checks=excluded, transport_kwargs={"headers": headers}
    )


def refers_to_missing_rows(response: Response) -> bool:
    """Whether the answer is the 422 for references to rows that do not exist, and nothing else."""
    if response.status_code != status.HTTP_422_UNPROCESSABLE_CONTENT:
        return False
    problems = response.json().get("detail", [])
    return bool(problems) and all(
        problem.get("type") == "foreign_key_violation" for problem in problems
    )
