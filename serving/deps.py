"""Request dependencies, as ``Annotated`` aliases the routers declare: the service state, the
bundle a request uses, the settings, and the role checks (serving/auth.py).

They are ``async def`` although they never await: FastAPI runs a plain ``def`` dependency in the
thread pool, and three thread hops per request cost more than the whole ranker.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from serving.auth import require_admin, require_read
from serving.loaded_bundle import LoadedBundle
from serving.settings import ServingSettings
from serving.state import ServiceState


async def get_state(request: Request) -> ServiceState:
    return request.app.state.service


async def get_bundle(request: Request) -> LoadedBundle:
    return request.app.state.service.require_bundle()


async def get_settings_dep(request: Request) -> ServingSettings:
    return request.app.state.service.settings


State = Annotated[ServiceState, Depends(get_state)]
Bundle = Annotated[LoadedBundle, Depends(get_bundle)]
Settings = Annotated[ServingSettings, Depends(get_settings_dep)]
Reader = Annotated[str, Depends(require_read)]  # the read role or more (serving/auth.py)
Admin = Annotated[str, Depends(require_admin)]
