"""What the driver tier adds to the fast path's guarantees (test_fast_path.py has the rest).

The same 409, 422 and 503 for what the database refuses as through SQLAlchemy, no
connection back in the pool that a handler left broken, and a clear error on SQLite.
"""

import pytest
from fastapi import APIRouter, FastAPI, status
from httpx import ASGITransport, AsyncClient

from {{ cookiecutter.package_name }}.dependencies import DriverConnectionDep, ReadDriverConnectionDep
from {{ cookiecutter.package_name }}.infrastructure.config import Settings, load_settings
from {{ cookiecutter.package_name }}.infrastructure.database import Database
from {{ cookiecutter.package_name }}.infrastructure.driver import DriverUnavailableError
from {{ cookiecutter.package_name }}.infrastructure.profiles import Pooler
from {{ cookiecutter.package_name }}.main import create_app
from tests.conftest import in_process_client
from tests.items import driver_path
from tests.probe import create_probe_app

NEW = {"name": "Espresso cup", "description": "Porcelain, 80 ml", "price": "9.5"}
DRIVER = "/test/driver/items"


# What the database refuses, sent as the driver's own SQL, and the answer it gets.
REFUSED: dict[str, tuple[str, int, str]] = {
    "duplicate key": (
        "INSERT INTO items (id, name, price) SELECT id, name, price FROM items",
        status.HTTP_409_CONFLICT,
        "Conflicts with stored data (constraint pk_items)",
    ),
    "missing parent": (
        "INSERT INTO reviews (item_id, rating) VALUES (2147483647, 5)",
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        "Refers to data that does not exist (constraint fk_reviews_item_id_items)",
    ),
    "too slow": (
        "SET LOCAL statement_timeout = 50; SELECT pg_sleep(5)",
        status.HTTP_503_SERVICE_UNAVAILABLE,
        "The database took too long to answer; retry shortly.",
    ),
}


routes = APIRouter(prefix="/test/driver")
routes.include_router(driver_path.router)


@routes.post("/refused/{case}")
async def run_refused(case: str, connection: DriverConnectionDep) -> None:
    """Send one of REFUSED's statements."""
    await connection.execute(REFUSED[case][0])


@routes.get("/hang-up")
async def hang_up(connection: ReadDriverConnectionDep) -> None:
    """Have the server end this connection mid-request."""
    await connection.execute("SELECT pg_terminate_backend(pg_backend_pid())")


@routes.get("/leave-open")
async def leave_open(connection: ReadDriverConnectionDep) -> dict[str, bool]:
    """Begin a transaction and never end it."""
    await connection.execute("BEGIN")
    return {"in_transaction": connection.is_in_transaction()}


@routes.get("/state")
async def state(connection: ReadDriverConnectionDep) -> dict[str, bool]:
    """Whether the connection came in a transaction."""
    return {"in_transaction": connection.is_in_transaction()}


@pytest.fixture
def driver_routes(app: FastAPI) -> FastAPI:
    """The recipe's routes under /test/driver, and routes that misuse the connection."""
    app.include_router(routes)
    return app


def pool_stats(app: FastAPI) -> tuple[int, int]:
    """How many connections the pool opened, and how many it threw away."""
    database: Database = app.state.database
    return database.stats.connects, database.stats.invalidations


@pytest.mark.parametrize("case", list(REFUSED))
async def test_what_the_database_refuses_gets_the_sessions_answer(
    driver_routes: FastAPI, committing_client: AsyncClient, case: str
) -> None:
    assert (await committing_client.post(DRIVER, json=NEW)).status_code == 201
    _, expected_status, detail = REFUSED[case]
    response = await committing_client.post(f"/test/driver/refused/{case}")
    assert response.status_code == expected_status, response.text
    assert detail in response.text
    # An error the transaction's rollback ends costs no connection.
    assert pool_stats(driver_routes) == (1, 0)


@pytest.mark.parametrize(
    ("route", "expected_status"),
    [("hang-up", status.HTTP_503_SERVICE_UNAVAILABLE), ("leave-open", status.HTTP_200_OK)],
)
async def test_a_connection_a_handler_broke_never_goes_back_to_the_pool(
    driver_routes: FastAPI, committing_client: AsyncClient, route: str, expected_status: int
) -> None:
    response = await committing_client.get(f"/test/driver/{route}")
    assert response.status_code == expected_status, response.text
    assert pool_stats(driver_routes) == (1, 1)
    # The next request gets a new connection, in no transaction.
    after = await committing_client.get("/test/driver/state")
    assert after.json() == {"in_transaction": False}
    assert pool_stats(driver_routes) == (2, 1)


@pytest.mark.parametrize(
    ("pooler", "in_transaction"), [(Pooler.NONE, False), (Pooler.PGBOUNCER, True)]
)
async def test_reads_run_alone_unless_pgbouncer_needs_a_transaction(
    settings: Settings, pooler: Pooler, *, in_transaction: bool
) -> None:
    app = create_probe_app(settings.model_copy(update={"database_pooler": pooler}))
    app.include_router(routes)
    async with in_process_client(app, lifespan=True) as client:
        response = await client.get("/test/driver/state")
    assert response.json() == {"in_transaction": in_transaction}


async def test_the_driver_dependencies_name_what_they_lack_on_sqlite() -> None:
    # The dev profile without DATABASE_URL: a SQLite file, which asyncpg does not serve.
    app = create_app(load_settings(_env_file=None, database_echo=False))
    app.include_router(driver_path.router, prefix="/test/driver")
    # As the server sees it: the error itself, which it logs, not only the 500.
    client = AsyncClient(transport=ASGITransport(app=app), base_url="http://test")
    async with app.router.lifespan_context(app), client:
        with pytest.raises(DriverUnavailableError, match="need PostgreSQL, not sqlite"):
            await client.get(f"{DRIVER}/1")
