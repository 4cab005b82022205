"""The driver recipe keeps the example's guarantees on asyncpg's own connection.

Same answers, commit before the answer, the same 409, 422 and 503 for what the
database refuses, and no connection back in the pool that a handler left broken.
"""

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asyncpg import Connection
from fastapi import FastAPI, HTTPException, status
from httpx import ASGITransport, AsyncClient

from {{ cookiecutter.package_name }}.dependencies import DriverConnectionDep, ReadDriverConnectionDep
from {{ cookiecutter.package_name }}.infrastructure.config import Settings, load_settings
from {{ cookiecutter.package_name }}.infrastructure.database import Database
from {{ cookiecutter.package_name }}.infrastructure.driver import DriverUnavailableError
from {{ cookiecutter.package_name }}.infrastructure.profiles import Pooler
from {{ cookiecutter.package_name }}.items.schemas import ItemCreate, ItemPublic
from {{ cookiecutter.package_name }}.main import create_app
from tests.conftest import in_process_client
from tests.items import driver_path
from tests.items.test_fast_path import committed_items
from tests.probe import create_probe_app

NEW = {"name": "Espresso cup", "description": "Porcelain, 80 ml", "price": "9.5"}
DRIVER = "/test/driver/items"


async def refuse(_connection: Connection) -> None:
    raise HTTPException(status.HTTP_409_CONFLICT, detail="refused after writing")


async def crash(_connection: Connection) -> None:
    raise RuntimeError("handler bug after writing")


async def fail_at_commit(connection: Connection) -> None:
    # Checked at COMMIT only: the handler returns and the commit itself fails.
    await connection.execute(
        "CREATE TEMP TABLE twice (n int UNIQUE DEFERRABLE INITIALLY DEFERRED) ON COMMIT DROP;"
        "INSERT INTO twice VALUES (1), (1)"
    )


AFTER_WRITING: dict[str, Callable[[Connection], Awaitable[None]]] = {
    "refuse": refuse,
    "crash": crash,
    "fail-at-commit": fail_at_commit,
}

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


@pytest.fixture
def driver_routes(app: FastAPI) -> FastAPI:
    """The test app with the routes of `mount_driver_routes`."""
    return mount_driver_routes(app)


def mount_driver_routes(app: FastAPI) -> FastAPI:
    """The recipe's routes under /test/driver, and routes that misuse the connection."""
    app.include_router(driver_path.router, prefix="/test/driver")

    def failing(after: Callable[[Connection], Awaitable[None]]) -> Callable[..., Any]:
        async def handler(data: ItemCreate, connection: DriverConnectionDep) -> ItemPublic:
            item = await driver_path.create_item(data, connection)
            await after(connection)
            return item

        return handler

    for name, after in AFTER_WRITING.items():
        app.add_api_route(f"/test/driver/{name}", failing(after), methods=["POST"])

    async def run(case: str, connection: DriverConnectionDep) -> None:
        await connection.execute(REFUSED[case][0])

    async def hang_up(connection: ReadDriverConnectionDep) -> None:
        await connection.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    async def leave_open(connection: ReadDriverConnectionDep) -> dict[str, bool]:
        await connection.execute("BEGIN")
        return {"in_transaction": connection.is_in_transaction()}

    async def state(connection: ReadDriverConnectionDep) -> dict[str, bool]:
        return {"in_transaction": connection.is_in_transaction()}

    app.add_api_route("/test/driver/refused/{case}", run, methods=["POST"])
    app.add_api_route("/test/driver/hang-up", hang_up)
    app.add_api_route("/test/driver/leave-open", leave_open)
    app.add_api_route("/test/driver/state", state)
    return app


def pool_stats(app: FastAPI) -> tuple[int, int]:
    """How many connections the pool opened, and how many it threw away."""
    database: Database = app.state.database
    return database.stats.connects, database.stats.invalidations


@pytest.mark.usefixtures("driver_routes")
async def test_the_driver_recipe_answers_as_the_orm_routes_do(client: AsyncClient) -> None:
    created = await client.post(DRIVER, json=NEW)
    assert created.status_code == 201, created.text
    item = created.json()
    assert item["price"] == "9.50"
    assert item["created_at"]
    assert (await client.get(f"{DRIVER}/{item['id']}")).json() == item
    assert (await client.get(f"/items/{item['id']}")).json() == item
    orm_item = (await client.post("/items", json=NEW)).json()
    assert orm_item["id"] == item["id"] + 1
    assert (await client.get(f"{DRIVER}/{orm_item['id']}")).json() == orm_item
    missing = await client.get(f"{DRIVER}/123456789")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Item 123456789 not found"})


@pytest.mark.usefixtures("driver_routes")
async def test_a_driver_write_is_committed_before_the_answer(
    committing_client: AsyncClient, database_url: str
) -> None:
    response = await committing_client.post(DRIVER, json=NEW)
    assert response.status_code == 201, response.text
    item = response.json()
    (stored,) = await committed_items(database_url)
    assert stored["id"] == item["id"]
    assert ItemPublic.model_validate(item).created_at == stored["created_at"]


@pytest.mark.usefixtures("driver_routes")
@pytest.mark.parametrize(
    ("failure", "expected_status"),
    [
        ("refuse", status.HTTP_409_CONFLICT),
        ("crash", status.HTTP_500_INTERNAL_SERVER_ERROR),
        # An answer sent before the commit would have been a 201.
        ("fail-at-commit", status.HTTP_409_CONFLICT),
    ],
)
async def test_a_driver_write_that_fails_leaves_nothing_behind(
    committing_client: AsyncClient, database_url: str, failure: str, expected_status: int
) -> None:
    response = await committing_client.post(f"/test/driver/{failure}", json=NEW)
    assert response.status_code == expected_status, response.text
    assert await committed_items(database_url) == []


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
    after = await committing_client.get("/test/driver/leave-open")
    assert after.json() == {"in_transaction": True}
    assert pool_stats(driver_routes) == (2, 2)


@pytest.mark.parametrize(
    ("pooler", "in_transaction"), [(Pooler.NONE, False), (Pooler.PGBOUNCER, True)]
)
async def test_reads_run_alone_unless_pgbouncer_needs_a_transaction(
    settings: Settings, pooler: Pooler, *, in_transaction: bool
) -> None:
    app = mount_driver_routes(
        create_probe_app(settings.model_copy(update={"database_pooler": pooler}))
    )
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
