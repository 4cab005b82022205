"""What users often write: FastAPI with the async ORM, the engine built at import, default pool."""

import os
from collections.abc import AsyncIterator

from bench_models import add_item_routes
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

# The anti-pattern this template exists to avoid: a pool opened at import time.
engine = create_async_engine(
    os.environ["BENCH_URL"],
    connect_args={"server_settings": {"application_name": "bench-naive"}},
)
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


async def get_db() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as session:
        yield session
        await session.commit()


app = FastAPI()


add_item_routes(app, get_db)
