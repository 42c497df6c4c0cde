"""POST /v1/events (and its GA4 twin): what shoppers did with what they were shown; DELETE
/admin/shoppers/{user_id}: erase one shopper from the logs (docs/online.md)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, Field

from bundle.log_erasure import erase, sessions_of
from bundle.logs import BacklogError, shopper_hash
from common.ids import ID_PATTERN, MAX_ID_LEN
from serving.deps import Admin, State
from serving.event_intake import from_ga4, load_ga4_map
from serving.event_schemas import EventBatch, EventsResponse, GA4Batch
from serving.parsing import json_body, json_body_schema
from serving.schemas import ERRORS
from serving.state import ServiceState

router = APIRouter(tags=["events"], responses=ERRORS)
RETRY = {"Retry-After": "1"}


async def _take(state: ServiceState, raw: list) -> EventsResponse:
    if state.event_writer is None:
        raise HTTPException(409, "this service takes no events (VITRINE_EVENTS=false)")
    b = state.bundle
    known = b.catalog.row_of.contains if b is not None else (lambda ids: [None] * len(ids))
    records, rejected, unknown, unattributed, dups = state.intake.check(raw, known)
    if records:
        try:
            fut = state.intake.write(records)
        except BacklogError as e:
            state.intake.forget_ids(records)
            raise HTTPException(503, f"{e}: retry shortly; nothing of this batch was kept", headers=RETRY) from e
        try:
            await asyncio.wrap_future(fut)  # acknowledged only once it is on disk
        except OSError as e:
            state.intake.forget_ids(records)
            raise HTTPException(503, f"the events log cannot be written ({e.strerror or e}); nothing of this "
                                     "batch was kept: retry", headers=RETRY) from e
        if state.realtime is not None:
            state.realtime.apply(records)  # this worker at once; the others read the log within a poll
        if state.shared_events is not None:  # and the other replicas, through the shared store
            state.shared_events.publish(records)
    return EventsResponse(accepted=len(records), duplicates=dups, rejected=rejected, unknown_items=unknown,
                          unattributed=unattributed)


@router.post("/v1/events", response_model=EventsResponse, openapi_extra=json_body_schema(EventBatch))
async def events(request: Request) -> EventsResponse:
    """Up to 1,000 events: views, clicks on served items, carts, purchases, rendered lists. Accepted in
    part: each bad event rejected with its reason by index; the rest written durably before the answer;
    a retried ``event_id`` counted once. 503 with ``Retry-After`` when the log cannot keep up or be
    written: the whole batch may be retried."""
    body = await json_body(request, EventBatch)
    return await _take(request.app.state.service, body.events)


@router.post("/v1/events/ga4", response_model=EventsResponse, openapi_extra=json_body_schema(GA4Batch))
async def events_ga4(request: Request) -> EventsResponse:
    """GA4's Measurement Protocol shape, mapped by serving/ga4-map.yaml (``view_item_list`` → list_view,
    ``select_item`` → click, ``view_item`` → view, ``add_to_cart`` → cart, ``purchase`` → purchase, one
    event per item); the answer's indexes are of the mapped events."""
    body = await json_body(request, GA4Batch)
    state = request.app.state.service
    mapped = from_ga4(body, load_ga4_map())
    if not mapped:
        raise HTTPException(422, "no event of this batch maps to an event type (docs/online.md, the GA4 mapping)")
    return await _take(state, mapped)


class Erased(BaseModel):
    user_id: str
    sessions: int = Field(description="Sessions joined to the shopper, erased with them.")
    rows_removed: int = Field(description="Rows removed from the converted log segments (events and served items); "
                              "the open segments drop theirs when converted.")


@router.delete("/admin/shoppers/{user_id}", response_model=Erased)
def erase_shopper(user_id: Annotated[str, Path(max_length=MAX_ID_LEN, pattern=ID_PATTERN)], state: State,
                  _: Admin) -> Erased:
    """Erase one shopper: their events and the lists served to them from the logs, their real-time
    state in every worker (within a poll); the next nightly run removes them from the dataset, so the
    next bundle forgets them."""
    root = state.events_root
    sessions = sorted(sessions_of(root, user_id) | ({s for s, u in state.realtime.links.items() if u == user_id}
                                                    if state.realtime else set()))
    salt = state.served.salt
    hashes = {shopper_hash(salt, user_id, None)} | {shopper_hash(salt, None, s) for s in sessions}
    removed = erase(root, hashes)
    if state.realtime is not None:
        state.realtime.forget(user_id, sessions)
    return Erased(user_id=user_id, sessions=len(sessions), rows_removed=removed)
