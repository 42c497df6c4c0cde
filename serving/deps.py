"""Shared request dependencies (``Annotated`` aliases), the service state they read, and auth."""

from __future__ import annotations

import logging
import secrets
import threading
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from serving.runtime import LoadedBundle
from serving.settings import ServingSettings

log = logging.getLogger(__name__)


class ServiceState:
    """The bundle being served (swapped whole on reload) and what reload needs."""

    def __init__(self, settings: ServingSettings) -> None:
        self.settings = settings
        self.bundle: LoadedBundle | None = None
        self.reload_lock = threading.Lock()
        self.last_error: str | None = None


def get_state(request: Request) -> ServiceState:
    return request.app.state.service


def get_bundle(request: Request) -> LoadedBundle:
    b = request.app.state.service.bundle
    if b is None:
        raise HTTPException(503, "no bundle loaded yet")
    return b


def get_settings_dep(request: Request) -> ServingSettings:
    return request.app.state.service.settings


def require_admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
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
