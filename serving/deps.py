"""Request dependencies, as ``Annotated`` aliases the routers declare: the service state, the
bundle a request uses, the settings, and the admin check.

They are ``async def`` although they never await: FastAPI runs a plain ``def`` dependency in the
thread pool, and three thread hops per request cost more than the whole ranker.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from serving.loaded_bundle import LoadedBundle
from serving.settings import ServingSettings
from serving.state import ServiceState


async def get_state(request: Request) -> ServiceState:
    return request.app.state.service


async def get_bundle(request: Request) -> LoadedBundle:
    return request.app.state.service.require_bundle()


async def get_settings_dep(request: Request) -> ServingSettings:
    return request.app.state.service.settings


async def require_admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    token = request.app.state.service.settings.admin_token
    if not token:
        raise HTTPException(403, "admin endpoints are disabled: no VITRINE_ADMIN_TOKEN is configured")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.encode(), token.encode()):
        raise HTTPException(401, "admin endpoints need 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})


State = Annotated[ServiceState, Depends(get_state)]
Bundle = Annotated[LoadedBundle, Depends(get_bundle)]
Settings = Annotated[ServingSettings, Depends(get_settings_dep)]
Admin = Annotated[None, Depends(require_admin)]
