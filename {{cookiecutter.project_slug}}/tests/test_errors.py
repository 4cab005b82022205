"""Overload and slow queries get a quick 503; broken constraints a 409 or 422; bugs a JSON 500.

None of them shows SQL or the values sent.
"""

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from pydantic import BaseModel
from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    insert,
    text,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from {{ cookiecutter.package_name }}.errors import violation_of
from {{ cookiecutter.package_name }}.infrastructure.config import Settings, load_settings
from {{ cookiecutter.package_name }}.infrastructure.database import ConnectionDep, SessionDep
from {{ cookiecutter.package_name }}.main import create_app
from tests.conftest import in_process_client

AT_CAPACITY = "The service is at capacity; retry shortly."
TOO_SLOW = "The database took too long to answer; retry shortly."

SLOW_QUERY_SECONDS = 0.2
POOL_TIMEOUT = 1.0
# A request that needs a connection, but only for a moment.
QUICK = "/test/slow?seconds=0"


def add_test_routes(app: FastAPI) -> None:
    """Routes that hold a connection for a while (or a moment), or run broken SQL.

    Of the service's own, so that these tests hold whatever domains it has.
    """

    async def slow(session: SessionDep, seconds: float = SLOW_QUERY_SECONDS) -> dict[str, str]:
        await session.execute(text("SELECT pg_sleep(:seconds)"), {"seconds": seconds})
        return {"status": "done"}

    async def broken_sql(session: SessionDep) -> None:
        await session.execute(text("SELECT no_such_column"))

    app.add_api_route("/test/slow", slow)
    app.add_api_route("/test/broken-sql", broken_sql)


def small_pool(settings: Settings, **changes: object) -> Settings:
    """The test settings with a 5+0 pool that gives up waiting after POOL_TIMEOUT."""
    values = {"database_pool_size": 5, "database_max_overflow": 0} | changes
    return settings.model_copy(update={"database_pool_timeout": POOL_TIMEOUT} | values)


@pytest.fixture
async def small_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app on a 5+0 pool, with the test routes."""
    app = create_app(small_pool(settings))
    add_test_routes(app)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def small_client(small_app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with in_process_client(small_app, request_timeout=30) as client:
        yield client


async def test_an_exhausted_pool_answers_503_with_retry_after(
    small_client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    slow = [asyncio.create_task(small_client.get("/test/slow?seconds=3")) for _ in range(5)]
    await asyncio.sleep(0.3)  # let the slow requests take every connection
    with caplog.at_level(logging.WARNING):
        responses = await asyncio.gather(*(small_client.get(QUICK) for _ in range(3)))
    for response in responses:
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert response.json() == {"detail": AT_CAPACITY}
    assert [r.getMessage() for r in caplog.records if "exhausted" in r.getMessage()] == [
        "Connection pool exhausted: 1 request(s) answered 503 since the last report "
        "(size 5, checked out 5, overflow 0)"
    ]
    assert all(not record.exc_info for record in caplog.records)
    assert [(await task).status_code for task in slow] == [200] * 5


@pytest.mark.slow
async def test_a_thousand_concurrent_requests_all_get_an_answer(
    small_client: AsyncClient,
) -> None:
    # How long each one waits is checked against a real server in test_server.py;
    # here the client shares the event loop, so only completeness is checked.
    async with asyncio.timeout(60):
        responses = await asyncio.gather(*(small_client.get("/test/slow") for _ in range(1000)))
    statuses = [response.status_code for response in responses]
    assert set(statuses) <= {200, 503}
    assert statuses.count(200) >= 5
    # The moment the load is gone, the service serves normally again.
    assert (await small_client.get(QUICK)).status_code == 200
    pool = (await small_client.get("/health/pool")).json()
    assert pool["checked_out"] == 0
    # On a loaded machine opening one of the pool's connections can itself
    # time out: that 503 says so, and is no pool timeout.
    details = [
        response.json().get("detail") for response in responses if response.status_code == 503
    ]
    assert set(details) <= {AT_CAPACITY, TOO_SLOW}
    # Turned away at the door (admission.py) or by the pool, never lost.
    assert pool["timeouts"] + pool["requests"]["refused"] == details.count(AT_CAPACITY)
    assert pool["requests"]["in_flight"] == 0


async def test_a_query_past_the_statement_timeout_is_a_503_and_frees_its_connection(
    settings: Settings,
) -> None:
    app = create_app(small_pool(settings, database_statement_timeout_ms=100))
    add_test_routes(app)
    async with in_process_client(app, lifespan=True) as client:
        responses = await asyncio.gather(*(client.get("/test/slow?seconds=5") for _ in range(10)))
        assert {response.status_code for response in responses} == {503}
        assert responses[0].json() == {"detail": TOO_SLOW}
        assert (await client.get(QUICK)).status_code == 200
        assert (await client.get("/health/pool")).json()["checked_out"] == 0


async def test_a_bug_is_a_json_500_without_sql_or_traceback(small_client: AsyncClient) -> None:
    response = await small_client.get("/test/broken-sql")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error"}
    assert "no_such_column" not in response.text
    assert (await small_client.get("/health/pool")).json()["checked_out"] == 0


# Tables of these tests' own, outside Base.metadata, so that they hold
# whatever domains the project has; created and dropped around each test.
constraints = MetaData()
parents = Table(
    "test_errors_parents",
    constraints,
    Column("id", Integer, primary_key=True),
    Column("code", String(40), nullable=False, unique=True),
    Column("size", Integer, CheckConstraint("size > 0", name="positive_size")),
)
children = Table(
    "test_errors_children",
    constraints,
    Column("id", Integer, primary_key=True),
    Column("parent_id", ForeignKey(parents.c.id, name="fk_children_parent"), nullable=False),
)
# A value no answer may repeat: the database's own message contains it.
SECRET_CODE = "code-Zq9-not-to-be-echoed"


def add_constraint_routes(app: FastAPI) -> None:
    """Routes that write to the tables above, through a session or a connection."""

    async def add_parent(
        session: SessionDep, parent_id: int, code: str = SECRET_CODE, size: int | None = 1
    ) -> dict[str, str]:
        await session.execute(insert(parents).values(id=parent_id, code=code, size=size))
        return {"status": "added"}

    async def add_child(connection: ConnectionDep, parent_id: int) -> dict[str, str]:
        await connection.execute(insert(children).values(parent_id=parent_id))
        return {"status": "added"}

    async def delete_parent(session: SessionDep, parent_id: int) -> None:
        await session.execute(delete(parents).where(parents.c.id == parent_id))

    async def add_parent_without_code(session: SessionDep, parent_id: int) -> None:
        await session.execute(
            text("INSERT INTO test_errors_parents (id) VALUES (:id)"), {"id": parent_id}
        )

    app.add_api_route("/test/parents", add_parent, methods=["POST"])
    app.add_api_route("/test/parents-without-code", add_parent_without_code, methods=["POST"])
    app.add_api_route("/test/children", add_child, methods=["POST"])
    app.add_api_route("/test/parents", delete_parent, methods=["DELETE"])


@pytest.fixture
async def constraint_client(app: FastAPI, database_url: str) -> AsyncIterator[AsyncClient]:
    """A client of the app with the constraint routes, whose tables exist during the test."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(constraints.create_all)
        add_constraint_routes(app)
        async with in_process_client(app) as client:
            yield client
    finally:
        async with engine.begin() as connection:
            await connection.run_sync(constraints.drop_all)
        await engine.dispose()


async def assert_nothing_held(client: AsyncClient) -> None:
    """Every connection is back in the pool, and the next request is served."""
    assert (await client.get("/health/pool")).json()["checked_out"] == 0
    assert (
        await client.post("/test/parents", params={"parent_id": 99, "code": "next"})
    ).status_code == 200


async def test_a_taken_unique_value_is_a_409_naming_the_constraint(
    constraint_client: AsyncClient,
) -> None:
    assert (
        await constraint_client.post("/test/parents", params={"parent_id": 1})
    ).status_code == 200
    response = await constraint_client.post("/test/parents", params={"parent_id": 2})
    assert response.status_code == 409
    assert response.json() == {
        "detail": "Conflicts with stored data (constraint test_errors_parents_code_key)"
    }
    assert SECRET_CODE not in response.text
    await assert_nothing_held(constraint_client)


async def test_deleting_a_row_still_referenced_is_a_409(constraint_client: AsyncClient) -> None:
    await constraint_client.post("/test/parents", params={"parent_id": 1})
    assert (
        await constraint_client.post("/test/children", params={"parent_id": 1})
    ).status_code == 200
    response = await constraint_client.delete("/test/parents", params={"parent_id": 1})
    assert response.status_code == 409
    assert response.json() == {
        "detail": "Still referenced by other data (constraint fk_children_parent)"
    }
    await assert_nothing_held(constraint_client)


async def test_referring_to_a_missing_row_is_a_422(constraint_client: AsyncClient) -> None:
    response = await constraint_client.post("/test/children", params={"parent_id": 424242})
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "loc": ["body"],
                "msg": "Refers to data that does not exist (constraint fk_children_parent)",
                "type": "foreign_key_violation",
            }
        ]
    }
    assert "424242" not in response.text
    await assert_nothing_held(constraint_client)


async def test_a_broken_check_or_a_missing_value_is_a_422(constraint_client: AsyncClient) -> None:
    broken = await constraint_client.post("/test/parents", params={"parent_id": 1, "size": -5})
    assert broken.status_code == 422
    assert broken.json()["detail"][0] == {
        "loc": ["body"],
        "msg": "Breaks a rule of the stored data (constraint positive_size)",
        "type": "check_violation",
    }
    missing = await constraint_client.post("/test/parents-without-code", params={"parent_id": 2})
    assert missing.status_code == 422
    assert missing.json()["detail"][0] == {
        "loc": ["body"],
        "msg": "The column code may not be empty",
        "type": "not_null_violation",
    }
    await assert_nothing_held(constraint_client)


def sqlite_violation(statement: str) -> IntegrityError:
    """The error the dev database (SQLite) gives for `statement`, as SQLAlchemy wraps it."""
    database = sqlite3.connect(":memory:")
    for setup in [
        "PRAGMA foreign_keys = ON",
        "CREATE TABLE p (id INTEGER PRIMARY KEY, code TEXT NOT NULL UNIQUE, CHECK (id > 0))",
        "CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p (id))",
        "INSERT INTO p VALUES (1, 'a')",
        "INSERT INTO c VALUES (1, 1)",
    ]:
        database.execute(setup)
    try:
        database.execute(statement)
    except sqlite3.IntegrityError as error:
        return IntegrityError(statement, None, error)
    finally:
        database.close()
    raise AssertionError(f"{statement} broke no constraint")


@pytest.mark.parametrize(
    ("statement", "sqlstate", "still_referenced"),
    [
        ("INSERT INTO p VALUES (2, 'a')", "23505", False),
        ("INSERT INTO c VALUES (2, 7)", "23503", False),
        ("DELETE FROM p WHERE id = 1", "23503", True),
        ("INSERT INTO p VALUES (3, NULL)", "23502", False),
        ("INSERT INTO p VALUES (-1, 'b')", "23514", False),
    ],
)
def test_sqlite_violations_are_told_apart_by_their_message(
    statement: str, sqlstate: str, still_referenced: bool
) -> None:
    violation = violation_of(sqlite_violation(statement))
    assert (violation.sqlstate, violation.still_referenced) == (sqlstate, still_referenced)


class Note(BaseModel):
    """A body for the routes below."""

    text: str


@pytest.fixture
def routed_app() -> FastAPI:
    """The app, not started, with two routes on one path, as a team's router may add them."""
    app = create_app(load_settings(_env_file=None))

    async def read() -> dict[str, str]:
        """Read."""
        return {}

    async def write(note: Note) -> dict[str, str]:
        """Write."""
        return {"text": note.text}

    app.add_api_route("/test/notes", read, methods=["GET"])
    app.add_api_route("/test/notes", write, methods=["PUT"])
    return app


@pytest.mark.parametrize("method", ["DELETE", "OPTIONS", "POST"])
async def test_a_405_names_every_method_of_its_path(routed_app: FastAPI, method: str) -> None:
    async with in_process_client(routed_app) as client:
        response = await client.request(method, "/test/notes")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, PUT"


async def test_a_body_that_cannot_be_decoded_is_the_documented_422(routed_app: FastAPI) -> None:
    async with in_process_client(routed_app) as client:
        response = await client.put(
            "/test/notes", content=b'{"text": "\xff"}', headers={"Content-Type": "application/json"}
        )
        other_errors = await client.get("/test/none")
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "loc": ["body"],
                "msg": "The body could not be decoded as its content type",
                "type": "body_not_parsed",
            }
        ]
    }
    # Other HTTP errors keep FastAPI's answer.
    assert (other_errors.status_code, other_errors.json()) == (404, {"detail": "Not Found"})
