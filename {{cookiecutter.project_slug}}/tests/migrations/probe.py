"""A migration history of the tests' own, run by the real env.py and `db upgrade`.

The project's own revisions stay out of these tests: whatever a team adds to
migrations/versions, the probe history holds only what a test writes into it.
"""

import asyncio
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from {{ cookiecutter.package_name }}.commands import COMMAND
from {{ cookiecutter.package_name }}.infrastructure import online_migrations
from {{ cookiecutter.package_name }}.infrastructure.migration_settings import (
    MIGRATION_APPLICATION_NAME,
)
from tests.conftest import PROJECT_ROOT, is_database_variable

# What a probe revision imports its helpers from, whatever the package is called.
ONLINE_MODULE = online_migrations.__name__

REVISION = '''\
"""A probe revision."""

import sqlalchemy as sa
from alembic import op

import {module} as online

revision = {revision!r}
down_revision = {down_revision!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
{upgrade}


def downgrade() -> None:
{downgrade}
'''


@dataclass
class ProbeHistory:
    """A folder with alembic.ini, the project's env.py and the revisions a test adds."""

    root: Path
    revisions: list[str] = field(default_factory=list)

    @property
    def alembic_ini(self) -> Path:
        """The configuration that points Alembic at this history."""
        return self.root / "alembic.ini"

    def add(self, revision: str, upgrade: str, downgrade: str = "pass") -> None:
        """Append a revision whose upgrade() and downgrade() run the given lines."""
        down = self.revisions[-1] if self.revisions else None
        source = REVISION.format(
            module=ONLINE_MODULE,
            revision=revision,
            down_revision=down,
            upgrade=textwrap.indent(textwrap.dedent(upgrade).strip(), "    "),
            downgrade=textwrap.indent(textwrap.dedent(downgrade).strip(), "    "),
        )
        number = len(self.revisions)
        (self.root / "migrations" / "versions" / f"{number:04d}_{revision}.py").write_text(source)
        self.revisions.append(revision)


def probe_history(root: Path) -> ProbeHistory:
    """Lay out a probe history under `root`, with the project's own env.py and settings."""
    migrations = root / "migrations"
    (migrations / "versions").mkdir(parents=True)
    for name in ("env.py", "script.py.mako"):
        shutil.copy(PROJECT_ROOT / "migrations" / name, migrations / name)
    # The project's alembic.ini (logging included); %(here)s is now the probe's folder.
    shutil.copy(PROJECT_ROOT / "alembic.ini", root / "alembic.ini")
    return ProbeHistory(root)


def migration_environment(
    history: ProbeHistory, database_url: str, **variables: str
) -> dict[str, str]:
    """The environment of a migration process: no developer settings, this history."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not is_database_variable(name) and not name.upper().startswith("MIGRATION_")
    }
    return environment | {
        "DATABASE_URL": database_url,
        "ALEMBIC_CONFIG": str(history.alembic_ini),
        "DATABASE_ECHO": "false",
        **variables,
    }


def command_line(history: ProbeHistory, tool: str) -> list[str]:
    """`db upgrade` of the service's command, or plain `alembic upgrade head`."""
    if tool == "alembic":
        return [sys.executable, "-m", "alembic", "-c", str(history.alembic_ini), "upgrade", "head"]
    executable = shutil.which(COMMAND, path=str(Path(sys.executable).parent))
    assert executable is not None, f"{COMMAND} is not installed next to {sys.executable}"
    return [executable, "db", "upgrade"]


def start_upgrade(
    history: ProbeHistory, database_url: str, *, tool: str = "db", **variables: str
) -> subprocess.Popen[str]:
    """Start an upgrade to head in a process of its own, as a deployment would."""
    return subprocess.Popen(
        command_line(history, tool),
        cwd=history.root,
        env=migration_environment(history, database_url, **variables),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@dataclass(frozen=True)
class Finished:
    """A migration process that has ended: its exit code and what it printed."""

    code: int
    stdout: str
    stderr: str

    @property
    def errors(self) -> list[str]:
        """The lines the command gave as its failure (not its progress or log lines)."""
        lines = (self.stdout + self.stderr).splitlines()
        return [line for line in lines if line.startswith(("error: ", "FAILED: "))]


def finish(process: subprocess.Popen[str], timeout: float = 90) -> Finished:
    """Wait for a migration process; a hang fails the test instead of hanging it."""
    stdout, stderr = process.communicate(timeout=timeout)
    return Finished(process.returncode, stdout, stderr)


def stop(process: subprocess.Popen[str]) -> None:
    """End a migration process a test no longer waits for, and close its pipes."""
    if process.poll() is None:
        process.kill()
    process.communicate()


def upgrade(history: ProbeHistory, database_url: str, **variables: str) -> Finished:
    """Run `db upgrade` to the end."""
    return finish(start_upgrade(history, database_url, **variables))


async def scalar(database_url: str, statement: str) -> object:
    """Run one statement on `database_url` and return its single value."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.scalar(text(statement))
    finally:
        await engine.dispose()


async def revisions_of(database_url: str) -> Sequence[str]:
    """The revisions alembic_version holds."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT version_num FROM alembic_version"))
            return sorted(row.version_num for row in rows)
    finally:
        await engine.dispose()


async def until_the_migration_connects(
    database_url: str, migration: subprocess.Popen[str], *, waiting_for_a_lock: bool = False
) -> None:
    """Return once the migration process is connected (and, if asked, queued for a lock)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
        "AND (wait_event_type = 'Lock' OR NOT :waiting_for_a_lock)"
    )
    values = {"name": MIGRATION_APPLICATION_NAME, "waiting_for_a_lock": waiting_for_a_lock}
    # Autocommit: within one transaction pg_stat_activity stays as it was first read.
    engine = create_async_engine(database_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            while not await connection.scalar(query, values):
                if migration.poll() is not None:
                    pytest.fail(f"the migration ended first: {finish(migration).stderr}")
                await asyncio.sleep(0.01)
    finally:
        await engine.dispose()
