"""Benchmark the generated service against two ceilings and the usual FastAPI patterns.

One command, from the template's root (PostgreSQL at BENCH_DATABASE_URL, default the local
server's postgres user):

    uv run python -m bench.run            # 10 s runs, 3 interleaved rounds (about 45 minutes)
    uv run python -m bench.run --quick    # 3 s runs, 1 round, to try it out
    uv run python -m bench.run --before main,HEAD~1   # A/B: also the service as baked there

It generates the default project into a temporary directory, migrates and seeds a throwaway
database, runs every variant in turn with the same load, prints a table of medians with the
ratios of server CPU per request to both ceilings (raw asyncpg on Starlette, and FastAPI on a
raw asyncpg pool), what use_opentelemetry adds when no collector receives its spans, a
per-layer CPU budget of the generated service from a py-spy profile, and issue 17's targets as
met or not, and writes everything to bench/results/. A benchmark, not a
test: nothing here passes or fails.
"""

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any, Self

import asyncpg
import httpx
from cookiecutter.main import cookiecutter

from bench import layers
from bench.loadgen import ITEM_COUNT, POST_BODY, LoadResult, run_load
from bench.pgcount import CountingProxy
from tests.baking import bake_into, environment_without_virtualenv

ROOT = Path(__file__).resolve().parents[1]
APPS = ROOT / "bench" / "apps"
ADMIN_DSN = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
POOL_TIMEOUT_UNDER_OVERLOAD = 1.0


@dataclass(frozen=True)
class Variant:
    """One way of serving the same two endpoints."""

    name: str
    label: str
    application_name: str
    command: Callable[[Path, int], list[str]]
    environment: Callable[[str], dict[str, str]]
    # Cookiecutter answers of the project it runs, beyond the defaults.
    answers: tuple[tuple[str, Any], ...] = ()


def uvicorn_app(module: str) -> Callable[[Path, int], list[str]]:
    def command(project: Path, port: int) -> list[str]:
        python = str(project / ".venv" / "bin" / "python")
        return [
            python,
            "-m",
            "uvicorn",
            "--app-dir",
            str(APPS),
            module,
            "--port",
            str(port),
            # What `uvicorn[standard]` picks on its own; the generated service
            # chooses asyncio's loop (see its cli.py), the comparison keeps uvloop.
            "--loop",
            "uvloop",
            "--http",
            "httptools",
        ]

    return command


def generated_command(project: Path, port: int) -> list[str]:
    return [str(project / ".venv" / "bin" / project.name), "serve", "--port", str(port)]


def recipe_command(script: str) -> Callable[[Path, int], list[str]]:
    # The project's own serve command, run by a script that swaps in a recipe's routes.
    def command(project: Path, port: int) -> list[str]:
        python = str(project / ".venv" / "bin" / "python")
        return [python, str(APPS / script), "--port", str(port)]

    return command


def service_environment(application_name: str) -> Callable[[str], dict[str, str]]:
    def environment(dsn: str) -> dict[str, str]:
        return {
            "DATABASE_URL": dsn,
            "DATABASE_PROFILE": "prod",
            # The local server has no password and no TLS; prod refuses that unless told.
            "DATABASE_ALLOW_INSECURE": "true",
            "DATABASE_APPLICATION_NAME": application_name,
            "WEB_CONCURRENCY": "1",
        }

    return environment


def unreachable_collector(
    environment: Callable[[str], dict[str, str]],
) -> Callable[[str], dict[str, str]]:
    """`environment`, plus an OTLP endpoint where nothing listens: spans made, export failing."""

    def with_endpoint(dsn: str) -> dict[str, str]:
        return environment(dsn) | {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}"}

    return with_endpoint


def before_variant(ref: str) -> Variant:
    """The generated service as the template at git `ref` bakes it, to compare with this one."""
    application_name = f"bench-at-{ref}"[:63]
    return Variant(
        f"generated@{ref}",
        f"generated service as of {ref}",
        application_name,
        generated_command,
        service_environment(application_name),
    )


def bake_at(ref: str, workdir: Path) -> Path:
    """Bake the default project from the template as committed at `ref`."""
    slot = workdir / f"at-{len(list(workdir.glob('at-*')))}"
    template = slot / "template"
    template.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref], capture_output=True, check=False
    )
    if archive.returncode:
        raise SystemExit(f"--before {ref}: {archive.stderr.decode().strip().splitlines()[-1]}")
    subprocess.run(["tar", "-x", "-C", str(template)], input=archive.stdout, check=True)
    config = slot / ".cookiecutterrc"
    config.write_text(f"cookiecutters_dir: {slot / 'cc'}\nreplay_dir: {slot / 'replay'}\n")
    output = cookiecutter(
        str(template), no_input=True, output_dir=str(slot / "out"), config_file=str(config)
    )
    return Path(output)


def orm_url(dsn: str) -> dict[str, str]:
    return {"BENCH_URL": dsn.replace("postgresql://", "postgresql+asyncpg://", 1)}


TRACED = (("use_opentelemetry", True),)
VARIANTS = [
    Variant(
        "generated",
        "generated service as shipped (prod profile)",
        "bench-generated",
        generated_command,
        service_environment("bench-generated"),
    ),
    Variant(
        "fast-path",
        "generated service, the two routes on Core and bare connections",
        "bench-fast-path",
        recipe_command("fast_path.py"),
        service_environment("bench-fast-path"),
    ),
    Variant(
        "driver",
        "generated service, the two routes on asyncpg's connection",
        "bench-driver",
        recipe_command("driver_path.py"),
        service_environment("bench-driver"),
    ),
    Variant(
        "otel-off",
        "generated with use_opentelemetry, no OTLP endpoint set",
        "bench-otel-off",
        generated_command,
        service_environment("bench-otel-off"),
        TRACED,
    ),
    Variant(
        "otel-no-collector",
        "generated with use_opentelemetry, OTLP endpoint where nothing listens",
        "bench-otel-no-coll",
        generated_command,
        unreachable_collector(service_environment("bench-otel-no-coll")),
        TRACED,
    ),
    Variant(
        "fastapi-asyncpg",
        "FastAPI + raw asyncpg pool",
        "bench-fastapi-asyncpg",
        uvicorn_app("fastapi_asyncpg:app"),
        lambda dsn: {"BENCH_DSN": dsn},
    ),
    Variant(
        "raw",
        "Starlette + raw asyncpg pool",
        "bench-raw",
        uvicorn_app("raw_asyncpg:app"),
        lambda dsn: {"BENCH_DSN": dsn},
    ),
    Variant(
        "naive",
        "FastAPI + ORM, engine at import, default pool",
        "bench-naive",
        uvicorn_app("naive_sqlalchemy:app"),
        orm_url,
    ),
    Variant(
        "textbook",
        "FastAPI + ORM, textbook lifespan (20+40, pre-ping)",
        "bench-textbook",
        uvicorn_app("textbook_lifespan:app"),
        orm_url,
    ),
]
CEILINGS = ("raw", "fastapi-asyncpg")
VARIANTS_LIST = ", ".join(v.name for v in VARIANTS)


@dataclass
class Measurement:
    variant: str
    method: str
    connections: int
    round: int
    load: LoadResult
    peak_connections: int
    connections_opened_per_second: float
    startup_seconds: float
    # The serving process is the one worker: every variant runs with one.
    rss_after_warmup_mib: float
    rss_mib: float
    peak_rss_mib: float
    cpu_us_per_request: float
    # In the kernel: socket calls on loopback do the receiving side's TCP work too.
    cpu_user_us_per_request: float
    cpu_system_us_per_request: float


@dataclass
class Report:
    started_at: str
    settings: dict[str, Any]
    measurements: list[Measurement] = field(default_factory=list)
    statements: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    overload: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    targets: list[dict[str, Any]] = field(default_factory=list)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(
    variant: Variant, project: Path, dsn: str, **extra: str
) -> Iterator[tuple[int, int, float]]:
    """Start a variant, wait for its first database-backed 200; yield port, pid, start-up time."""
    port = free_port()
    env = environment_without_virtualenv() | variant.environment(dsn) | extra
    started = time.perf_counter()
    process = subprocess.Popen(
        variant.command(project, port),
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        startup = wait_for_first_read(port, process, started)
        yield port, process.pid, startup
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_first_read(port: int, process: subprocess.Popen[bytes], started: float) -> float:
    deadline = started + 60
    with httpx.Client(timeout=2) as client:
        while time.perf_counter() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode} before answering")
            try:
                if client.get(f"http://127.0.0.1:{port}/items/1").status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(0.01)
    raise RuntimeError("server did not answer within 60 s")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time a process has used so far."""
    # Fields 14 and 15 of /proc/<pid>/stat, counted after the parenthesised name.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


def memory_mib(pid: int) -> tuple[float, float]:
    """Current and peak resident memory of a process, in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    values = {
        line.split(":")[0]: int(line.split()[1]) / 1024
        for line in status.splitlines()
        if line.startswith(("VmRSS", "VmHWM"))
    }
    return values["VmRSS"], values["VmHWM"]


class ConnectionSampler:
    """Watch a variant's PostgreSQL connections while the load runs."""

    def __init__(self, dsn: str, database: str, application_name: str) -> None:
        self.dsn, self.database, self.application_name = dsn, database, application_name
        self.peak = 0
        self.sessions_opened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._watch()))

    def __enter__(self) -> Self:
        self._ready = threading.Event()
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    async def _watch(self) -> None:
        connection = await asyncpg.connect(self.dsn)
        sessions = "SELECT sessions FROM pg_stat_database WHERE datname = $1"
        count = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
        try:
            await connection.execute("SELECT pg_stat_clear_snapshot()")
            before = await connection.fetchval(sessions, self.database)
            self._ready.set()
            while not self._stop.is_set():
                await connection.execute("SELECT pg_stat_clear_snapshot()")
                self.peak = max(self.peak, await connection.fetchval(count, self.application_name))
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.6)  # pg_stat_database is flushed every 500 ms at most
            await connection.execute("SELECT pg_stat_clear_snapshot()")
            # The sampler's own session counts once.
            self.sessions_opened = await connection.fetchval(sessions, self.database) - before - 1
        finally:
            await connection.close()


def measure(
    variant: Variant,
    project: Path,
    dsn: str,
    database: str,
    method: str,
    connections: int,
    seconds: float,
    round_number: int,
) -> Measurement:
    with server(variant, project, dsn) as (port, pid, startup):
        run_load(port, method, connections, min(2.0, seconds))  # warm-up: pools, caches
        # A server finishes the requests in flight when wrk hangs up; left to
        # overlap the next run they would add to its concurrency and CPU time.
        time.sleep(1.0)
        rss_warm, _ = memory_mib(pid)
        with ConnectionSampler(ADMIN_DSN, database, variant.application_name) as sampler:
            user_before, system_before = cpu_seconds(pid)
            load = run_load(port, method, connections, seconds)
            user_after, system_after = cpu_seconds(pid)
        per_request = 1e6 / max(load.requests, 1)
        rss, peak_rss = memory_mib(pid)
    return Measurement(
        variant=variant.name,
        method=method,
        connections=connections,
        round=round_number,
        load=load,
        peak_connections=sampler.peak,
        connections_opened_per_second=max(sampler.sessions_opened, 0) / seconds,
        startup_seconds=startup,
        rss_after_warmup_mib=rss_warm,
        rss_mib=rss,
        peak_rss_mib=peak_rss,
        cpu_us_per_request=(user_after - user_before + system_after - system_before) * per_request,
        cpu_user_us_per_request=(user_after - user_before) * per_request,
        cpu_system_us_per_request=(system_after - system_before) * per_request,
    )


def count_statements(variant: Variant, project: Path, dsn: str) -> dict[str, dict[str, float]]:
    """Send requests one at a time through a counting proxy: statements and round trips each."""
    host, port = "127.0.0.1", int(dsn.rsplit(":", 1)[1].split("/", 1)[0])
    loop = asyncio.new_event_loop()
    proxy = CountingProxy(host, port)
    loop.run_until_complete(proxy.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    proxied = dsn.replace(f":{port}/", f":{proxy.port}/")
    figures: dict[str, dict[str, float]] = {}
    try:
        with (
            server(variant, project, proxied) as (app_port, _, _),
            httpx.Client() as client,
        ):
            base = f"http://127.0.0.1:{app_port}"
            for method in ("GET", "POST"):

                def send(n: int, method: str = method) -> None:
                    if method == "GET":
                        client.get(f"{base}/items/{1 + n % ITEM_COUNT}").raise_for_status()
                    else:
                        client.post(
                            f"{base}/items",
                            content=POST_BODY,
                            headers={"content-type": "application/json"},
                        ).raise_for_status()

                for n in range(50):
                    send(n)
                time.sleep(0.2)
                proxy.reset()
                requests = 200
                for n in range(requests):
                    send(n)
                time.sleep(0.2)
                figures[method] = {
                    "statements": proxy.statements / requests,
                    "round_trips": proxy.round_trips / requests,
                }
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        # The server's connections may still be closing: finish that in the loop, then
        # close it, rather than leave pending tasks to complain at the interpreter's exit.
        loop.run_until_complete(close_proxy(proxy))
        loop.close()
    return figures


async def close_proxy(proxy: CountingProxy) -> None:
    await proxy.stop()
    pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def overload(project: Path, dsn: str, seconds: float) -> dict[str, Any]:
    """c=1,000 against the generated service on a 5+0 pool with a 1 s pool timeout."""
    generated = next(v for v in VARIANTS if v.name == "generated")
    extra = {
        "DATABASE_POOL_SIZE": "5",
        "DATABASE_MAX_OVERFLOW": "0",
        "DATABASE_POOL_TIMEOUT": str(POOL_TIMEOUT_UNDER_OVERLOAD),
    }
    with server(generated, project, dsn, **extra) as (port, _, _):
        load = run_load(port, "GET", 1000, seconds)
        with httpx.Client() as client:
            after = client.get(f"http://127.0.0.1:{port}/items/1").status_code
    return {
        "connections": 1000,
        "pool": "5+0",
        "pool_timeout_s": POOL_TIMEOUT_UNDER_OVERLOAD,
        "load": asdict(load),
        "max_wait_within_bound": load.max_ms <= (POOL_TIMEOUT_UNDER_OVERLOAD + 1) * 1000
        and load.socket_errors == 0,
        "status_right_after": after,
    }


async def prepare_database(dsn: str, name: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def seed(dsn: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            "INSERT INTO items (name, description, price) "
            "SELECT 'item ' || n, 'seeded for the benchmark', (n % 1000) / 10.0 "
            "FROM generate_series(1, $1) AS n",
            ITEM_COUNT,
        )
        await connection.execute("VACUUM ANALYZE items")
    finally:
        await connection.close()


async def drop_database(dsn: str, name: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarise(report: Report) -> list[dict[str, Any]]:
    rows = []
    # Each --before build right after the service it is compared with.
    before = [before_variant(ref).name for ref in report.settings.get("before") or []]
    order = [v.name for v in VARIANTS]
    order[1:1] = before
    keys = sorted(
        {(m.method, m.connections, m.variant) for m in report.measurements},
        key=lambda k: (k[0] != "GET", k[1], order.index(k[2])),
    )

    def runs_of(method: str, connections: int, variant: str) -> list[Measurement]:
        return [
            m
            for m in report.measurements
            if (m.method, m.connections, m.variant) == (method, connections, variant)
        ]

    for method, connections, variant in keys:
        runs = runs_of(method, connections, variant)
        rps = median([m.load.requests_per_second for m in runs])
        cpu = median([m.cpu_us_per_request for m in runs])
        row: dict[str, Any] = {
            "method": method,
            "connections": connections,
            "variant": variant,
            "requests_per_second": rps,
            # The server's CPU time per request hardly depends on what else
            # the machine runs, unlike requests/s: the steadier comparison.
            "cpu_us_per_request": cpu,
            "cpu_user_us_per_request": median([m.cpu_user_us_per_request for m in runs]),
            "cpu_system_us_per_request": median([m.cpu_system_us_per_request for m in runs]),
        }
        for ceiling in CEILINGS:
            ceiling_runs = runs_of(method, connections, ceiling)
            ceiling_rps = median([m.load.requests_per_second for m in ceiling_runs])
            ceiling_cpu = median([m.cpu_us_per_request for m in ceiling_runs])
            key = ceiling.replace("-", "_")
            row[f"ratio_to_{key}"] = rps / ceiling_rps if ceiling_runs else float("nan")
            row[f"cpu_ratio_to_{key}"] = ceiling_cpu / cpu if ceiling_runs else float("nan")
        row |= {
            "p50_ms": median([m.load.p50_ms for m in runs]),
            "p99_ms": median([m.load.p99_ms for m in runs]),
            "max_ms": max(m.load.max_ms for m in runs),
            "non_2xx": sum(m.load.non_2xx for m in runs),
            "socket_errors": sum(m.load.socket_errors for m in runs),
            "peak_connections": max(m.peak_connections for m in runs),
            "connections_opened_per_second": median(
                [m.connections_opened_per_second for m in runs]
            ),
            "statements_per_request": report.statements.get(variant, {})
            .get(method, {})
            .get("statements", float("nan")),
            "startup_seconds": median([m.startup_seconds for m in runs]),
            "rss_after_warmup_mib": median([m.rss_after_warmup_mib for m in runs]),
            "rss_after_run_mib": median([m.rss_mib for m in runs]),
            "peak_rss_mib": max(m.peak_rss_mib for m in runs),
        }
        rows.append(row)
    return rows


def profiled_connections(connections: list[int]) -> int:
    """The concurrency the issue's figures and targets use, or the middle one measured."""
    return 64 if 64 in connections else sorted(connections)[len(connections) // 2]


def profile_generated(
    project: Path, dsn: str, method: str, connections: int, seconds: float, workdir: Path
) -> dict[str, Any]:
    """Sample the generated service with py-spy under load; count its CPU samples by layer."""
    generated = next(v for v in VARIANTS if v.name == "generated")
    py_spy = project / ".venv" / "bin" / "py-spy"
    if not py_spy.exists():
        return {"error": "py-spy is not installed in the generated project"}
    try:
        with server(generated, project, dsn) as (port, pid, _):
            run_load(port, method, connections, min(2.0, seconds))
            time.sleep(1.0)
            # The load outlasts the sampling on both ends, so every sample is under load.
            load = threading.Thread(target=run_load, args=(port, method, connections, seconds + 2))
            load.start()
            time.sleep(0.5)
            try:
                raw = layers.record(py_spy, pid, seconds, workdir / f"py-spy-{method}.txt")
            finally:
                load.join()
    except (OSError, subprocess.SubprocessError, RuntimeError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        return {"error": f"py-spy failed: {detail.strip().splitlines()[-1] if detail else error}"}
    samples = layers.attribute(raw, project.name.replace("-", "_"))
    total = sum(samples.values())
    return {
        "connections": connections,
        "samples": total,
        "shares": {layer: samples[layer] / total if total else 0.0 for layer in layers.LAYERS},
    }


def layer_budget(rows: list[dict[str, Any]], report: Report) -> dict[str, dict[str, Any]]:
    """Each layer's share of the samples, and its CPU per request.

    A sampling profiler sees wall time of a thread that is not idle, and on a busy
    machine a thread that wakes a peer in a system call is often preempted there.
    So the kernel's line is the system time measured from /proc, and the user-space
    layers divide the measured user time in proportion to their samples.
    """
    budget: dict[str, dict[str, Any]] = {}
    for method, profile in report.profile.items():
        if "shares" not in profile:
            continue
        row = next(
            (
                r
                for r in rows
                if (r["variant"], r["method"], r["connections"])
                == ("generated", method, profile["connections"])
            ),
            {},
        )
        user = row.get("cpu_user_us_per_request", float("nan"))
        system = row.get("cpu_system_us_per_request", float("nan"))
        shares: dict[str, float] = profile["shares"]
        in_user_space = 1 - shares[layers.KERNEL]
        budget[method] = {}
        for layer, share in shares.items():
            if layer == layers.KERNEL:
                cpu = system
            else:
                cpu = share / in_user_space * user if in_user_space else float("nan")
            budget[method][layer] = {"share": share, "cpu_us_per_request": cpu}
    return budget


# Issue 17.2, as CPU ratios to raw: (variant, method, the least ratio). The
# fast path's targets hold for both of its tiers, Core and the driver.
RATIO_TARGETS = (
    ("generated", "GET", 0.30),
    ("generated", "POST", 0.25),
    ("fast-path", "GET", 0.45),
    ("fast-path", "POST", 0.35),
    ("driver", "GET", 0.45),
    ("driver", "POST", 0.35),
)


def listed(numbers: set[int]) -> str:
    return ", ".join(str(n) for n in sorted(numbers))


def check_targets(rows: list[dict[str, Any]], report: Report) -> list[dict[str, Any]]:
    """Issue 17.2's targets beside what this run measured."""
    targets: list[dict[str, Any]] = []
    measured = sorted({row["connections"] for row in rows})
    if not measured:
        return targets
    connections = profiled_connections(measured)
    for variant, method, least in RATIO_TARGETS:
        row = next(
            (
                r
                for r in rows
                if (r["variant"], r["method"], r["connections"]) == (variant, method, connections)
            ),
            None,
        )
        if row is None or "raw" not in {r["variant"] for r in rows}:
            continue
        ratio = row["cpu_ratio_to_raw"]
        targets.append(
            {
                "target": f"{variant} {method}, c={connections}: at least {least:.2f}x raw",
                "measured": f"{ratio:.2f}x",
                "met": ratio >= least,
            }
        )
    for variant in ("generated", "fast-path", "driver"):
        own = [r for r in rows if r["variant"] == variant]
        if own:
            errors = sum(r["non_2xx"] + r["socket_errors"] for r in own)
            levels = {r["connections"] for r in own}
            missing = {16, 64, 256} - levels
            observed = f"{errors} non-2xx or socket errors at c={listed(levels)}"
            if missing:
                observed += f"; c={listed(missing)} not run"
            targets.append(
                {
                    "target": f"{variant}: no error at c=16, 64, 256",
                    "measured": observed,
                    # Errors anywhere fail it; no errors where only some levels ran says nothing.
                    "met": False if errors else (None if missing else True),
                }
            )
    if report.overload:
        load = report.overload["load"]
        targets.append(
            {
                "target": "overload: slowest answer within pool_timeout + 1 s, no socket error",
                "measured": f"{load['max_ms'] / 1000:.2f} s, {load['socket_errors']} socket errors",
                "met": bool(report.overload["max_wait_within_bound"]),
            }
        )
    return targets


def print_table(rows: list[dict[str, Any]], report: Report) -> None:
    print(
        "CPU us: the server's CPU time per request; x raw, x fa: the ceiling's CPU per request\n"
        "over the variant's (raw: Starlette + asyncpg; fa: FastAPI + asyncpg). RSS of the one\n"
        "worker after warm-up and after the run; start: seconds to the first database-backed 200.\n"
    )
    header = (
        f"{'endpoint':<15}{'c':>5}  {'variant':<16}{'req/s':>7}{'CPU us':>8}{'x raw':>6}"
        f"{'x fa':>6}{'p50 ms':>8}{'p99 ms':>8}{'non2xx':>7}{'sockerr':>8}{'pg':>4}"
        f"{'new/s':>6}{'stmts':>6}{'start s':>8}{'RSS warm':>9}{'RSS end':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        endpoint = "GET /items/{id}" if row["method"] == "GET" else "POST /items"
        print(
            f"{endpoint:<15}{row['connections']:>5}  {row['variant']:<16}"
            f"{row['requests_per_second']:>7.0f}{row['cpu_us_per_request']:>8.0f}"
            f"{row['cpu_ratio_to_raw']:>6.2f}{row['cpu_ratio_to_fastapi_asyncpg']:>6.2f}"
            f"{row['p50_ms']:>8.1f}{row['p99_ms']:>8.1f}{row['non_2xx']:>7}"
            f"{row['socket_errors']:>8}{row['peak_connections']:>4}"
            f"{row['connections_opened_per_second']:>6.1f}{row['statements_per_request']:>6.1f}"
            f"{row['startup_seconds']:>8.2f}{row['rss_after_warmup_mib']:>9.0f}"
            f"{row['rss_after_run_mib']:>8.0f}"
        )
    if report.overload:
        load = report.overload["load"]
        print(
            f"\nOverload, generated service, c=1000 on a 5+0 pool (pool_timeout "
            f"{report.overload['pool_timeout_s']:.0f} s): {load['requests']} answered, "
            f"{load['non_2xx']} non-2xx (503), {load['socket_errors']} socket errors, "
            f"slowest {load['max_ms'] / 1000:.2f} s, status right after: "
            f"{report.overload['status_right_after']}"
        )


def print_comparison(rows: list[dict[str, Any]]) -> None:
    """The service's CPU per request against each --before build's, level by level."""
    cpu = {(r["variant"], r["method"], r["connections"]): r["cpu_us_per_request"] for r in rows}
    # In --before's order, which the rows keep.
    before = list(
        dict.fromkeys(r["variant"] for r in rows if r["variant"].startswith("generated@"))
    )
    if not before or not any(key[0] == "generated" for key in cpu):
        return
    print("\nA/B, server CPU us per request (change against the build before):")
    for (variant, method, connections), now in cpu.items():
        if variant != "generated":
            continue
        builds = [(name, cpu.get((name, method, connections))) for name in before]
        cells = "  ".join(f"{name} {value:.0f}" for name, value in builds if value is not None)
        print(f"  {method:<4} c={connections:<4} {cells}  generated {now:.0f}")
        chain = [value for _, value in builds if value is not None] + [now]
        steps = ", ".join(f"{(b - a) / a:+.1%}" for a, b in pairwise(chain))
        print(f"  {'':<11} steps: {steps}")


def print_telemetry_cost(rows: list[dict[str, Any]]) -> None:
    """What use_opentelemetry costs a request when no collector receives the spans."""
    cpu = {(r["variant"], r["method"], r["connections"]): r["cpu_us_per_request"] for r in rows}
    lines = []
    for (variant, method, connections), base in cpu.items():
        if variant != "generated":
            continue
        cells = [
            f"{name} {value:.0f} us ({(value - base) / base:+.1%})"
            for name in ("otel-off", "otel-no-collector")
            if (value := cpu.get((name, method, connections))) is not None
        ]
        if cells:
            lines.append(
                f"  {method:<4} c={connections:<4} generated {base:.0f} us, " + ", ".join(cells)
            )
    if lines:
        print("\nuse_opentelemetry, server CPU per request against the service without it:")
        print("\n".join(lines))


def print_budget(budget: dict[str, dict[str, Any]], report: Report) -> None:
    for method, profile in report.profile.items():
        if "error" in profile:
            print(f"\nCPU budget by layer, {method}: not measured ({profile['error']})")
    if not budget:
        return
    methods = list(budget)
    connections = {report.profile[m]["connections"] for m in methods}
    samples = ", ".join(f"{m} {report.profile[m]['samples']}" for m in methods)
    print(
        f"\nCPU budget of the generated service by layer, from py-spy at c={min(connections)}\n"
        f"(samples: {samples}): each layer's share of the samples, then its CPU us per request;\n"
        "the kernel's is the system time measured in the run above, and the other layers\n"
        "share the measured user time in proportion to their samples"
    )
    endpoints = {"GET": "GET /items/{id}", "POST": "POST /items"}
    print(f"{'layer':<30}" + "".join(f"{endpoints.get(m, m):>18}" for m in methods) + "  made of")
    for layer in layers.LAYERS:
        cells = "".join(
            f"{budget[m][layer]['share']:>9.1%}{budget[m][layer]['cpu_us_per_request']:>6.0f} us"
            for m in methods
        )
        print(f"{layer:<30}{cells}  {layers.LAYER_DESCRIPTIONS[layer]}")


def print_targets(targets: list[dict[str, Any]]) -> None:
    if not targets:
        return
    print("\nTargets (issue 17.2; the benchmark reports, it does not fail):")
    for target in targets:
        verdict = {True: "met", False: "NOT MET", None: "unknown"}[target["met"]]
        print(f"  {verdict:<8} {target['target']}: {target['measured']}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measured run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved rounds (medians are reported)",
    )
    parser.add_argument(
        "--connections", default="16,64,256", help="comma-separated concurrency levels"
    )
    parser.add_argument("--methods", default="GET,POST")
    parser.add_argument("--variants", default=",".join(v.name for v in VARIANTS))
    parser.add_argument(
        "--before",
        default="",
        help="comma-separated git refs: also run the service as the template there bakes it",
    )
    parser.add_argument("--quick", action="store_true", help="3 s runs, one round")
    parser.add_argument(
        "--no-profile", action="store_true", help="skip the py-spy profile of the generated service"
    )
    parser.add_argument(
        "--output", type=Path, help="JSON file (default: bench/results/<time>.json)"
    )
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds = 3.0, 1
    names = args.variants.split(",")
    variants = [v for v in VARIANTS if v.name in names]
    if unknown := set(names) - {v.name for v in VARIANTS}:
        parser.error(f"unknown variant {', '.join(sorted(unknown))}; choose from {VARIANTS_LIST}")
    refs = [ref for ref in args.before.split(",") if ref]
    # Interleaved with the rest, right after the service itself.
    variants[1:1] = [before_variant(ref) for ref in refs]
    args.before = refs
    for ceiling in CEILINGS:
        if ceiling not in names:
            print(f"note: without the {ceiling} variant there is no ratio to it", file=sys.stderr)

    started = datetime.now(UTC)
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    database = f"bench_{uuid.uuid4().hex[:10]}"
    base_dsn = ADMIN_DSN.rsplit("/", 1)[0]
    dsn = f"{base_dsn}/{database}"
    report = Report(started_at=started.isoformat(), settings=vars(args) | {"output": None})
    try:
        print(f"generating the default project into {workdir} ...", flush=True)
        project = bake_into(workdir)
        env = environment_without_virtualenv()
        subprocess.run(["uv", "sync", "--quiet", "--no-dev"], cwd=project, env=env, check=True)
        projects = {variant.name: project for variant in variants if not variant.answers}
        for answers in dict.fromkeys(variant.answers for variant in variants if variant.answers):
            named = ", ".join(f"{key}={value}" for key, value in answers)
            print(f"generating the project with {named} ...", flush=True)
            other = bake_into(workdir / f"with-{len(projects)}", **dict(answers))
            subprocess.run(["uv", "sync", "--quiet", "--no-dev"], cwd=other, env=env, check=True)
            projects |= {v.name: other for v in variants if v.answers == answers}
        for ref in refs:
            print(f"generating the default project as of {ref} ...", flush=True)
            at = bake_at(ref, workdir)
            subprocess.run(["uv", "sync", "--quiet", "--no-dev"], cwd=at, env=env, check=True)
            projects[before_variant(ref).name] = at
        # Only the comparison apps run on uvloop; the service itself does not need it.
        subprocess.run(
            ["uv", "pip", "install", "--quiet", "--python", ".venv/bin/python", "uvloop"],
            cwd=project,
            env=env,
            check=True,
        )
        if not args.no_profile:
            # A sampling profiler outside the process: the service runs unmodified.
            subprocess.run(
                ["uv", "pip", "install", "--quiet", "--python", ".venv/bin/python", "py-spy"],
                cwd=project,
                env=env,
                check=False,
            )
        asyncio.run(prepare_database(ADMIN_DSN, database))
        subprocess.run(
            [str(project / ".venv" / "bin" / "alembic"), "upgrade", "head"],
            cwd=project,
            env=env | {"DATABASE_URL": dsn},
            check=True,
            capture_output=True,
        )
        asyncio.run(seed(dsn))
        print(
            f"database {database} migrated and seeded with {ITEM_COUNT} items",
            flush=True,
        )

        for variant in variants:
            report.statements[variant.name] = count_statements(variant, projects[variant.name], dsn)
        for method in args.methods.split(","):
            for connections in (int(c) for c in args.connections.split(",")):
                for round_number in range(args.rounds):
                    shift = round_number % len(variants)
                    for variant in variants[shift:] + variants[:shift]:
                        result = measure(
                            variant,
                            projects[variant.name],
                            dsn,
                            database,
                            method,
                            connections,
                            args.seconds,
                            round_number,
                        )
                        report.measurements.append(result)
                        print(
                            f"  {method:<4} c={connections:<4} round {round_number + 1} "
                            f"{variant.name:<16} {result.load.requests_per_second:8.0f} req/s",
                            flush=True,
                        )
        if "generated" in names:
            report.overload = overload(project, dsn, args.seconds)
            if not args.no_profile:
                measured = [int(c) for c in args.connections.split(",")]
                for method in args.methods.split(","):
                    print(f"  profiling the generated service, {method} ...", flush=True)
                    # At least 20 s: about a thousand samples, enough for a share of 1 %.
                    report.profile[method] = profile_generated(
                        project,
                        dsn,
                        method,
                        profiled_connections(measured),
                        max(args.seconds, 1000 / layers.SAMPLES_PER_SECOND),
                        workdir,
                    )
    finally:
        asyncio.run(drop_database(ADMIN_DSN, database))
        shutil.rmtree(workdir, ignore_errors=True)

    rows = summarise(report)
    budget = layer_budget(rows, report)
    report.targets = check_targets(rows, report)
    print()
    print_table(rows, report)
    print_comparison(rows)
    print_telemetry_cost(rows)
    print_budget(budget, report)
    print_targets(report.targets)
    output = args.output or ROOT / "bench" / "results" / f"{started:%Y%m%dT%H%M%S}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    results = asdict(report) | {"summary": rows, "layer_budget": budget}
    output.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nresults: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
