"""The request dependencies domain code uses: the surface template releases keep stable.

Routes take what they need by type, e.g. `session: SessionDep`; what stands
behind each alias (pools, queue guards, extra databases) may change between
releases, these names and their meaning do not.
"""

from typing import Annotated

from fastapi import Depends, Request

from {{ cookiecutter.package_name }}.infrastructure.config import Settings
from {{ cookiecutter.package_name }}.infrastructure.database import (
    ConnectionDep,
    ReadConnectionDep,
    ReadSessionDep,
    SessionDep,
)
from {{ cookiecutter.package_name }}.infrastructure.driver import (
    DriverConnectionDep,
    ReadDriverConnectionDep,
)
from {{ cookiecutter.package_name }}.infrastructure.extra_databases import (
    ReplicaConnectionDep,
    ReplicaSessionDep,
)

__all__ = [
    "ConnectionDep",
    "DriverConnectionDep",
    "ReadConnectionDep",
    "ReadDriverConnectionDep",
    "ReadSessionDep",
    "ReplicaConnectionDep",
    "ReplicaSessionDep",
    "SessionDep",
    "SettingsDep",
]


# Dependencies are coroutines on purpose: FastAPI runs plain functions in a
# thread pool, which costs a thread hop per request for nothing.
async def get_settings(request: Request) -> Settings:
    """Return the settings the running application was built with."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]
