"""Request and response models of the HTTP API (pydantic; they are the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ItemId = str


class Filters(BaseModel):
    """Which items may be returned. Applied inside the index search, so results are refilled to k."""

    model_config = ConfigDict(extra="forbid", strict=True)  # JSON types as the schema says: no 0 for false

    categories: list[str] | None = Field(None, description="Only these categories (names as in the catalog).",
                                         max_length=100)
    price_min: float | None = Field(None, ge=0, allow_inf_nan=False)
    price_max: float | None = Field(None, ge=0, allow_inf_nan=False)
    in_stock_only: bool = True
    exclude_item_ids: list[ItemId] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _range(self) -> Filters:
        if self.price_min is not None and self.price_max is not None and self.price_min > self.price_max:
            raise ValueError(f"price_min {self.price_min} is above price_max {self.price_max}")
        return self


PLACEMENTS = ("home", "product", "cart", "continue", "buy-again")
PLACEMENT = Field(None, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", description="Where the list is shown: logged "
                  "with the served list, so clicks and revenue are attributed per placement (docs/online.md). Five "
                  "names pick their own candidate sources (docs/serving.md, \"Placements\"): home (the default: "
                  "discovery with the shopper's own items where the data says they belong), product (items like "
                  "context_item_ids[0]), cart (complements of context_item_ids, or of a known shopper's open cart), "
                  "continue (the shopper's viewed or carted, not bought items, by purchase intent), buy-again (their "
                  "bought items that are re-bought at a learned interval). Any other name is served as home. "
                  "cart, continue and buy-again answer 409 on a bundle built without the placement models.",
                  examples=list(PLACEMENTS))


class RecommendationRequest(Filters):
    user_id: str | None = Field(None, max_length=200, description="Known or unknown shopper; omit for anonymous.")
    session_id: str | None = Field(None, max_length=200, description="The storefront's session: the events it sent "
                                   "(POST /v1/events) join its history within a second, in every worker.")
    placement: str | None = PLACEMENT
    recent_item_ids: list[ItemId] = Field(default_factory=list, max_length=1000,
                                          description="Session clicks, most recent first (added to the history).")
    context_item_ids: list[ItemId] = Field(default_factory=list, max_length=100, description="The product on the "
                                           "page (placement product: required) or the cart's products (cart).")
    discovery_only: bool = Field(False, description="home: nothing the shopper viewed, carted or bought (a page of "
                                 "new products only).")
    k: int = Field(10, ge=1)
    offset: int = Field(0, ge=0, description="Pagination: skip this many ranked items.")
    exclude_purchased: bool = True
    diversity: int | None = Field(None, ge=1, description="At most this many items per category in the page.")
    explain: bool = Field(False, description="Give each item its reason (channel, similar history item, ranker "
                          "move, rules). With a user_id the reasons name items of the shopper's history: the read "
                          "role is needed (401 / 403 otherwise); an anonymous session's may be explained to anyone.")


class Reason(BaseModel):
    """Why an item is on the page (requests with ``explain``)."""

    channels: list[str] = Field(description="Which recall channels found it: tower, item2item, "
                                "category_popular; popular (no-history fallback); rule (placed by a pin); a "
                                "placement's own source: history (the shopper's own items: continue, buy-again, "
                                "home's repeats), complements (cart), similar (product).")
    because_of: ItemId | None = Field(None, description="The shopper's history item most like it (item-tower vectors).")
    retrieved_at: int | None = Field(None, description="1-based position in the candidate list the ranker received.")
    ranked_at: int | None = Field(None, description="1-based position after the ranker, before the rules.")
    rules: list[str] = Field(default_factory=list, description="Ids of the merchandising rules that moved or "
                             "placed it.")


class Item(BaseModel):
    item_id: ItemId
    title: str
    category: str
    price: float
    in_stock: bool
    image_url: str
    score: float | None = None
    reason: Reason | None = None


class Timings(BaseModel):
    """Milliseconds per stage of this request."""

    user_ms: float = 0.0
    retrieve_ms: float = 0.0
    rank_ms: float = 0.0
    rules_ms: float = 0.0
    total_ms: float = 0.0


Fallback = Literal["popular"] | None


REC_ID = Field(None, description="Send it back with the events this list caused (POST /v1/events): they are then "
               "attributed to it. Signed: a forged or altered one counts as unattributed.")


class RecommendationResponse(BaseModel):
    items: list[Item]
    bundle_version: str
    rec_id: str | None = REC_ID
    variant: str | None = Field(None, description="The experiment and variant that served this page "
                                "(`<experiment>:<variant>`, or `<experiment>:interleave`); null: none "
                                "(docs/experiments.md).")
    fallback: Fallback = Field(None, description="popular: no signal about the user; null: model path.")
    user_known: bool
    offset: int
    k: int
    timings: Timings


class SimilarResponse(BaseModel):
    item_id: ItemId
    by: Literal["behaviour", "image"]
    items: list[Item]
    bundle_version: str
    rec_id: str | None = REC_ID


class CategoryProbability(BaseModel):
    category: str
    probability: float


class ClassifyResponse(BaseModel):
    predicted: str
    probabilities: list[CategoryProbability] = Field(description="Calibrated (temperature-scaled), sorted descending.")
    bundle_version: str
    saliency: list[list[float]] | None = Field(None, description="With saliency=true: (H, W) in [0, 1] over the "
                                               "model's input, how much hiding each region lowers the predicted "
                                               "category's probability.")


class ImageSearchResponse(BaseModel):
    predicted: str
    items: list[Item]
    bundle_version: str
    rec_id: str | None = REC_ID


class ItemPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # JSON types as the schema says: no 0 for false

    in_stock: bool | None = None
    price: float | None = Field(None, ge=0, allow_inf_nan=False)


class ItemDetail(Item):
    created_at: datetime | None = None
    predicted_category: str | None = None
    live: bool = Field(False, description="Added or changed through the admin API since the bundle was built.")


class AdminResponse(BaseModel):
    status: str
    bundle_version: str | None = None
    detail: str | None = None


class Health(BaseModel):
    status: str
    bundle_version: str | None = None
    items: int | None = None
    worker: int | None = Field(None, description="Process id of the worker that answered (`vitrine serve --workers N` "
                               "runs N, each with its own copy of the live state).")
    threads: dict[str, int] | None = Field(None, description="This worker's thread pools (cores, workers, ort, "
                                           "faiss, blas, numba), sized from its share of the cores.")


class Problem(BaseModel):
    """Every 4xx: ``detail`` is the reason (a string), or pydantic's list of field errors."""

    detail: str | list[Any]


ERRORS: dict = {"4XX": {"model": Problem, "description": "The request cannot be served as sent; `detail` says why."}}
