"""Extra named databases (a read replica, an analytics database): engines, sessions, connections.

Each one configured as DATABASES__<NAME>__URL gets its own engine and pool,
built by the same `init_db` as the primary's, in the lifespan, and disposed
with it. Routes reach one through a dependency from `database_session` or
`database_connection`.
"""

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Annotated, Any, Final

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from {{ cookiecutter.package_name }}.infrastructure.config import DatabaseConfig
from {{ cookiecutter.package_name }}.infrastructure.database import (
    Database,
    DatabaseUnavailableError,
    close_db,
    get_connection,
    get_db,
    get_read_connection,
    get_read_db,
    init_db,
    wait_for_database,
)

# The extra database ReplicaSessionDep and ReplicaConnectionDep read from.
REPLICA: Final = "replica"

# The primary's own dependencies, reused as context managers so that an extra
# database's sessions and connections commit, roll back and shed load alike.
_transactional_session = asynccontextmanager(get_db)
_read_session = asynccontextmanager(get_read_db)
_transactional_connection = asynccontextmanager(get_connection)
_read_connection = asynccontextmanager(get_read_connection)


class DatabaseNotConfiguredError(Exception):
    """A route needs an extra database that the environment does not name."""


@asynccontextmanager
async def open_extra_databases(
    extras: Iterable[DatabaseConfig],
) -> AsyncIterator[dict[str, Database]]:
    """Build every extra database's engine; dispose of all of them when the block ends."""
    async with AsyncExitStack() as opened:
        databases: dict[str, Database] = {}
        for view in extras:
            try:
                database = await init_db(view)
            except DatabaseUnavailableError as error:
                # Those built before this one are disposed by the exit stack.
                raise DatabaseUnavailableError(f"{view.url_variable}: {error}") from error
            opened.push_async_callback(close_db, database)
            databases[view.name] = database
        yield databases


async def wait_for_databases(databases: Iterable[DatabaseConfig], *, announce: bool = True) -> None:
    """Wait for the primary, then each extra database."""
    # The dev SQLite file too: its schema is brought up to date here, once,
    # before any worker starts on it.
    primary, *extras = databases
    await wait_for_database(primary, announce=announce)
    for view in extras:
        try:
            await wait_for_database(view, announce=announce)
        except DatabaseUnavailableError as error:
            raise DatabaseUnavailableError(f"{view.url_variable}: {error}") from error


async def get_extra_databases(request: Request) -> Mapping[str, Database]:
    """Return the extra databases the running application owns, by name."""
    databases: Mapping[str, Database] = request.app.state.extra_databases
    return databases


ExtraDatabasesDep = Annotated[Mapping[str, Database], Depends(get_extra_databases)]


def database_session(
    name: str, *, read_only: bool = False, fallback_to_primary: bool = False
) -> Callable[[Request], AsyncIterator[AsyncSession]]:
    """Return a dependency giving a session on the extra database `name`.

    Like SessionDep (or ReadSessionDep with `read_only`) but on that database.
    With `fallback_to_primary`, a service without DATABASES__<NAME>__URL uses
    the primary instead; without it, such a request fails with a 500 that
    names the missing variable.
    """
    open_session = _read_session if read_only else _transactional_session
    return _on_database(name, open_session, fallback_to_primary=fallback_to_primary)


def database_connection(
    name: str, *, read_only: bool = False, fallback_to_primary: bool = False
) -> Callable[[Request], AsyncIterator[AsyncConnection]]:
    """Return a dependency giving a connection on the extra database `name`.

    Like ConnectionDep (or ReadConnectionDep with `read_only`) but on that
    database; `fallback_to_primary` as for database_session.
    """
    open_connection = _read_connection if read_only else _transactional_connection
    return _on_database(name, open_connection, fallback_to_primary=fallback_to_primary)


def _on_database(
    name: str,
    open_on: Callable[[Database], AbstractAsyncContextManager[Any]],
    *,
    fallback_to_primary: bool,
) -> Callable[[Request], AsyncIterator[Any]]:
    # A session or a connection: the callers above say which.
    async def dependency(request: Request) -> AsyncIterator[Any]:
        databases = await get_extra_databases(request)
        database = databases.get(name)
        if database is None:
            if not fallback_to_primary:
                raise DatabaseNotConfiguredError(
                    f"DATABASES__{name.upper()}__URL is not set, and a route needs it"
                )
            # Read at request time: tests swap the primary for a transactional one.
            database = request.app.state.database
        async with open_on(database) as opened:
            yield opened

    return dependency


# The replica, for routes that only read and can live with its lag; without
# DATABASES__REPLICA__URL they read from the primary, so the same code runs
# with or without one.
ReplicaSessionDep = Annotated[
    AsyncSession,
    Depends(database_session(REPLICA, read_only=True, fallback_to_primary=True), scope="function"),
]
ReplicaConnectionDep = Annotated[
    AsyncConnection,
    Depends(
        database_connection(REPLICA, read_only=True, fallback_to_primary=True), scope="function"
    ),
]
