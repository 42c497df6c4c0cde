"""POST /admin/reload: load, verify and warm the bundle CURRENT names, then swap it in."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from serving.deps import Admin, State
from serving.reload import reload_current
from serving.schemas import ERRORS, AdminResponse

router = APIRouter(prefix="/admin", tags=["admin"], responses=ERRORS)


@router.post("/reload", response_model=AdminResponse)
def reload(state: State, _: Admin) -> AdminResponse:
    """Synchronous for the caller, invisible to other requests: they keep using the old bundle until
    the new one has passed verification and a smoke query; a bad bundle is refused (409)."""
    ok, detail = reload_current(state)
    if not ok:
        raise HTTPException(409, detail)
    return AdminResponse(status="ok", bundle_version=state.bundle.version if state.bundle else None, detail=detail)
