"""A throwaway PostgreSQL cluster for test runs that find no server to use.

When nothing answers at TEST_DATABASE_URL but PostgreSQL's server programs are
installed, `throwaway_cluster` makes a private cluster in a temporary folder,
serves it on a free port of 127.0.0.1, and stops and deletes it afterwards.
Set TEST_POSTGRES_BIN to the directory of initdb and pg_ctl if they are not
found, or to an empty value to stop the run instead.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

# Names the directory holding initdb and pg_ctl; set but empty turns the cluster off.
PROGRAMS_VARIABLE: Final = "TEST_POSTGRES_BIN"
PROGRAMS: Final = ("initdb", "pg_ctl", "postgres")
# Where packages put the server programs without adding them to PATH.
KNOWN_LOCATIONS: Final = (
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/usr/local/pgsql/bin",
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
    "/Applications/Postgres.app/Contents/Versions/*/bin",
)
# PostgreSQL refuses to run as root; as root the cluster runs as the first of these.
UNPRIVILEGED_USERS: Final = ("postgres", "nobody")
TIMEOUT_SECONDS: Final = 60
DIRECTORY_PREFIX: Final = "throwaway-postgres-"
# Nothing in it outlives the run, so it skips the flushes that protect data from crashes.
SETTINGS: Final = """
listen_addresses = '127.0.0.1'
unix_socket_directories = '{sockets}'
max_connections = 100
fsync = off
synchronous_commit = off
full_page_writes = off
"""


class ClusterError(Exception):
    """No throwaway cluster could be started; the message says why in one line."""


@dataclass(frozen=True)
class Account:
    """The operating-system user the server runs as, when it cannot be the current one."""

    name: str
    uid: int
    gid: int


def _programs_in(directory: Path) -> bool:
    return all(os.access(directory / program, os.X_OK) for program in PROGRAMS)


def _version(path: Path) -> tuple[int, ...]:
    return tuple(int(number) for number in re.findall(r"\d+", str(path)))


def _pg_config_bindir() -> list[Path]:
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return []
    result = subprocess.run(
        [pg_config, "--bindir"], capture_output=True, text=True, check=False, timeout=10
    )
    return [Path(result.stdout.strip())] if result.returncode == 0 else []


def find_programs() -> Path:
    """Return the directory holding initdb, pg_ctl and postgres, or say where none was."""
    override = os.environ.get(PROGRAMS_VARIABLE)
    if override is not None:
        if override and _programs_in(Path(override)):
            return Path(override)
        raise ClusterError(
            f"no PostgreSQL server programs (initdb, pg_ctl, postgres) in "
            f"{PROGRAMS_VARIABLE}={override!r}"
        )
    candidates: list[Path] = []
    if (initdb := shutil.which("initdb")) is not None:
        # Distributions link initdb onto PATH; its real directory has the rest.
        candidates.append(Path(initdb).resolve().parent)
    candidates += _pg_config_bindir()
    for pattern in KNOWN_LOCATIONS:
        found = Path("/").glob(pattern.removeprefix("/"))
        candidates += sorted(found, key=_version, reverse=True)
    for directory in candidates:
        if _programs_in(directory):
            return directory
    raise ClusterError(
        "no PostgreSQL server programs (initdb, pg_ctl, postgres) on PATH, from pg_config "
        f"or in {KNOWN_LOCATIONS[0]}; install them or set {PROGRAMS_VARIABLE}"
    )


def unprivileged_account() -> Account | None:
    """Return the account to run the server as when this process is root, else None."""
    if sys.platform == "win32" or os.geteuid() != 0:
        return None
    import pwd  # POSIX only, like running as root

    for name in UNPRIVILEGED_USERS:
        with suppress(KeyError):
            entry = pwd.getpwnam(name)
            return Account(name=name, uid=entry.pw_uid, gid=entry.pw_gid)
    raise ClusterError(
        "running as root, and PostgreSQL refuses root, but there is no "
        f"{' or '.join(UNPRIVILEGED_USERS)} user to run it as"
    )


def free_port() -> int:
    """Return a TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Cluster:
    """A data directory in a temporary folder, and the server programs to run it."""

    def __init__(self, programs: Path, account: Account | None) -> None:
        self.programs = programs
        self.account = account
        self.folder = Path(tempfile.mkdtemp(prefix=DIRECTORY_PREFIX))
        self.data = self.folder / "data"
        self.port = 0

    def run(self, program: str, *arguments: str) -> None:
        """Run one server program as the cluster's account; raise ClusterError if it fails."""
        account = self.account
        try:
            subprocess.run(
                [str(self.programs / program), *arguments],
                cwd=self.folder,
                capture_output=True,
                text=True,
                check=True,
                timeout=TIMEOUT_SECONDS,
                user=None if account is None else account.uid,
                group=None if account is None else account.gid,
                extra_groups=None if account is None else [],
            )
        except subprocess.CalledProcessError as error:
            lines = (error.stderr or error.stdout or "").strip().splitlines()
            raise ClusterError(f"{program} failed: {lines[-1] if lines else error}") from None
        except (OSError, subprocess.TimeoutExpired) as error:
            raise ClusterError(f"{program} failed: {error}") from None

    def create(self) -> None:
        """Initialise the data directory, with a `postgres` superuser that needs no password."""
        if self.account is not None:
            try:
                os.chown(self.folder, self.account.uid, self.account.gid)
            except OSError as error:
                reason = f"cannot give {self.folder} to {self.account.name}: {error}"
                raise ClusterError(reason) from None
        self.run(
            "initdb",
            f"--pgdata={self.data}",
            "--username=postgres",
            # Like the test server the tests expect: any password gets in.
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        sockets = str(self.folder).replace("'", "''")
        with (self.data / "postgresql.conf").open("a") as config:
            config.write(SETTINGS.format(sockets=sockets))

    def start(self) -> None:
        """Start the server on a free port and wait until it accepts connections."""
        # Another process may take the port between the probe and the start.
        for attempt in range(3):
            self.port = free_port()
            try:
                self.run(
                    "pg_ctl",
                    "start",
                    f"--pgdata={self.data}",
                    f"--log={self.folder / 'server.log'}",
                    f"--options=-p {self.port}",
                    "--wait",
                    f"--timeout={TIMEOUT_SECONDS}",
                    "--silent",
                )
                return
            except ClusterError:
                if attempt == 2:
                    # pg_ctl only says "Examine the log output"; the log says why.
                    log = self.folder / "server.log"
                    lines = log.read_text().strip().splitlines() if log.exists() else []
                    reason = lines[-1] if lines else "no log written"
                    raise ClusterError(f"pg_ctl could not start the server: {reason}") from None

    def stop(self) -> None:
        """Stop the server if it runs, and delete the folder with everything in it."""
        if (self.data / "postmaster.pid").exists():
            try:
                self.run("pg_ctl", "stop", f"--pgdata={self.data}", "--mode=immediate", "--silent")
            except ClusterError:
                self._kill_leftover()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _kill_leftover(self) -> None:
        # pg_ctl could not stop the server: its pid file names the process.
        with suppress(OSError, ValueError, IndexError):
            pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGKILL)

    @property
    def url(self) -> str:
        """The URL of the cluster's `postgres` database, for its superuser."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """Start a private cluster, yield it, and always stop and delete it afterwards."""
    cluster = Cluster(find_programs(), unprivileged_account())
    try:
        cluster.create()
        cluster.start()
        yield cluster
    finally:
        # Also on KeyboardInterrupt and failed start-ups: nothing may outlive the run.
        cluster.stop()


@contextmanager
def throwaway_cluster_instead(unreachable: str, config: pytest.Config) -> Iterator[None]:
    """Point TEST_DATABASE_URL at a throwaway cluster, or stop the run in one line."""
    with ExitStack() as stack:
        try:
            cluster = stack.enter_context(throwaway_cluster())
        except ClusterError as reason:
            pytest.exit(
                f"{unreachable}, and {reason}; start a server, or set "
                "TEST_DATABASE_URL=postgresql+asyncpg://user:password@host:5432/postgres",
                returncode=3,
            )
        environment = stack.enter_context(pytest.MonkeyPatch.context())
        environment.setenv("TEST_DATABASE_URL", cluster.url)
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capture = config.pluginmanager.get_plugin("capturemanager")
        if reporter is not None and capture is not None:
            # Said once, outside the captured output of the test being set up.
            with capture.global_and_fixture_disabled():
                reporter.write_line(
                    f"{unreachable}: using a throwaway cluster on 127.0.0.1:{cluster.port}, "
                    f"run by {cluster.programs}"
                )
        yield
