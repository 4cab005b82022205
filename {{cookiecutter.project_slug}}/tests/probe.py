"""Routes and tables of the tests' own, to prove the machinery whatever domains the service has.

`probes` lives in a schema of its own, outside the models' metadata, so that
migrations and `db check` never see it; conftest creates it in each test
database. `model_table` stands in for a domain's model where the machinery
works from the models' metadata (the dev SQLite file).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Annotated, Any, Final

import uvicorn
from fastapi import APIRouter, FastAPI, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    Column,
    DateTime,
    Identity,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy import update as update_statement
from sqlalchemy.ext.asyncio import AsyncConnection

from {{ cookiecutter.package_name }} import cli
from {{ cookiecutter.package_name }}.dependencies import (
    ConnectionDep,
    ReadSessionDep,
    ReplicaSessionDep,
    SessionDep,
)
from {{ cookiecutter.package_name }}.infrastructure.config import Settings
from {{ cookiecutter.package_name }}.infrastructure.orm import Base
from {{ cookiecutter.package_name }}.main import create_app

SCHEMA: Final = "probe"
metadata = MetaData(schema=SCHEMA)
probes = Table(
    "probes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("price", Numeric(10, 2), nullable=False),
)

# The id column is a 32-bit integer; larger ids cannot exist, so they are a 422.
ProbeId = Annotated[int, Path(ge=1, le=2_147_483_647)]


class ProbeCreate(BaseModel):
    """A probe to write."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Mug", "price": "4.20"}]})

    name: str = Field(min_length=1, max_length=200)
    price: Decimal = Field(ge=0, max_digits=10, decimal_places=2)


class ProbeUpdate(BaseModel):
    """Some fields of a probe to change."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"price": "5.00"}]})

    name: str | None = Field(default=None, min_length=1, max_length=200)
    price: Decimal | None = Field(default=None, ge=0, max_digits=10, decimal_places=2)


class ProbePublic(ProbeCreate):
    """A stored probe."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"id": 1, "name": "Mug", "price": "4.20"}]}
    )

    id: int


def probe_router(table: Table) -> APIRouter:
    """Routes that write and read `table` through each kind of request dependency."""
    router = APIRouter(prefix=f"/{table.name.replace('_', '-')}", tags=["probes"])

    def not_found(probe_id: int) -> HTTPException:
        return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"Probe {probe_id} not found")

    @router.post("", status_code=status.HTTP_201_CREATED)
    async def create(data: ProbeCreate, connection: ConnectionDep) -> ProbePublic:
        """Write a probe on a bare connection."""
        written = await connection.execute(
            insert(table).values(**data.model_dump()).returning(*public_columns(table))
        )
        return ProbePublic.model_validate(written.one()._mapping)

    @router.get("")
    async def list_page(
        session: ReplicaSessionDep, limit: Annotated[int, Query(ge=1, le=100)] = 20
    ) -> list[ProbePublic]:
        """List probes, oldest first, from the replica if there is one."""
        query = select(*public_columns(table)).order_by(table.c.id).limit(limit)
        return [ProbePublic.model_validate(row._mapping) for row in await session.execute(query)]

    @router.get("/{probe_id}")
    async def get(probe_id: ProbeId, session: ReadSessionDep) -> ProbePublic:
        """Read one probe from the primary."""
        query = select(*public_columns(table)).where(table.c.id == probe_id)
        row = (await session.execute(query)).one_or_none()
        if row is None:
            raise not_found(probe_id)
        return ProbePublic.model_validate(row._mapping)

    @router.patch("/{probe_id}")
    async def update(probe_id: ProbeId, data: ProbeUpdate, session: SessionDep) -> ProbePublic:
        """Change some fields of a probe in the session's transaction."""
        changes = data.model_dump(exclude_unset=True) or {"id": probe_id}
        statement = update_statement(table).where(table.c.id == probe_id).values(**changes)
        row = (await session.execute(statement.returning(*public_columns(table)))).one_or_none()
        if row is None:
            raise not_found(probe_id)
        return ProbePublic.model_validate(row._mapping)

    @router.delete("/{probe_id}", status_code=status.HTTP_204_NO_CONTENT)
    async def delete_one(probe_id: ProbeId, session: SessionDep) -> None:
        """Delete a probe in the session's transaction."""
        deleted = await session.execute(delete(table).where(table.c.id == probe_id))
        if deleted.rowcount == 0:  # type: ignore[attr-defined]
            raise not_found(probe_id)

    return router


def public_columns(table: Table) -> list[Column[Any]]:
    return [table.c.id, table.c.name, table.c.price]


def create_probe_app(settings: Settings | None = None) -> FastAPI:
    """Build the service as create_app does, with the probe's routes beside the team's."""
    app = create_app(settings)
    app.include_router(probe_router(probes))
    return app


async def create_probe_table(connection: AsyncConnection) -> None:
    """Create the probe's schema and table in the database of `connection`."""
    await connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    await connection.run_sync(metadata.create_all)


@contextmanager
def model_table() -> Iterator[Table]:
    """A table registered with the models for the duration, as a domain's model is."""
    table = Table(
        "model_probes",
        Base.metadata,
        Column("id", Integer, Identity(start=1), primary_key=True),
        Column("name", String(200), nullable=False),
        Column("description", String(2000)),
        Column("price", Numeric(10, 2), nullable=False),
        Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    )
    try:
        yield table
    finally:
        Base.metadata.remove(table)


def serve() -> None:
    """Run the command line, whose `serve` then builds each worker's app with the probe's routes."""
    run = uvicorn.run

    def run_with_probe(app: object, **options: Any) -> None:
        # The same options, another factory: the command's own app plus the probe's routes.
        assert app == "{{ cookiecutter.package_name }}.main:create_app", app
        run("tests.probe:create_probe_app", **options)

    uvicorn.run = run_with_probe
    raise SystemExit(cli.main())
