"""Request and response models of the merchandisers' API (``/v1/analytics``, ``/v1/merch``)."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from serving.experiment_stats import Analysis
from serving.experiments import Experiment
from serving.rules import Rule
from serving.schemas import Item, ItemId, RecommendationRequest, RecommendationResponse


class Delta(BaseModel):
    metric: str
    candidate: float | None
    live: float | None = Field(description="The bundle that was live when the night ran.")
    delta: float | None


class Night(BaseModel):
    run: str
    started_at: str | None
    finished_at: str | None
    status: str = Field(description="published | canary | canary not started | refused by the gate | failed | "
                        "unfinished")
    version: str | None
    headline: dict[str, float]
    guards: dict[str, float] = Field(description="What gets recommended: coverage, gini, novelty (two-tower, test).")
    gate: dict | None = Field(description="The quality gate's verdict: metric, current, new, floor, reason.")
    error: str | None
    data: dict = Field(description="Rows and rejected rows per table, as validated that night.")
    canary: dict | None = Field(None, description="rollout: experiment: the experiment tonight's bundle "
                                "challenges the live one in (docs/experiments.md).")
    canary_decisions: list[dict] = Field(default_factory=list, description="Canaries promoted or rolled back "
                                         "since the previous night, each with its reason.")


class GateCheck(BaseModel):
    what: str = Field(description="The headline on tonight's holdout, or a guard (coverage, gini, fallback_share).")
    candidate: float | None
    live: float | None
    difference: float | None
    interval: list[float] | None = Field(description="The difference's bootstrap interval over shoppers (paired).")
    bound: float | None = Field(description="How much worse is refused (with confidence).")
    refused: bool


class OnlineRow(BaseModel):
    """What served lists earned (serving/online.py): the group's keys (absent when not grouped by
    them), then the counts and rates per impression (an item of a served list)."""
    day: date | None = None
    placement: str | None = None
    version: str | None = None
    variant: str | None = None
    channel: str | None = Field(None, description="A recall channel; 'none' for lists without channels.")
    rule: str | None = Field(None, description="A rule that moved the items; '' for items no rule moved.")
    position: int | None = None
    impressions: int
    clicks: int
    carts: int
    purchases: int
    revenue: float = Field(description="Price × quantity of the attributed purchases.")
    ctr: float = Field(description="Clicks per impression.")
    atc_rate: float = Field(description="Add-to-carts per impression.")
    conversion: float = Field(description="Purchases per impression.")
    rpm: float = Field(description="Revenue per 1,000 impressions.")


class PositionCtr(BaseModel):
    position: int
    lists: int = Field(description="Rendered lists (list_view) that had this position.")
    clicks: int
    ctr: float


class OnlineReport(BaseModel):
    logged: bool = Field(description="False: no served list logged yet (events off, or no traffic).")
    totals: OnlineRow | None
    daily: list[OnlineRow] = Field(description="Per day × placement.")
    channels: list[OnlineRow]
    rules: list[OnlineRow]
    versions: list[OnlineRow] = Field(description="Per bundle version × experiment variant.")
    positions: list[PositionCtr] = Field(description="CTR by position over the lists the pages rendered.")
    seconds: float = Field(description="Time DuckDB took over the logs (cached for a minute).")


class Tonight(BaseModel):
    live_version: str | None
    items: int
    shoppers: int
    night: Night | None = Field(description="The latest nightly run (null: none recorded).")
    deltas: list[Delta] = Field(description="Every headline metric: tonight's candidate against the live bundle.")
    gate: list[GateCheck] = Field(default_factory=list, description="The gate's checks: both bundles on the same "
                                  "holdout (pipelines/gate.py), or the stored-headline rule when it fell back.")
    online: OnlineRow | None = Field(None, description="What the live bundle earned online so far (all days and "
                                     "variants; null: nothing it served is logged).")


class Quality(BaseModel):
    nights: list[Night]


class Band(BaseModel):
    band: str
    low: int
    high: int
    items: int


class Exposed(BaseModel):
    item_id: ItemId
    title: str
    recommended: int


class CategoryExposure(BaseModel):
    category: str
    items: int
    never: int = Field(description="Live items of the category no sampled shopper was shown.")
    most: list[Exposed]
    never_sample: list[Exposed]


class ExposureReport(BaseModel):
    bundle_version: str
    source: Literal["served", "sample"] = Field(description="served: the lists this bundle really served (the "
                                                "served log); sample: home pages computed for sampled shoppers.")
    shoppers: int = Field(description="Lists counted: served lists, or sampled known shoppers' home pages (k items).")
    k: int
    coverage: float = Field(description="Share of the live catalog shown to at least one sampled shopper.")
    gini: float = Field(description="Gini of recommendation counts over live items (0 even, 1 one item).")
    fallback_share: float = Field(description="Share of pages the popular fallback served (no history).")
    long_tail: list[Band]
    categories: list[CategoryExposure]
    seconds: float = Field(description="Time the service's path took for the sample (cached afterwards).")


class PhotoCheck(BaseModel):
    item_id: ItemId
    title: str
    category: str = Field(description="The catalog's category.")
    predicted: str = Field(description="The image model's category.")
    confidence: float
    recommended: int = Field(description="Times shown in the exposure sample: the gallery's order.")
    image_url: str
    saliency_url: str


class PhotoChecks(BaseModel):
    bundle_version: str
    total: int
    items: list[PhotoCheck]


class LabelDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["accept", "dismiss"] = Field(description="accept: the product takes the category (the "
                                                   "image model's unless given); dismiss: the catalog is right.")
    category: str | None = None
    note: str = Field("", max_length=500)


class LabelResult(BaseModel):
    item_id: ItemId
    decision: str
    category: str = Field(description="The product's category now.")


class MapPoint(BaseModel):
    item_id: ItemId
    category: str
    x: float
    y: float


class CatalogMap(BaseModel):
    points: list[MapPoint]


class Confusion(BaseModel):
    classes: list[str]
    matrix: list[list[int]] = Field(description="Rows: catalog category; columns: the image model's prediction.")


class RuleList(BaseModel):
    rules: list[Rule]


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request: RecommendationRequest
    rules: list[Rule] = Field(default_factory=list, max_length=50,
                              description="Draft rules, applied on top of the saved ones (not saved).")


class PreviewResponse(BaseModel):
    page: RecommendationResponse = Field(description="With the saved rules and the drafts, each item explained.")
    baseline: RecommendationResponse = Field(description="With the saved rules only.")


class Shopper(BaseModel):
    user_id: str
    history: list[Item] = Field(description="Latest first.")
    purchased: int


class ShopperList(BaseModel):
    user_ids: list[str]


class ExperimentCard(BaseModel):
    experiment: Experiment
    analysis: Analysis | None = Field(None, description="Null: not analysed (ended long ago, or no event log).")


class ExperimentsReport(BaseModel):
    experiments: list[ExperimentCard] = Field(description="Newest first.")
    seconds: float
