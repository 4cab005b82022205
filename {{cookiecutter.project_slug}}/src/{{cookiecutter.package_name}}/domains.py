"""The service's domains: yours, the one place a domain is registered.

main.create_app includes every router of ROUTERS. Importing a domain's router
imports its models, which registers its tables for Alembic and the tests' cleanup.
"""

from fastapi import APIRouter

from {{ cookiecutter.package_name }}.items.router import router as items_router

ROUTERS: tuple[APIRouter, ...] = (items_router,)
