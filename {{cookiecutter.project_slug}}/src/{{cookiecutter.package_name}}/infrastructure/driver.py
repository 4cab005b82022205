"""asyncpg's own connection under a pooled checkout, for the fast path's driver tier.

The pool, queue guard and timeouts are the engine's; the handler runs
PostgreSQL's SQL on the driver, with neither SQLAlchemy's Connection nor its
statement layer in between (docs/fast-path.md).
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated

import asyncpg
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from {{ cookiecutter.package_name }}.infrastructure.capacity import PoolPlace

if TYPE_CHECKING:
    from {{ cookiecutter.package_name }}.infrastructure.database import Database


class DriverUnavailableError(RuntimeError):
    """A driver connection was asked of a database that asyncpg does not serve."""


@asynccontextmanager
async def pooled_driver(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """Check out one of the engine's connections and give asyncpg's own."""
    # The pool's own checkout: the liveness guard and the counters see it, and
    # no SQLAlchemy Connection is built around it.
    pooled = await engine.raw_connection()
    try:
        driver = pooled.driver_connection
        if not isinstance(driver, asyncpg.Connection):
            raise DriverUnavailableError(
                "DriverConnectionDep and ReadDriverConnectionDep need PostgreSQL, "
                f"not {engine.dialect.name}: set DATABASE_URL"
            )
        try:
            yield driver
        finally:
            # SQLAlchemy began nothing on it, so its reset would end nothing: a
            # connection left closed or in a transaction must not go back.
            if driver.is_closed() or driver.is_in_transaction():
                await greenlet_spawn(pooled.invalidate)
    finally:
        await greenlet_spawn(pooled.close)


async def get_driver_connection(request: Request) -> AsyncIterator[asyncpg.Connection]:
    """Give the request asyncpg's connection in one transaction, committed before the response."""
    database: Database = request.app.state.database
    with PoolPlace(database) as place:
        async with database.driver() as driver:
            place.taken()
            async with driver.transaction():
                yield driver


async def get_read_driver_connection(request: Request) -> AsyncIterator[asyncpg.Connection]:
    """Give a handler that only reads asyncpg's connection, its statements in no transaction."""
    database: Database = request.app.state.database
    with PoolPlace(database) as place:
        async with database.driver() as driver:
            place.taken()
            if database.autocommit:
                yield driver
            else:
                # PgBouncer may move a statement between its prepare and its
                # execution to another server unless a transaction holds it.
                async with driver.transaction():
                    yield driver


# As ConnectionDep and ReadConnectionDep, with asyncpg's own connection: PostgreSQL only.
DriverConnectionDep = Annotated[
    asyncpg.Connection, Depends(get_driver_connection, scope="function")
]
ReadDriverConnectionDep = Annotated[
    asyncpg.Connection, Depends(get_read_driver_connection, scope="function")
]
