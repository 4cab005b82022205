"""One migrator at a time: concurrent upgrades queue, and the later ones find the work done."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from {{ cookiecutter.package_name }}.infrastructure.config import load_settings
from {{ cookiecutter.package_name }}.infrastructure.migration_settings import migrator_lock_key
from {{ cookiecutter.package_name }}.main import create_app
from tests.conftest import in_process_client
from tests.migrations.probe import (
    ProbeHistory,
    finish,
    revisions_of,
    start_upgrade,
    stop,
    until_the_migration_connects,
)


def test_concurrent_upgrades_from_an_empty_database_all_succeed_with_one_head(
    probe: ProbeHistory, empty_database: str
) -> None:
    # Each revision reads, pauses, then creates: without a lock every run would
    # find the database empty and all but one would fail on the second create.
    probe.add("p1", 'op.execute("SELECT pg_sleep(0.3)")\nop.execute("CREATE TABLE first (id int)")')
    probe.add("p2", 'op.execute("CREATE TABLE second (id int)")')
    runs = [start_upgrade(probe, empty_database) for _ in range(4)]
    finished = [finish(run) for run in runs]
    assert [run.code for run in finished] == [0] * 4, [run.stderr for run in finished]
    assert asyncio.run(revisions_of(empty_database)) == ["p2"]
    # Each reports what it did: the later ones found the work done while they waited.
    reports = sorted(run.stdout.splitlines()[-1].split(" ", 1)[1] for run in finished)
    assert reports == ["stays at p2"] * 3 + ["went from base to p2"]


@asynccontextmanager
async def holding_the_migrator_lock(database_url: str, name: str) -> AsyncIterator[AsyncConnection]:
    """A session that holds the service's migrator lock, as a migrating replica does."""
    engine = create_async_engine(
        database_url,
        poolclass=NullPool,
        connect_args={"server_settings": {"application_name": name}},
    )
    try:
        async with engine.connect() as connection:
            await connection.execute(
                text("SELECT pg_advisory_lock(:key)"), {"key": migrator_lock_key()}
            )
            await connection.commit()
            yield connection
    finally:
        await engine.dispose()


async def test_waiting_for_another_migrator_is_bounded_and_names_it(
    probe: ProbeHistory, empty_database: str
) -> None:
    probe.add("p1", 'op.execute("CREATE TABLE first (id int)")')
    name = f"replica-{uuid.uuid4().hex[:8]}"
    async with holding_the_migrator_lock(empty_database, name) as holder:
        pid = await holder.scalar(text("SELECT pg_backend_pid()"))
        finished = finish(start_upgrade(probe, empty_database, MIGRATION_WAIT_TIMEOUT_MS="500"))
    assert finished.code == 1
    (line,) = finished.errors
    assert "MIGRATION_WAIT_TIMEOUT_MS=500" in line
    assert f"pid {pid} ({name}, idle in transaction, connected for" in line
    assert "Waiting for another migration to finish" in finished.stderr


async def test_the_service_stays_ready_while_another_replica_migrates(
    probe: ProbeHistory, empty_database: str
) -> None:
    probe.add("p1", 'op.execute("CREATE TABLE first (id int)")')
    settings = load_settings(_env_file=None, database_url=empty_database, database_echo=False)
    async with holding_the_migrator_lock(empty_database, "migrating-replica") as holder:
        waiting = start_upgrade(probe, empty_database)
        try:
            await until_the_migration_connects(empty_database, waiting)
            # Starting and answering readiness take no migration lock.
            async with in_process_client(create_app(settings), lifespan=True) as client:
                ready = await client.get("/health/ready")
            assert waiting.poll() is None
            await holder.execute(
                text("SELECT pg_advisory_unlock(:key)"), {"key": migrator_lock_key()}
            )
            finished = finish(waiting)
        finally:
            stop(waiting)
    assert ready.status_code == 200
    assert finished.code == 0, finished.stderr
    assert await revisions_of(empty_database) == ["p1"]
