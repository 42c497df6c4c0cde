"""The served path run offline over a holdout: what the nightly gate scores both tonight's candidate
and the live bundle with (pipelines/gate.py), so the two are compared on the same shoppers through
the same code the storefront calls. One of the two functions of ``serving`` that ``pipelines``
imports (the other: serving/smoke.py ``check_servable``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.shopper_state import user_states
from serving.loaded_bundle import LoadedBundle
from serving.recommend import recommend_many
from serving.schemas import RecommendationRequest
from serving.settings import ServingSettings
from serving.shoppers import Shoppers

EXCLUDE_CAP = 1000  # the request schema's limit on exclude_item_ids


@dataclass
class HoldoutPages:
    """What a bundle served each shopper of a holdout."""

    version: str
    pages: list[list[str]]  # per shopper, the page's item ids (best first)
    fallback: np.ndarray  # (U,) bool: the popular fallback answered (the bundle knew nothing of them)
    n_items: int  # the bundle's catalog (coverage's denominator)
    known_items: set[str]  # ids the bundle's catalog holds
    seconds: float  # loading and serving


def serve_holdout(path: Path, users: pd.DataFrame, events: pd.DataFrame, exclude: list[list[str]], k: int, *,
                  candidates: int = 100, manifest: dict | None = None, batch: int = 32,
                  now: pd.Series | None = None, discovery_only: bool = False,
                  edit: Callable[[LoadedBundle], None] | None = None) -> HoldoutPages:
    """Load the bundle in ``path`` as the service does, give each shopper of ``users`` (rows of the
    dataset's users table) the state ``events`` say — encoded by the bundle's own feature spec, so a
    bundle's stored state (which may hold the items it is scored on) is not used — and ask
    ``recommend_many``, the function behind ``POST /v1/recommendations``, for ``k`` items each with
    their ``exclude`` items out (the items they already touched: the masked protocol). No
    merchandising rules: the gate compares models. ``manifest``: this process already verified it.
    For the placements' benchmarks (recsys/placements.py): ``now``, each shopper's request time (their
    touches' ages; None: the last event's); ``discovery_only``: the home page's switch; ``edit``: called
    with the loaded bundle before the first request (a benchmark's variant of it)."""
    t = time.perf_counter()
    b = LoadedBundle(path, ServingSettings(artifacts_dir=path.parent.parent, candidates=candidates,
                                           warm_analytics=False), manifest=manifest)
    b.shoppers = Shoppers(user_states(events, users, b.spec, now), b.spec)
    if edit is not None:
        edit(b)
    reqs = [RecommendationRequest(user_id=str(u), k=k, in_stock_only=False, exclude_purchased=False,
                                  exclude_item_ids=list(ex[:EXCLUDE_CAP]), discovery_only=discovery_only)
            for u, ex in zip(users["user_id"], exclude, strict=True)]
    pages: list[list[str]] = []
    fallback = np.zeros(len(reqs), bool)
    for s in range(0, len(reqs), batch):
        for j, r in enumerate(recommend_many(b, reqs[s : s + batch], candidates)):
            if isinstance(r, Exception):
                raise r
            pages.append([i["item_id"] for i in r["items"]])
            fallback[s + j] = r["fallback"] is not None
    return HoldoutPages(b.version, pages, fallback, b.catalog.n_items, set(b.catalog.item_ids.tolist()),
                        time.perf_counter() - t)
