"""Request and response models of the events API (``POST /v1/events``; docs/online.md): what the
storefront sends back about what shoppers did with what it showed them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from common.ids import ID_PATTERN, MAX_ID_LEN

EventType = Literal["view", "click", "cart", "purchase", "list_view"]
MAX_EVENTS = 1000
Id = Field(None, max_length=MAX_ID_LEN, pattern=ID_PATTERN)


class Event(BaseModel):
    """One thing a shopper did. ``click``: a click on a served item (with its ``rec_id`` and ``position``);
    ``list_view``: the page rendered a served list (``rec_id``, no item)."""

    model_config = ConfigDict(extra="forbid")

    event_id: str | None = Field(None, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$", description="The client's "
                                 "id for this event: a retried batch counts it once. Omitted: the server assigns one "
                                 "(then a retry counts twice).")
    type: EventType
    user_id: str | None = Id
    session_id: str | None = Id
    item_id: str | None = Field(None, max_length=MAX_ID_LEN, pattern=ID_PATTERN, description="Required but for "
                                "list_view. An item the catalog does not know is kept, and flagged.")
    ts: datetime | None = Field(None, description="When it happened (UTC when no zone); omitted: when received. "
                                "Further from now than the configured skew: rejected.")
    rec_id: str | None = Field(None, max_length=64, description="The rec_id of the served list it came from.")
    position: int | None = Field(None, ge=1, le=1000, description="1-based position in that list, as shown.")
    placement: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    price: float | None = Field(None, ge=0, le=1e9, allow_inf_nan=False, description="Unit price (purchases).")
    quantity: int | None = Field(None, ge=1, le=10_000)
    order_id: str | None = Field(None, max_length=128)

    @model_validator(mode="after")
    def _shape(self) -> Event:
        if self.user_id is None and self.session_id is None:
            raise ValueError("give a user_id or a session_id")
        if self.type != "list_view" and self.item_id is None:
            raise ValueError(f"a {self.type} event needs an item_id")
        if self.type == "list_view" and self.rec_id is None:
            raise ValueError("a list_view event needs the rec_id of the list")
        return self


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[dict] = Field(min_length=1, max_length=MAX_EVENTS, description="Up to 1,000 events (each as "
                               "``Event``); a bad one is rejected with its reason, the others are kept.")


class Rejected(BaseModel):
    index: int = Field(description="0-based position in the batch.")
    reason: str


class EventsResponse(BaseModel):
    accepted: int = Field(description="Written durably (acknowledged): never lost.")
    duplicates: int = Field(description="Already received (same event_id): counted once.")
    rejected: list[Rejected]
    unknown_items: list[int] = Field(default_factory=list, description="Indexes of accepted events whose item the "
                                     "served catalog does not know (kept: the catalog may lag).")
    unattributed: list[int] = Field(default_factory=list, description="Indexes of accepted events whose rec_id "
                                    "did not verify (kept, never credited to a list).")


class GA4Item(BaseModel):
    model_config = ConfigDict(extra="allow")

    item_id: str | None = None
    price: float | None = None
    quantity: int | None = None
    index: int | None = None
    item_list_id: str | None = None


class GA4Event(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    params: dict = Field(default_factory=dict)


class GA4Batch(BaseModel):
    """GA4's Measurement Protocol shape: ``client_id`` (a session), ``user_id``, ``timestamp_micros`` and
    ``events: [{name, params: {items: [...], transaction_id, rec_id, ...}}]``."""

    model_config = ConfigDict(extra="allow")

    client_id: str | None = None
    user_id: str | None = None
    timestamp_micros: int | None = None
    events: list[GA4Event] = Field(min_length=1, max_length=MAX_EVENTS)
