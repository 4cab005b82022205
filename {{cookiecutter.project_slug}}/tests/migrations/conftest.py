"""Fixtures of the migration tests: a probe history and an empty database of their own."""

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import admin_url, run_admin_statement
from tests.migrations.probe import ProbeHistory, probe_history


@pytest.fixture
def probe(tmp_path: Path) -> ProbeHistory:
    """An empty probe history of this test's own."""
    return probe_history(tmp_path / "probe")


@pytest.fixture
def empty_database() -> Iterator[str]:
    """A database with nothing in it, dropped at the end."""
    name = f"test_migrations_{uuid.uuid4().hex[:12]}"
    asyncio.run(run_admin_statement(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url().set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(run_admin_statement(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
