"""The generated service with its two benchmarked routes on the documented fast path.

The routes are written as a team would write the recipe, against the project's
public surface only: Core statements on the items table, run on the bare
connections of `ReadConnectionDep` and `ConnectionDep`. Run as a script with the
project's interpreter, it serves the app exactly as `orders-service serve` does,
with those two routes swapped in where the example's stood; no file of the
project is changed.
"""

import sys
from importlib.metadata import entry_points
from typing import Annotated, Any, Final, cast

import uvicorn
from fastapi import APIRouter, FastAPI, HTTPException, Path, status
from orders_service.items.models import Item
from orders_service.items.schemas import ItemCreate, ItemPublic
from sqlalchemy import Table, bindparam, insert, select
from starlette.routing import Match
from starlette.types import Scope
from uvicorn.importer import import_from_string

# Newer projects keep the request dependencies in a module of their own; older ones
# beside the engine.
try:
    from orders_service.dependencies import (  # type: ignore[import-not-found,unused-ignore]
        ConnectionDep,
        ReadConnectionDep,
    )
except ModuleNotFoundError:
    from orders_service.infrastructure.database import (  # type: ignore[no-redef,unused-ignore]
        ConnectionDep,
        ReadConnectionDep,
    )

# The benchmark bakes the default project: its command and package carry the default names.
COMMAND: Final = "orders-service"
MAX_ID: Final = 2_147_483_647

# Built once: compiling a statement per request is part of what the fast path saves.
_ITEMS: Final = cast(Table, Item.__table__)
_BY_ID: Final = select(*_ITEMS.c).where(_ITEMS.c.id == bindparam("item_id"))
_INSERT: Final = insert(_ITEMS).returning(*_ITEMS.c)

router = APIRouter(prefix="/items")


@router.get("/{item_id}")
async def get_item(
    item_id: Annotated[int, Path(ge=1, le=MAX_ID)], connection: ReadConnectionDep
) -> ItemPublic:
    """Return one item."""
    row = (await connection.execute(_BY_ID, {"item_id": item_id})).first()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"Item {item_id} not found")
    return ItemPublic.model_validate(row)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_item(data: ItemCreate, connection: ConnectionDep) -> ItemPublic:
    """Create an item."""
    row = (await connection.execute(_INSERT, data.model_dump())).one()
    return ItemPublic.model_validate(row)


def with_routes(app: FastAPI, routes: APIRouter) -> FastAPI:
    """Put `routes` just before the example's, which they then shadow."""
    # FastAPI keeps an included router as one entry; asking each entry whether it
    # routes GET /items/1 finds the example's wherever and however it is included.
    probe: Scope = {"type": "http", "method": "GET", "path": "/items/1", "root_path": ""}
    index = next(
        (
            i
            for i, route in enumerate(app.router.routes)
            if route.matches(dict(probe))[0] is Match.FULL
        ),
        None,
    )
    if index is None:
        raise SystemExit("fast path: the service has no GET /items/{item_id} to replace")
    app.include_router(routes)
    # Same place in the walk: routing tries the same routes before it matches.
    app.router.routes.insert(index, app.router.routes.pop())
    return app


def main(routes: APIRouter = router) -> int:
    """Run the project's own `serve` command, its app given `routes` in the example's place."""
    serve = uvicorn.run

    def run(app: Any, **options: Any) -> None:
        # One worker: uvicorn then takes the factory as an object, not an import string.
        factory = import_from_string(app) if isinstance(app, str) else app
        options["factory"] = True
        serve(lambda: with_routes(factory(), routes), **options)

    uvicorn.run = run
    sys.argv = [COMMAND, "serve", *sys.argv[1:]]
    cli = entry_points(group="console_scripts")[COMMAND].load()
    return int(cli() or 0)


if __name__ == "__main__":
    sys.exit(main())
