"""The `db` commands against real PostgreSQL: each does its job, or fails in one line."""

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from fastapi import FastAPI
from sqlalchemy import Column, Integer, Table, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from {{ cookiecutter.package_name }} import cli
from {{ cookiecutter.package_name }}.commands import COMMAND
from {{ cookiecutter.package_name }}.infrastructure.database import Database
from {{ cookiecutter.package_name }}.infrastructure.orm import Base
from tests.conftest import PROJECT_ROOT, admin_url, run_admin_statement

PASSWORD = "Zr4-db-not-a-real-pw"


def head() -> str:
    """The revision the project's migrations end at."""
    (revision,) = ScriptDirectory.from_config(Config(PROJECT_ROOT / "alembic.ini")).get_heads()
    return revision


def shown(url: str) -> str:
    """`url` as messages show it: with the password masked."""
    return make_url(url).render_as_string(hide_password=True)


def db(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, list[str], list[str]]:
    """Run `db ARGUMENTS` in this process; return its exit code, stdout and stderr lines."""
    code = cli.main(["db", *arguments])
    output = capsys.readouterr()
    assert "Traceback" not in output.err
    return code, output.out.splitlines(), output.err.splitlines()


async def query(url: str, statement: str) -> list[str]:
    """The first column of every row `statement` gives on the database at `url`."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return [str(value) for value in (await connection.scalars(text(statement))).all()]
    finally:
        await engine.dispose()


def tables(url: str) -> set[str]:
    """The tables of the database at `url`."""
    statement = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
    return set(asyncio.run(query(url, statement)))


def revisions(url: str) -> list[str]:
    """The revisions Alembic recorded in the database at `url`."""
    return asyncio.run(query(url, "SELECT version_num FROM alembic_version"))


@pytest.fixture
def empty_database(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A database of its own with no tables, named by DATABASE_URL; dropped afterwards."""
    name = f"test_db_command_{uuid.uuid4().hex[:12]}"
    asyncio.run(run_admin_statement(f'CREATE DATABASE "{name}"'))
    url = admin_url().set(database=name).render_as_string(hide_password=False)
    monkeypatch.setenv("DATABASE_URL", url)
    try:
        yield url
    finally:
        asyncio.run(run_admin_statement(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def at_head(monkeypatch: pytest.MonkeyPatch, database_url: str) -> str:
    """The run's database, which conftest migrated to head, named by DATABASE_URL."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    return database_url


@pytest.fixture
def unreachable(monkeypatch: pytest.MonkeyPatch, unused_tcp_port: int) -> str:
    """DATABASE_URL pointing at a closed port; returns the URL as messages show it."""
    url = f"postgresql+asyncpg://svc:{PASSWORD}@127.0.0.1:{unused_tcp_port}/app"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("DATABASE_CONNECT_TIMEOUT", "2")
    return url.replace(PASSWORD, "***")


def test_help_lists_the_commands_and_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["db", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "{upgrade,downgrade,check,status,wait}" in text
    assert "Exit codes: 0 done; 1 a database is unreachable" in text


def test_upgrade_and_downgrade_round_trip(
    capsys: pytest.CaptureFixture[str], empty_database: str
) -> None:
    # However many migrations the project has: whole way down and up, and one step.
    models = {table.name for table in Base.metadata.sorted_tables}
    code, out, err = db(capsys, "upgrade")
    assert (code, err) == (0, [])
    assert out == [f"{shown(empty_database)} went from base to {head()}"]
    assert models <= tables(empty_database)
    assert revisions(empty_database) == [head()]

    code, out, err = db(capsys, "upgrade")
    assert (code, err) == (0, [])
    assert out == [f"{shown(empty_database)} stays at {head()}"]

    code, out, err = db(capsys, "downgrade", "-1")
    assert (code, err) == (0, [])
    assert len(out) == 1
    assert out[0].startswith(f"{shown(empty_database)} went from {head()} to ")
    assert revisions(empty_database) != [head()]

    code, out, err = db(capsys, "upgrade")
    assert (code, err) == (0, [])
    assert len(out) == 1
    assert out[0].endswith(f" to {head()}")

    code, out, err = db(capsys, "downgrade", "base")
    assert (code, err) == (0, [])
    assert out == [f"{shown(empty_database)} went from {head()} to base"]
    assert tables(empty_database) == {"alembic_version"}
    assert revisions(empty_database) == []

    code, _, err = db(capsys, "upgrade", head())
    assert (code, err) == (0, [])
    assert revisions(empty_database) == [head()]


def test_downgrade_wants_an_explicit_target(
    capsys: pytest.CaptureFixture[str], at_head: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["db", "downgrade"])
    assert exit_.value.code == 2
    assert "the following arguments are required: revision" in capsys.readouterr().err
    assert revisions(at_head) == [head()]


def test_an_unknown_revision_exits_1_in_one_line(
    capsys: pytest.CaptureFixture[str], at_head: str
) -> None:
    code, out, err = db(capsys, "upgrade", "0000nope")
    assert (code, out) == (1, [])
    assert err == ["error: Can't locate revision identified by '0000nope'"]
    assert revisions(at_head) == [head()]


def test_check_passes_at_head_with_matching_models(
    capsys: pytest.CaptureFixture[str], at_head: str
) -> None:
    code, out, err = db(capsys, "check")
    assert (code, err) == (0, [])
    assert out == [f"{shown(at_head)} is at head ({head()}), as the models are"]


def test_check_fails_in_one_line_below_head(
    capsys: pytest.CaptureFixture[str], empty_database: str
) -> None:
    code, out, err = db(capsys, "check")
    assert (code, out) == (1, [])
    assert len(err) == 1
    assert f"is at base, not at head {head()}; run `uv run {COMMAND} db upgrade`" in err[0]


def test_check_fails_in_one_line_when_the_models_changed(
    capsys: pytest.CaptureFixture[str], at_head: str
) -> None:
    # A model added without its migration, as a forgetful commit would.
    table = Table("forgotten", Base.metadata, Column("id", Integer, primary_key=True))
    try:
        code, out, err = db(capsys, "check")
    finally:
        Base.metadata.remove(table)
    assert (code, out) == (1, [])
    assert err == [
        "error: the models differ from the migrations (add_table forgotten); write a "
        'migration with `uv run alembic revision --autogenerate -m "<what changed>"`'
    ]


async def test_status_reports_the_server_budget_revision_and_the_service_connections(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    app: FastAPI,
    database_url: str,
    application_name: str,
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATABASE_APPLICATION_NAME", application_name)
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    server_version, max_connections = await query(
        database_url,
        "SELECT setting FROM pg_settings WHERE name IN ('server_version', 'max_connections') "
        "ORDER BY name DESC",
    )
    database: Database = app.state.database
    transactional = database.engine.execution_options(isolation_level="READ COMMITTED")
    # The running app holds two connections: one in a transaction, one idle.
    async with transactional.connect() as busy, database.engine.connect() as idle:
        await busy.execute(text("SELECT 1"))
        await idle.execute(text("SELECT 1"))
        capsys.readouterr()  # the app's own start-up lines
        # main() runs its own event loop, so it runs in a thread of its own.
        code = await asyncio.to_thread(cli.main, ["db", "status"])
    output = capsys.readouterr()
    assert (code, output.err) == (0, "")
    fields = dict(line.split(maxsplit=1) for line in output.out.splitlines())
    assert list(fields) == [
        "database",
        "server",
        "profile",
        "timeouts",
        "budget",
        "connections",
        "revision",
    ]
    assert fields["database"] == shown(database_url)
    assert fields["server"] == f"PostgreSQL {server_version}"
    assert fields["profile"].startswith("dev: pool_size 5, max_overflow 10, pool_timeout 30 s")
    assert fields["budget"].startswith("3 worker(s) x (5 + 10) = 45 of ")
    assert fields["budget"].endswith(": fits")
    assert fields["connections"].startswith(
        f"2 named {application_name!r}: 1 idle, 1 idle in transaction; "
    )
    assert f"max_connections {max_connections} " in fields["connections"]
    assert fields["revision"] == f"{head()} (head)"


def test_status_says_when_the_budget_does_not_fit(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, at_head: str
) -> None:
    monkeypatch.setenv("DATABASE_POOL_SIZE", "10000")
    code, out, _ = db(capsys, "status")
    assert code == 0
    (budget,) = [line for line in out if line.startswith("budget")]
    assert "1 worker(s) x (10000 + 10) = 10010 of " in budget
    assert budget.endswith(": EXCEEDS the server's limit")


def test_status_names_the_migration_to_run_below_head(
    capsys: pytest.CaptureFixture[str], empty_database: str
) -> None:
    code, out, _ = db(capsys, "status")
    assert code == 0
    assert out[-1].split(maxsplit=1) == [
        "revision",
        f"base, head is {head()}: run `uv run {COMMAND} db upgrade`",
    ]


def test_wait_succeeds_when_the_database_answers(
    capsys: pytest.CaptureFixture[str], at_head: str
) -> None:
    code, out, err = db(capsys, "wait", "--retries", "0")
    assert (code, out) == (0, [])
    assert len(err) == 1, err
    assert f"Connected to {shown(at_head)}" in err[0]


def test_wait_gives_up_after_its_attempts_in_one_line(
    capsys: pytest.CaptureFixture[str], unreachable: str
) -> None:
    code, out, err = db(capsys, "wait", "--retries", "2", "--retry-delay", "0.05")
    assert (code, out) == (1, [])
    assert len(err) == 3, err
    for attempt, line in enumerate(err[:2], start=1):
        assert line.startswith("WARNING:")
        assert f"Attempt {attempt} of 3: cannot use the database at {unreachable}: " in line
    assert err[2].startswith(f"error: cannot use the database at {unreachable}: ")
    assert all(PASSWORD not in line for line in err)


@pytest.mark.parametrize("arguments", [["upgrade"], ["downgrade", "-1"], ["check"], ["status"]])
def test_an_unreachable_database_exits_1_in_one_line(
    capsys: pytest.CaptureFixture[str], unreachable: str, arguments: list[str]
) -> None:
    code, out, err = db(capsys, *arguments)
    assert (code, out) == (1, [])
    assert len(err) == 1, err
    assert err[0].startswith(f"error: cannot use the database at {unreachable}: ")
    assert PASSWORD not in err[0]


@pytest.mark.parametrize(
    ("arguments", "variables", "message"),
    [
        (["upgrade"], {}, "error: DATABASE_URL is not set; the db commands work on PostgreSQL"),
        (["status"], {"DATABASE_POOL_SIZE": "0"}, "error: DATABASE_POOL_SIZE='0': "),
        (["wait", "--retries", "x"], {}, "error: DATABASE_CONNECT_RETRIES='x': "),
        (["check"], {"ALEMBIC_CONFIG": "missing.ini"}, "error: ALEMBIC_CONFIG='missing.ini': "),
        (
            ["upgrade"],
            {"MIGRATION_LOCK_TIMEOUT_MS": "soon"},
            "error: MIGRATION_LOCK_TIMEOUT_MS='soon': ",
        ),
    ],
)
def test_a_command_that_cannot_run_as_configured_exits_2_in_one_line(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    arguments: list[str],
    variables: dict[str, str],
    message: str,
) -> None:
    if arguments != ["upgrade"]:
        monkeypatch.setenv("DATABASE_URL", database_url)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    code, out, err = db(capsys, *arguments)
    assert (code, out) == (2, [])
    assert len(err) == 1, err
    assert err[0].startswith(message)


def test_alembic_ini_is_found_from_any_working_directory(
    capsys: pytest.CaptureFixture[str], at_head: str, tmp_path: Path
) -> None:
    # conftest runs every test in an empty temporary directory.
    assert Path.cwd() == tmp_path
    assert not (tmp_path / "alembic.ini").exists()
    code, _, err = db(capsys, "check")
    assert (code, err) == (0, [])


def test_alembic_config_is_the_file_it_names(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    at_head: str,
    tmp_path: Path,
) -> None:
    # A copy whose %(here)s/migrations does not exist, so using it cannot go unnoticed.
    elsewhere = tmp_path / "elsewhere.ini"
    elsewhere.write_text((PROJECT_ROOT / "alembic.ini").read_text())
    monkeypatch.setenv("ALEMBIC_CONFIG", str(elsewhere))
    code, out, err = db(capsys, "check")
    assert (code, out) == (2, [])
    assert len(err) == 1, err
    assert err[0].startswith(f"error: {elsewhere}: ")
    assert str(tmp_path / "migrations") in err[0]


def test_status_shows_each_extra_database(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    at_head: str,
    replica_database_url: str,
    application_name: str,
) -> None:
    monkeypatch.setenv("DATABASES__REPLICA__URL", replica_database_url)
    monkeypatch.setenv("DATABASE_APPLICATION_NAME", application_name)
    (server_version,) = asyncio.run(query(replica_database_url, "SHOW server_version"))
    code, out, err = db(capsys, "status")
    assert (code, err) == (0, [])
    fields = dict(line.split(maxsplit=1) for line in out)
    assert list(fields)[-2:] == ["revision", "DATABASES__REPLICA"]
    assert fields["DATABASES__REPLICA"] == (
        f"{shown(replica_database_url)}: PostgreSQL {server_version}; "
        f"pool_size 5, max_overflow 10; 0 named {application_name!r}"
    )


def test_status_and_wait_name_the_extra_database_that_does_not_answer(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    at_head: str,
    unused_tcp_port: int,
) -> None:
    url = f"postgresql+asyncpg://svc:{PASSWORD}@127.0.0.1:{unused_tcp_port}/replica"
    monkeypatch.setenv("DATABASES__REPLICA__URL", url)
    monkeypatch.setenv("DATABASE_CONNECT_TIMEOUT", "2")
    masked = url.replace(PASSWORD, "***")

    code, out, err = db(capsys, "status")
    assert (code, err) == (1, [])
    fields = dict(line.split(maxsplit=1) for line in out)
    # The primary's figures are all there, then the replica's failure in one line.
    assert fields["revision"] == f"{head()} (head)"
    assert fields["DATABASES__REPLICA"].startswith(
        f"unavailable: cannot use the database at {masked}: "
    )

    code, out, err = db(capsys, "wait", "--retries", "0")
    assert (code, out) == (1, [])
    assert err[-1].startswith(
        f"error: DATABASES__REPLICA__URL: cannot use the database at {masked}: "
    )
    assert all(PASSWORD not in line for line in [*out, *err])
