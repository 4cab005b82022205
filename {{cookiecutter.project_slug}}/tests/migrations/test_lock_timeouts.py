"""Migrations wait a bounded time for table locks, so the running service's reads go on."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from {{ cookiecutter.package_name }}.dependencies import ReadSessionDep
from {{ cookiecutter.package_name }}.infrastructure.config import load_settings
from {{ cookiecutter.package_name }}.main import create_app
from tests.conftest import in_process_client
from tests.migrations.probe import (
    ProbeHistory,
    finish,
    revisions_of,
    start_upgrade,
    stop,
    until_the_migration_connects,
    upgrade,
)

# Keeps retrying far longer than any test waits, in short waits.
PATIENT = {
    "MIGRATION_LOCK_TIMEOUT_MS": "100",
    "MIGRATION_LOCK_RETRIES": "1000",
    "MIGRATION_LOCK_RETRY_DELAY_MS": "50",
}
# Gives up after its second short wait.
IMPATIENT = {
    "MIGRATION_LOCK_TIMEOUT_MS": "100",
    "MIGRATION_LOCK_RETRIES": "1",
    "MIGRATION_LOCK_RETRY_DELAY_MS": "10",
}


@pytest.fixture
def probe_table(probe: ProbeHistory, empty_database: str) -> ProbeHistory:
    """The probe history at its first revision, a table with rows; the second adds a column."""
    probe.add(
        "p1",
        """
        op.execute("CREATE TABLE probe (id bigint PRIMARY KEY, note text)")
        op.execute("INSERT INTO probe SELECT g, 'row' FROM generate_series(1, 10) AS g")
        """,
    )
    assert upgrade(probe, empty_database).code == 0
    probe.add("p2", 'op.add_column("probe", sa.Column("extra", sa.Text()))')
    return probe


@asynccontextmanager
async def holding_a_read(database_url: str, name: str) -> AsyncIterator[AsyncConnection]:
    """A transaction that has read the probe table and stays open: it holds ACCESS SHARE."""
    engine = create_async_engine(
        database_url,
        poolclass=NullPool,
        connect_args={"server_settings": {"application_name": name}},
    )
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT count(*) FROM probe"))
            yield connection
    finally:
        await engine.dispose()


def service_reading_probe(database_url: str) -> FastAPI:
    """The service, with a route that reads the probe table like any read of a domain."""
    # A statement timeout far above the migration's lock timeout: a read that queues
    # behind the migration's ALTER for the ALTER's whole wait fails with it.
    settings = load_settings(
        _env_file=None,
        database_url=database_url,
        database_echo=False,
        database_statement_timeout_ms=3000,
    )
    app = create_app(settings)

    @app.get("/probe")
    async def count_probe(session: ReadSessionDep) -> int:
        return int(await session.scalar(text("SELECT count(*) FROM probe")) or 0)

    return app


async def test_reads_answer_while_an_upgrade_waits_and_it_succeeds_once_the_holder_ends(
    probe_table: ProbeHistory, empty_database: str
) -> None:
    app = service_reading_probe(empty_database)
    async with (
        in_process_client(app, lifespan=True, request_timeout=30) as client,
        holding_a_read(empty_database, f"holder-{uuid.uuid4().hex[:8]}") as holder,
    ):
        migration = start_upgrade(probe_table, empty_database, **PATIENT)
        try:
            await until_the_migration_connects(empty_database, migration, waiting_for_a_lock=True)
            statuses = [(await client.get("/probe")).status_code for _ in range(30)]
            # Every read answered while the upgrade was still waiting behind the holder.
            assert migration.poll() is None
            assert statuses == [200] * 30
            await holder.rollback()
            finished = finish(migration)
        finally:
            stop(migration)
    assert finished.code == 0, finished.stderr
    assert await revisions_of(empty_database) == ["p2"]
    async with in_process_client(app, lifespan=True) as client:
        assert (await client.get("/probe")).json() == 10


@pytest.mark.parametrize("tool", ["db", "alembic"])
async def test_an_upgrade_that_cannot_get_its_lock_fails_in_one_line_naming_the_holder(
    probe_table: ProbeHistory, empty_database: str, tool: str
) -> None:
    name = f"holder-{uuid.uuid4().hex[:8]}"
    async with holding_a_read(empty_database, name) as holder:
        pid = await holder.scalar(text("SELECT pg_backend_pid()"))
        finished = finish(start_upgrade(probe_table, empty_database, tool=tool, **IMPATIENT))
    # Alembic's own command line exits 255 on any failure.
    assert finished.code == (1 if tool == "db" else 255)
    (line,) = finished.errors
    assert "AccessExclusiveLock on probe" in line
    assert f"pid {pid} ({name}, idle in transaction, transaction open for" in line
    assert "MIGRATION_LOCK_TIMEOUT_MS=100" in line
    assert "2 times" in line
    # Nothing of the revision that waited was applied.
    assert await revisions_of(empty_database) == ["p1"]
    async with holding_a_read(empty_database, name) as reader:
        columns = await reader.execute(text("SELECT * FROM probe LIMIT 1"))
        assert list(columns.keys()) == ["id", "note"]


def test_a_step_longer_than_the_apps_statement_timeout_is_not_cut(
    probe: ProbeHistory, empty_database: str
) -> None:
    probe.add("p1", 'op.execute("SELECT pg_sleep(1)")')
    finished = upgrade(probe, empty_database, DATABASE_STATEMENT_TIMEOUT_MS="200")
    assert finished.code == 0, finished.stderr
    assert asyncio.run(revisions_of(empty_database)) == ["p1"]


def test_the_migration_statement_timeout_is_its_own(
    probe: ProbeHistory, empty_database: str
) -> None:
    probe.add("p1", 'op.execute("SELECT pg_sleep(1)")')
    finished = upgrade(probe, empty_database, MIGRATION_STATEMENT_TIMEOUT_MS="200")
    assert finished.code == 1
    (line,) = finished.errors
    assert line.endswith("canceling statement due to statement timeout")
