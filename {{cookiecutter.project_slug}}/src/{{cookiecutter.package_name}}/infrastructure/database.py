"""The database engine, its sessions, and their lifecycle.

Nothing here connects at import time: `init_db` builds the engine when the
application starts, and `close_db` disposes of it when the application stops.
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import Depends, Request
from sqlalchemy import MetaData, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from {{ cookiecutter.package_name }}.infrastructure.config import Settings

logger = logging.getLogger(__name__)

# Stable constraint names, so that migrations can refer to them by name.
NAMING_CONVENTION: Final = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base class of every ORM model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class DatabaseUnavailableError(Exception):
    """The database did not answer; the message is one line and holds no password."""


@dataclass(frozen=True, slots=True)
class Database:
    """The engine and session factory that one running application owns."""

    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]


def create_engine(settings: Settings) -> AsyncEngine:
    """Build an engine whose pool follows the settings; it connects lazily."""
    pool = settings.pool
    connect_args: dict[str, Any] = {"timeout": settings.database_connect_timeout}
    if not settings.uses_dev_sqlite:
        # Operators find the service by this name in pg_stat_activity.
        connect_args["server_settings"] = {"application_name": settings.database_application_name}
    return create_async_engine(
        settings.url,
        pool_size=pool.pool_size,
        max_overflow=pool.max_overflow,
        pool_timeout=pool.pool_timeout,
        pool_recycle=pool.pool_recycle,
        # A connection the server dropped (restart, failover, idle timeout) is
        # replaced at checkout instead of failing the request that drew it.
        pool_pre_ping=pool.pool_pre_ping,
        echo=pool.echo,
        connect_args=connect_args,
    )


async def init_db(settings: Settings) -> Database:
    """Create the engine and session factory and make sure the database answers."""
    engine = create_engine(settings)
    try:
        async with engine.begin() as connection:
            if settings.uses_dev_sqlite:
                logger.warning(
                    "DATABASE_URL is not set: using the local SQLite file %s (dev profile only)",
                    settings.safe_url,
                )
                # Only for the throwaway dev database; real ones are built by migrations.
                await connection.run_sync(Base.metadata.create_all)
            else:
                await connection.execute(text("SELECT 1"))
    except (OSError, TimeoutError, DBAPIError) as error:
        await engine.dispose()
        raise DatabaseUnavailableError(_describe_failure(settings, error)) from error
    except BaseException:
        await engine.dispose()
        raise
    logger.info("Connected to %s (profile %s)", settings.safe_url, settings.database_profile)
    # Objects stay readable after commit: responses are serialised from them.
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    return Database(engine=engine, sessionmaker=sessionmaker)


async def close_db(database: Database) -> None:
    """Close every pooled connection; the engine cannot be used afterwards."""
    await database.engine.dispose()


async def wait_for_database(settings: Settings) -> None:
    """Try to reach the database a bounded number of times, backing off in between."""
    attempts = settings.database_connect_retries + 1
    delay = settings.database_connect_retry_delay
    for attempt in range(1, attempts + 1):
        try:
            database = await init_db(settings)
        except DatabaseUnavailableError as error:
            if attempt == attempts:
                raise
            logger.warning(
                "Attempt %d of %d: %s; retrying in %.1f s", attempt, attempts, error, delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30)
        else:
            await close_db(database)
            return


def _describe_failure(settings: Settings, error: BaseException) -> str:
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    lines = str(cause).strip().splitlines()
    reason = lines[0] if lines else type(cause).__name__
    return f"cannot use the database at {settings.safe_url}: {reason}"


@asynccontextmanager
async def session_scope(database: Database) -> AsyncIterator[AsyncSession]:
    """Give one session in one transaction: commit on success, roll back on error, close."""
    async with database.sessionmaker() as session, session.begin():
        yield session


def get_database(request: Request) -> Database:
    """Return the database the running application owns."""
    database: Database = request.app.state.database
    return database


DatabaseDep = Annotated[Database, Depends(get_database)]


async def get_db(database: DatabaseDep) -> AsyncIterator[AsyncSession]:
    """Give the request its own session, committed before the response is sent."""
    async with session_scope(database) as session:
        yield session


# scope="function" runs the commit after the handler returns but before the
# response goes out, so a failing commit becomes an error response, never a 2xx.
SessionDep = Annotated[AsyncSession, Depends(get_db, scope="function")]
