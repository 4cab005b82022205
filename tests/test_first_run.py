"""A new user's first run: the generated tests find a PostgreSQL even where none is running."""

import asyncio
import importlib.util
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import asyncpg
import pytest

from tests.baking import bake_into, environment_without_virtualenv, install_on_pinned_python, run

pytestmark = pytest.mark.slow

# Nothing listens on the discard port: the configured server is unreachable.
UNREACHABLE = "postgresql+asyncpg://postgres@127.0.0.1:9/postgres"
CLUSTER_PREFIX = "throwaway-postgres-"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default project, baked and installed once for this module."""
    project = bake_into(tmp_path_factory.mktemp("first-run"))
    install_on_pinned_python(project)
    return project


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A TMPDIR of the test's own that the cluster's unprivileged user can enter."""
    directory = Path(tempfile.mkdtemp(prefix="first-run-tmp-"))
    directory.chmod(0o755)
    yield directory
    subprocess.run(["rm", "-rf", str(directory)], check=False)


def pytest_command(*arguments: str) -> list[str]:
    """The generated project's pytest, quiet and without a cache folder."""
    return ["uv", "run", "--no-sync", "pytest", "-q", "-p", "no:cacheprovider", *arguments]


def clusters_in(scratch: Path) -> list[str]:
    """The throwaway cluster folders left in `scratch`."""
    return [path.name for path in scratch.iterdir() if path.name.startswith(CLUSTER_PREFIX)]


def servers_under(scratch: Path) -> dict[int, int]:
    """The processes whose command line names a folder in `scratch`, with their user ids."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            status = (entry / "status").read_text()
        except OSError:
            continue  # gone meanwhile
        if str(scratch) in command and "postgres" in command:
            uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
            found[int(entry.name)] = int(uid_line.split()[1])
    return found


def test_the_tests_start_their_own_cluster_when_no_server_answers(
    project: Path, scratch: Path
) -> None:
    env = environment_without_virtualenv() | {
        "TEST_DATABASE_URL": UNREACHABLE,
        "TMPDIR": str(scratch),
    }
    env.pop("TEST_POSTGRES_BIN", None)
    result = run(
        pytest_command("tests/test_health.py", "tests/items/test_router.py"), cwd=project, env=env
    )
    summary = result.stdout.strip().splitlines()[-1]
    assert "passed" in summary and "failed" not in summary and "skipped" not in summary, summary
    assert f"PostgreSQL is not reachable at {UNREACHABLE} (" in result.stdout
    assert "using a throwaway cluster on 127.0.0.1:" in result.stdout
    assert clusters_in(scratch) == []
    assert servers_under(scratch) == {}


def test_an_interrupted_run_stops_and_deletes_its_cluster(project: Path, scratch: Path) -> None:
    started = scratch / "started"
    waiting = project / "tests" / "test_waiting_for_interrupt.py"
    waiting.write_text(
        "import time\nfrom pathlib import Path\n\n\n"
        "def test_wait(database_url: str) -> None:\n"
        f"    Path({str(started)!r}).write_text(database_url)\n"
        "    time.sleep(120)\n"
    )
    env = environment_without_virtualenv() | {
        "TEST_DATABASE_URL": UNREACHABLE,
        "TMPDIR": str(scratch),
    }
    env.pop("TEST_POSTGRES_BIN", None)
    process = subprocess.Popen(
        pytest_command(str(waiting.relative_to(project))),
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )
    try:
        deadline = time.monotonic() + 120
        while not started.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert started.exists(), "the waiting test never started"
        servers = servers_under(scratch)
        assert servers, "no throwaway server is running"
        if os.geteuid() == 0:
            assert 0 not in servers.values(), "the server runs as root"
        assert len(clusters_in(scratch)) == 1
        # Ctrl-C signals the whole foreground group: uv and pytest.
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        waiting.unlink()
        if process.poll() is None:
            process.kill()
            process.wait()
    assert b"KeyboardInterrupt" in output
    assert clusters_in(scratch) == []
    assert servers_under(scratch) == {}


def load_cluster_module(project: Path) -> ModuleType:
    """Import the generated tests/postgres_cluster.py on its own."""
    spec = importlib.util.spec_from_file_location(
        "generated_postgres_cluster", project / "tests" / "postgres_cluster.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_a_cluster_is_gone_even_when_its_block_raises(
    project: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster_module = load_cluster_module(project)
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.delenv("TEST_POSTGRES_BIN", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again

    async def server_port(url: str) -> str:
        connection = await asyncpg.connect(url.replace("+asyncpg", ""))
        try:
            return str(await connection.fetchval("SHOW port"))
        finally:
            await connection.close()

    with pytest.raises(KeyboardInterrupt), cluster_module.throwaway_cluster() as cluster:
        assert asyncio.run(server_port(cluster.url)) == str(cluster.port)
        assert cluster.port != 5432
        folder = cluster.folder
        raise KeyboardInterrupt
    assert not folder.exists()
    assert servers_under(scratch) == {}


@pytest.mark.parametrize("programs", ["", "/nonexistent/postgres/bin"])
def test_an_unusable_program_directory_is_named(
    project: Path, monkeypatch: pytest.MonkeyPatch, programs: str
) -> None:
    cluster_module = load_cluster_module(project)
    monkeypatch.setenv("TEST_POSTGRES_BIN", programs)
    with pytest.raises(cluster_module.ClusterError, match=f"TEST_POSTGRES_BIN='{programs}'"):
        cluster_module.find_programs()


def test_the_next_steps_are_the_readme_commands(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    project = bake_into(tmp_path / "with space", project_name="Stock Keeper")
    message = capfd.readouterr().err
    commands = [line[2:] for line in message.splitlines() if re.match(r"  \S", line)]
    assert commands[:3] == [
        f"cd '{project}'",
        "uv run stock-keeper serve",
        "uv run pytest",
    ]
    readme = (project / "README.md").read_text()
    quick_start = readme.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    shown = re.findall(r"```sh\n(.*?)\n```", quick_start, flags=re.DOTALL)
    assert shown[:2] == commands[1:3]
