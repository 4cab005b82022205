"""The application's lifecycle: nothing at import, a pool while running, nothing left after."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import Table
from sqlalchemy.pool import QueuePool

from {{ cookiecutter.package_name }}.infrastructure.config import Settings, load_settings
from {{ cookiecutter.package_name }}.infrastructure.database import (
    Database,
    DatabaseUnavailableError,
)
from {{ cookiecutter.package_name }}.main import create_app
from tests.conftest import connection_count, in_process_client
from tests.probe import create_probe_app, probe_router

IMPORT_EVERYTHING = textwrap.dedent(
    """
    import gc, importlib, pkgutil
    import {{ cookiecutter.package_name }}
    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine
    from sqlalchemy.pool import Pool

    names = [m.name for m in pkgutil.walk_packages(
        {{ cookiecutter.package_name }}.__path__, "{{ cookiecutter.package_name }}."
    )]
    for name in names:
        importlib.import_module(name)
    built = (Engine, AsyncEngine, Pool)
    made = [type(o).__name__ for o in gc.get_objects() if isinstance(o, built)]
    print(len(names), made)
    """
)


def test_importing_every_module_builds_no_engine_or_pool(database_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERYTHING],
        capture_output=True,
        text=True,
        check=True,
        env={"DATABASE_URL": database_url, "DATABASE_PROFILE": "prod", "PATH": ""},
    )
    imported, made = result.stdout.split(" ", 1)
    assert int(imported) >= 10
    assert made.strip() == "[]"


async def test_importing_and_building_the_app_opens_no_connection(
    settings: Settings, application_name: str
) -> None:
    create_app(settings)
    assert await connection_count(application_name, expected=0) == 0


async def test_lifespan_owns_a_pool_and_leaves_no_connection(
    settings: Settings, application_name: str
) -> None:
    app = create_probe_app(settings)
    async with app.router.lifespan_context(app):
        database: Database = app.state.database
        assert isinstance(database.engine.pool, QueuePool)
        async with in_process_client(app) as client:
            assert (await client.get("/probes")).status_code == 200
        assert await connection_count(application_name, expected=1) == 1
    assert await connection_count(application_name, expected=0) == 0


async def test_lifespan_closes_the_pool_when_the_app_fails(
    settings: Settings, application_name: str
) -> None:
    app = create_app(settings)

    async def run_and_fail() -> None:
        async with app.router.lifespan_context(app):
            assert await connection_count(application_name, expected=1) == 1
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await run_and_fail()
    assert await connection_count(application_name, expected=0) == 0


async def test_startup_against_an_unreachable_server_fails_in_one_line(
    unused_tcp_port: int,
) -> None:
    settings = load_settings(
        _env_file=None,
        database_url=f"postgresql://svc:s3cret-pw@127.0.0.1:{unused_tcp_port}/app",
        database_connect_timeout=2,
    )
    app = create_app(settings)
    with pytest.raises(DatabaseUnavailableError) as failure:
        async with app.router.lifespan_context(app):
            pass  # pragma: no cover - start-up must fail
    message = str(failure.value)
    assert "\n" not in message
    assert f"127.0.0.1:{unused_tcp_port}/app" in message
    assert "s3cret-pw" not in message


async def test_dev_profile_without_url_runs_on_a_local_sqlite_file(
    tmp_path: Path, model_probes: Table
) -> None:
    app: FastAPI = create_app(load_settings(_env_file=None, database_echo=False))
    app.include_router(probe_router(model_probes))
    async with in_process_client(app, lifespan=True) as client:
        created = await client.post("/model-probes", json={"name": "Mug", "price": "4.20"})
        assert created.status_code == 201
        found = await client.get(f"/model-probes/{created.json()['id']}")
        assert found.json()["name"] == "Mug"
    assert (tmp_path / "{{ cookiecutter.project_slug }}-dev.sqlite3").is_file()
