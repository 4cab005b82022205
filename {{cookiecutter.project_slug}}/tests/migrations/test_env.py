"""Plain `alembic` commands fail in one line naming the database, as the `db` commands do."""

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import PROJECT_ROOT, admin_url, run_admin_statement

PASSWORD = "Zr4-alembic-not-a-real-pw"
VERSIONS = PROJECT_ROOT / "migrations" / "versions"
COMMANDS = [
    pytest.param(["upgrade", "head"], id="upgrade"),
    pytest.param(["revision", "--autogenerate", "-m", "never written"], id="autogenerate"),
    pytest.param(["check"], id="check"),
]


def alembic(tmp_path: Path, database_url: str, *arguments: str) -> tuple[int, list[str]]:
    """Run the alembic command line on `database_url`; return its exit code and output lines."""
    # Run from an empty folder, so that a developer's .env stays out of it.
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(PROJECT_ROOT / "alembic.ini"), *arguments],
        cwd=tmp_path,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = (result.stdout + result.stderr).splitlines()
    return result.returncode, [line for line in lines if line.strip()]


def shown(url: str) -> str:
    """`url` as messages show it: with the password masked."""
    return make_url(url).set(drivername="postgresql+asyncpg").render_as_string(hide_password=True)


@pytest.fixture
def unmigrated_database() -> Iterator[str]:
    """A database that refuses writes, so that the first migration fails, whatever it does."""
    name = f"test_alembic_clash_{uuid.uuid4().hex[:12]}"
    asyncio.run(run_admin_statement(f'CREATE DATABASE "{name}"'))
    url = admin_url().set(database=name).render_as_string(hide_password=False)
    try:
        asyncio.run(
            run_admin_statement(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        )
        yield url
    finally:
        asyncio.run(run_admin_statement(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.mark.parametrize("arguments", COMMANDS)
def test_a_missing_database_is_one_line(tmp_path: Path, arguments: list[str]) -> None:
    missing = f"test_alembic_missing_{uuid.uuid4().hex[:12]}"
    url = admin_url().set(database=missing).render_as_string(hide_password=False)
    before = sorted(VERSIONS.iterdir())
    code, lines = alembic(tmp_path, url, *arguments)
    assert code != 0
    assert len(lines) == 1, lines
    assert shown(url) in lines[0]
    assert f'database "{missing}" does not exist' in lines[0]
    assert sorted(VERSIONS.iterdir()) == before


@pytest.mark.parametrize("arguments", COMMANDS)
def test_an_unreachable_server_is_one_line_without_the_password(
    tmp_path: Path, arguments: list[str]
) -> None:
    # Nothing listens on the discard port.
    url = f"postgresql://orders:{PASSWORD}@127.0.0.1:9/orders"
    code, lines = alembic(tmp_path, url, *arguments)
    assert code != 0
    assert len(lines) == 1, lines
    assert f"cannot use the database at {shown(url)}: " in lines[0]
    assert PASSWORD not in lines[0]


def test_a_failing_migration_is_one_line_naming_the_cause(
    tmp_path: Path, unmigrated_database: str
) -> None:
    code, lines = alembic(tmp_path, unmigrated_database, "upgrade", "head")
    assert code != 0
    # Besides Alembic's progress lines (INFO), the failure is one line.
    (failure,) = [line for line in lines if not line.startswith("INFO ")]
    assert failure.endswith(
        f"migrating {shown(unmigrated_database)} failed: "
        "cannot execute CREATE TABLE in a read-only transaction"
    )
