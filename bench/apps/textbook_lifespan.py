"""The textbook lifespan pattern from the design notes: engine in the lifespan, pool 20+40, pre-ping."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bench_models import add_item_routes
from fastapi import FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    engine = create_async_engine(
        os.environ["BENCH_URL"],
        pool_size=20,
        max_overflow=40,
        pool_recycle=3600,
        pool_pre_ping=True,
        connect_args={"server_settings": {"application_name": "bench-textbook"}},
    )
    app.state.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    yield
    await engine.dispose()


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except Exception:
            await session.rollback()
            raise


app = FastAPI(lifespan=lifespan)


add_item_routes(app, get_db)
