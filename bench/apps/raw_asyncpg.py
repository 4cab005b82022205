"""The practical ceiling: Starlette and a raw asyncpg pool, no ORM, no validation layer."""

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

DSN = os.environ["BENCH_DSN"]
SELECT = "SELECT id, name, description, price, created_at FROM items WHERE id = $1"
INSERT = (
    "INSERT INTO items (name, description, price) VALUES ($1, $2, $3) "
    "RETURNING id, name, description, price, created_at"
)


def as_json(row: asyncpg.Record) -> bytes:
    item: dict[str, Any] = dict(row)
    item["price"] = str(item["price"])
    item["created_at"] = item["created_at"].isoformat()
    return json.dumps(item).encode()


async def get_item(request: Request) -> Response:
    pool: asyncpg.Pool = request.app.state.pool
    row = await pool.fetchrow(SELECT, int(request.path_params["item_id"]))
    if row is None:
        return Response(b'{"detail":"not found"}', 404, media_type="application/json")
    return Response(as_json(row), media_type="application/json")


async def create_item(request: Request) -> Response:
    pool: asyncpg.Pool = request.app.state.pool
    body = json.loads(await request.body())
    row = await pool.fetchrow(INSERT, body["name"], body.get("description"), body["price"])
    return Response(as_json(row), 201, media_type="application/json")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(
        DSN, min_size=20, max_size=20, server_settings={"application_name": "bench-raw"}
    )
    yield
    await app.state.pool.close()


app = Starlette(
    routes=[
        Route("/items/{item_id:int}", get_item),
        Route("/items", create_item, methods=["POST"]),
    ],
    lifespan=lifespan,
)
