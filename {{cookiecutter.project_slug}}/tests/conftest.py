"""Shared fixtures: one throwaway PostgreSQL database per run, built by the migrations.

Set TEST_DATABASE_URL to a PostgreSQL server where the test user may create
databases; the default is the local server's `postgres` user.
"""

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr
from sqlalchemy import Table, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from {{ cookiecutter.package_name }}.infrastructure.config import Settings, load_settings
from {{ cookiecutter.package_name }}.infrastructure.database import Database
from {{ cookiecutter.package_name }}.infrastructure.orm import Base
from tests import probe
from tests.postgres_cluster import throwaway_cluster_instead
from tests.proxy import TcpProxy

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TEST_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def is_database_variable(name: str) -> bool:
    """Whether the service reads `name` as a database setting (DATABASE_*, DATABASES__*)."""
    return name.upper().startswith(("DATABASE_", "DATABASES__"))


# Other variables of the service that would change what the tests' requests get.
REQUEST_VARIABLES = (
    "LOG_",
    "CORS_",
    "TRUSTED_HOSTS",
    "MAX_REQUEST_BODY_BYTES",
    "OTEL_",
    "SENTRY_",
    "MIGRATION_",
)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's database, log, request, OTEL_* and SENTRY_* variables out of tests."""
    # A developer's collector or Sentry project must not receive the tests' requests and bugs.
    for name in list(os.environ):
        if is_database_variable(name) or name.upper().startswith(REQUEST_VARIABLES):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


# The loggers configure_logging changes; create_app and the command line call it.
CONFIGURED_LOGGERS = (
    "",
    "{{ cookiecutter.package_name }}",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "sqlalchemy.engine.Engine",
)


@contextmanager
def logging_restored() -> Iterator[None]:
    """Put the loggers configure_logging changes back as they were when the block ends."""
    loggers = [logging.getLogger(name or None) for name in CONFIGURED_LOGGERS]
    saved = [(list(logger.handlers), logger.level, logger.propagate) for logger in loggers]
    yield
    for logger, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """Put the loggers back as they were, so no test writes through another test's handler."""
    with logging_restored():
        yield


def admin_url() -> URL:
    """The server the tests may create databases on."""
    raw = os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
    return make_url(load_settings(_env_file=None, database_url=raw).url)


async def run_admin_statement(statement: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
    engine = create_async_engine(
        admin_url(), poolclass=NullPool, connect_args={"timeout": 5}
    ).execution_options(isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_server(pytestconfig: pytest.Config) -> Iterator[None]:
    """Use the server at admin_url(), or a throwaway cluster when that one is unreachable."""
    try:
        asyncio.run(run_admin_statement("SELECT 1"))
    except (OSError, TimeoutError, SQLAlchemyError) as error:
        where = admin_url().render_as_string(hide_password=True)
        unreachable = f"PostgreSQL is not reachable at {where} ({type(error).__name__})"
        with throwaway_cluster_instead(unreachable, pytestconfig):
            yield
    else:
        yield


@contextmanager
def throwaway_database(role: str) -> Iterator[str]:
    """Create a database, migrate it to head, yield its URL, and drop it at the end."""
    name = f"test_{{ cookiecutter.package_name }}_{role}_{uuid.uuid4().hex[:12]}"
    asyncio.run(run_admin_statement(f'CREATE DATABASE "{name}"'))
    url = admin_url().set(database=name).render_as_string(hide_password=False)
    try:
        config = Config(PROJECT_ROOT / "alembic.ini")
        config.attributes["database_url"] = url
        config.attributes["configure_logger"] = False
        with pytest.MonkeyPatch.context() as environment:
            # The migrations read the service's settings: keep the developer's out.
            for variable in [name for name in os.environ if is_database_variable(name)]:
                environment.delenv(variable)
            command.upgrade(config, "head")
        asyncio.run(add_probe_table(url))
        yield url
    finally:
        asyncio.run(run_admin_statement(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def add_probe_table(url: str) -> None:
    """Give the database at `url` the table of the tests' own routes (tests/probe.py)."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await probe.create_probe_table(connection)
    finally:
        await engine.dispose()


# Autouse: without PostgreSQL the run stops at once with one line, before any test.
@pytest.fixture(scope="session", autouse=True)
def database_url(postgres_server: None) -> Iterator[str]:
    """The primary database of this run, migrated to head."""
    with throwaway_database("primary") as url:
        yield url


@pytest.fixture(scope="session")
def replica_database_url(postgres_server: None) -> Iterator[str]:
    """A second database of this run, migrated the same way, that plays the read replica."""
    with throwaway_database("replica") as url:
        yield url


@pytest.fixture
def model_probes() -> Iterator[Table]:
    """A table registered with the models for the test, as a domain's model is."""
    with probe.model_table() as table:
        yield table


@pytest.fixture
def application_name() -> str:
    """A name no other test uses, to find this test's connections in pg_stat_activity."""
    return f"test-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def settings(database_url: str, application_name: str) -> Settings:
    """Settings for the test database: the dev profile, without SQL echo."""
    return load_settings(
        _env_file=None,
        database_url=database_url,
        database_echo=False,
        database_application_name=application_name,
    )


@pytest.fixture
def replica_settings(
    database_url: str, replica_database_url: str, application_name: str
) -> Settings:
    """The test settings with the second database as DATABASES__REPLICA__URL."""
    return load_settings(
        _env_file=None,
        database_url=database_url,
        database_echo=False,
        database_application_name=application_name,
        databases={"replica": {"url": replica_database_url, "echo": False}},
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The application with the probe's routes, started and stopped through its real lifespan."""
    app = probe.create_probe_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def proxy(settings: Settings) -> AsyncIterator[TcpProxy]:
    """A proxy in front of the test database that the test can cut."""
    url = make_url(settings.url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    yield proxy
    await proxy.cut()


@pytest.fixture
def proxied_settings(settings: Settings, proxy: TcpProxy) -> Settings:
    """The test settings, reaching the database through the proxy and giving up quickly."""
    url = make_url(settings.url).set(host="127.0.0.1", port=proxy.port)
    changed = {
        "database_url": SecretStr(url.render_as_string(hide_password=False)),
        "database_connect_timeout": 1,
    }
    return settings.model_copy(update=changed)


@asynccontextmanager
async def in_process_client(
    app: FastAPI, *, lifespan: bool = False, request_timeout: float = 5.0
) -> AsyncIterator[AsyncClient]:
    """A client that calls `app` in this process, without a server or a socket.

    Unhandled errors come back as 500 answers, as a real server sends them, so
    tests can assert on them. With `lifespan`, the app starts before the client
    opens and stops after it closes.
    """
    transport = ASGITransport(app=app, raise_app_exceptions=False)
    running: AbstractAsyncContextManager[object] = (
        app.router.lifespan_context(app) if lifespan else nullcontext()
    )
    client = AsyncClient(transport=transport, base_url="http://test", timeout=request_timeout)
    async with running, client:
        yield client


async def empty_tables(connection: AsyncConnection) -> None:
    """Empty every table of the models and the probe, restart their ids, whatever refers to what."""
    # From the metadata, so a new domain's tables, and those referring to
    # them, are emptied too; the application's import registered them all.
    quote = connection.dialect.identifier_preparer.format_table
    tables = [*Base.metadata.sorted_tables, *probe.metadata.sorted_tables]
    names = ", ".join(quote(table) for table in tables)
    if names:
        await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def committing_client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    """A client whose writes are really committed; every table is emptied afterwards."""
    async with in_process_client(app) as client:
        yield client
    database: Database = app.state.database
    async with database.engine.begin() as connection:
        await empty_tables(connection)


@pytest.fixture
async def connection(app: FastAPI) -> AsyncIterator[AsyncConnection]:
    """An open transaction that every request joins and that is rolled back after the test."""
    database: Database = app.state.database
    # The engine's connections default to autocommit; this one needs a real transaction.
    transactional = database.engine.execution_options(isolation_level="READ COMMITTED")
    async with transactional.connect() as connection:
        transaction = await connection.begin()
        # SQLAlchemy begins on the first statement; DriverConnectionDep's
        # statements must find the transaction open, to nest in it.
        await connection.execute(text("SELECT 1"))
        # Each request's commit releases a SAVEPOINT inside this transaction
        # instead of committing, and reads see the test's writes, so the test
        # leaves nothing behind.
        joined = async_sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )

        @asynccontextmanager
        async def savepoint() -> AsyncIterator[AsyncConnection]:
            async with connection.begin_nested():
                yield connection

        @asynccontextmanager
        async def shared() -> AsyncIterator[AsyncConnection]:
            yield connection

        @asynccontextmanager
        async def lent() -> AsyncIterator[asyncpg.Connection]:
            driver = (await connection.get_raw_connection()).driver_connection
            assert isinstance(driver, asyncpg.Connection)
            yield driver

        app.state.database = replace(
            database,
            sessionmaker=joined,
            read_sessionmaker=joined,
            begin=savepoint,
            connect=shared,
            driver=lent,
        )
        try:
            yield connection
        finally:
            app.state.database = database
            await transaction.rollback()


@pytest.fixture
async def client(app: FastAPI, connection: AsyncConnection) -> AsyncIterator[AsyncClient]:
    """A client whose requests are rolled back after the test; send them one at a time."""
    async with in_process_client(app) as client:
        yield client


async def connection_count(application_name: str, *, expected: int, within: float = 5.0) -> int:
    """Count the server's connections named `application_name`, waiting up to `within` seconds.

    A backend leaves pg_stat_activity a moment after its client hangs up, so the
    count is read again until it equals `expected` or the time is up.
    """
    engine = create_async_engine(admin_url(), poolclass=NullPool)
    query = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    try:
        while True:
            async with engine.connect() as connection:
                count: int = (await connection.scalar(query, {"name": application_name})) or 0
            if count == expected or loop.time() > deadline:
                return count
            await asyncio.sleep(0.05)
    finally:
        await engine.dispose()
