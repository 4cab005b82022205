"""`db status`: the server, the pool settings, the connection budget and use, the revision."""

import argparse
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from {{ cookiecutter.package_name }}.commands import COMMAND
from {{ cookiecutter.package_name }}.infrastructure.capacity import (
    ConnectionLimit,
    peak_connections,
    read_connection_limit,
)
from {{ cookiecutter.package_name }}.infrastructure.config import DatabaseConfig, Settings
from {{ cookiecutter.package_name }}.infrastructure.database import (
    DatabaseUnavailableError,
    connect_once,
)
from {{ cookiecutter.package_name }}.infrastructure.liveness import PING_AFTER_IDLE_SECONDS
from {{ cookiecutter.package_name }}.infrastructure.migrations import (
    MigrationConfigError,
    alembic_config,
    current_revisions,
    head_revisions,
    revision_names,
)
from {{ cookiecutter.package_name }}.infrastructure.profiles import Pooler


@dataclass(frozen=True, slots=True)
class Status:
    """What `db status` found on the server."""

    server_version: str
    limit: ConnectionLimit
    server_connections: int
    # This service's connections (by application_name), per state.
    service_connections: dict[str, int]
    revisions: tuple[str, ...]


def show_status(_args: argparse.Namespace, settings: Settings) -> int:
    """Print the server, the pool settings, the connection budget and the revision."""
    try:
        heads: tuple[str, ...] | str = head_revisions(alembic_config(settings))
    except (MigrationConfigError, CommandError) as error:
        # The rest of the report is still worth having.
        heads = str(error)
    primary, *others = settings.database_configs()
    status = asyncio.run(_read_status(primary))
    extras: dict[str, str] = {}
    unavailable = False
    for view in others:
        try:
            extras[view.url_variable] = _extra_line(view)
        except DatabaseUnavailableError as error:
            extras[view.url_variable] = f"unavailable: {error}"
            unavailable = True
    # Printed in full either way: the figures of the others are still worth having.
    print("\n".join(_status_lines(primary, status, heads, extras)))
    return 1 if unavailable else 0


def _extra_line(view: DatabaseConfig) -> str:
    pool = view.pool
    server, connections = asyncio.run(_read_extra(view))
    states = ", ".join(f"{count} {state}" for state, count in connections.items())
    return (
        f"{view.safe_url}: PostgreSQL {server}; pool_size {pool.pool_size}, max_overflow "
        f"{pool.max_overflow}; {sum(connections.values())} named "
        f"{view.application_name!r}{': ' + states if states else ''}"
    )


async def _read_extra(view: DatabaseConfig) -> tuple[str, dict[str, int]]:
    async with connect_once(view) as connection:
        version = await connection.scalar(text("SHOW server_version"))
        connections = await _service_connections(connection, view)
    return str(version), connections


async def _service_connections(
    connection: AsyncConnection, settings: DatabaseConfig
) -> dict[str, int]:
    # Without this command's own connection, which has the service's name too.
    rows = await connection.execute(
        text(
            "SELECT coalesce(state, 'hidden'), count(*) FROM pg_stat_activity "
            "WHERE application_name = :name AND pid <> pg_backend_pid() "
            "GROUP BY 1 ORDER BY 2 DESC, 1"
        ),
        {"name": settings.application_name},
    )
    return {str(state): int(count) for state, count in rows}


async def _read_status(settings: DatabaseConfig) -> Status:
    async with connect_once(settings) as connection:
        version = await connection.scalar(text("SHOW server_version"))
        limit = await read_connection_limit(connection)
        server_connections = await connection.scalar(
            text("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
        )
        service_connections = await _service_connections(connection, settings)
        revisions = await current_revisions(connection)
    return Status(
        server_version=str(version),
        limit=limit,
        server_connections=int(server_connections or 0),
        service_connections=service_connections,
        revisions=revisions,
    )


def _status_lines(
    settings: DatabaseConfig, status: Status, heads: Sequence[str] | str, extras: dict[str, str]
) -> list[str]:
    pool = settings.pool
    limit = status.limit
    needed = peak_connections(settings)
    if settings.pooler is Pooler.PGBOUNCER:
        budget = "not checked: behind PgBouncer, its max_client_conn and pool sizes are the limits"
    else:
        verdict = "fits" if needed <= limit.available else "EXCEEDS the server's limit"
        budget = (
            f"{settings.web_concurrency} worker(s) x ({pool.pool_size} + {pool.max_overflow}) "
            f"= {needed} of {limit.available} available: {verdict}"
        )
    states = ", ".join(f"{count} {state}" for state, count in status.service_connections.items())
    mine = sum(status.service_connections.values())
    if isinstance(heads, str):
        revision = f"{revision_names(status.revisions)} (head unknown: {heads})"
    elif set(status.revisions) == set(heads):
        revision = f"{revision_names(status.revisions)} (head)"
    else:
        revision = (
            f"{revision_names(status.revisions)}, head is {revision_names(heads)}: "
            f"run `uv run {COMMAND} db upgrade`"
        )
    fields = {
        "database": settings.safe_url,
        "server": f"PostgreSQL {status.server_version}",
        "profile": (
            f"{settings.profile}: pool_size {pool.pool_size}, max_overflow "
            f"{pool.max_overflow}, pool_timeout {pool.pool_timeout:g} s, pool_recycle "
            f"{pool.pool_recycle} s, pre-ping {_pre_ping(pool.pool_pre_ping)}"
        ),
        "timeouts": (
            f"statement {pool.statement_timeout_ms} ms, idle in transaction "
            f"{pool.idle_in_transaction_timeout_ms} ms (0: none), "
            f"connect {settings.connect_timeout:g} s"
        ),
        "budget": budget,
        "connections": (
            f"{mine} named {settings.application_name!r}"
            f"{': ' + states if states else ''}; {status.server_connections} on the server, "
            f"max_connections {limit.max_connections} ({limit.reserved} reserved)"
        ),
        "revision": revision,
        # Each extra database under the variable that names it, without "__URL".
        **{variable.removesuffix("__URL"): line for variable, line in extras.items()},
    }
    width = max(len(name) for name in fields) + 2
    return [f"{name:<{width}}{value}" for name, value in fields.items()]


def _pre_ping(enabled: bool) -> str:
    return f"after {PING_AFTER_IDLE_SECONDS:g} s idle" if enabled else "off"
