"""The service's state: the bundle being served (swapped whole on reload), what reload needs, the
merchandisers' rules and label decisions, and the micro-batcher that runs concurrent
recommendation requests as one model call."""

from __future__ import annotations

import threading

from fastapi import HTTPException

from serving.analytics import ExposureCache
from serving.batcher import Batcher
from serving.loaded_bundle import LoadedBundle
from serving.merch_store import MerchStore
from serving.metrics import BATCH
from serving.recommend import recommend_many
from serving.schemas import RecommendationRequest
from serving.settings import ServingSettings


class ServiceState:
    def __init__(self, settings: ServingSettings) -> None:
        self.settings = settings
        self.bundle: LoadedBundle | None = None
        self.reload_lock = threading.Lock()
        self.last_error: str | None = None
        self.degraded: str | None = None  # serving an older bundle than CURRENT names, and why
        self.decodes = threading.BoundedSemaphore(settings.max_concurrent_decodes)  # serving/limits.py
        self.exposure_cache = ExposureCache()  # the console's exposure sample (serving/analytics.py)
        self.merch = MerchStore(settings.artifacts_dir, poll_s=settings.changes_poll_s or 1.0)  # rules, labels
        self.batcher = Batcher(self._recommend_batch, max_batch=settings.max_batch,
                               max_wait_s=settings.batch_wait_ms / 1e3)

    def require_bundle(self) -> LoadedBundle:
        """The bundle a request should use from start to end; 503 before the first one is loaded."""
        b = self.bundle
        if b is None:
            raise HTTPException(503, "no bundle loaded yet")
        return b

    def _recommend_batch(self, items: list[tuple[LoadedBundle, RecommendationRequest]]) -> list:
        """Requests grouped by the bundle they started on (two groups only across a reload)."""
        BATCH.observe(len(items))
        out: list = [None] * len(items)
        rules = self.merch.rules()
        groups: dict[int, list[int]] = {}
        for i, (b, _) in enumerate(items):
            groups.setdefault(id(b), []).append(i)
        for idx in groups.values():
            b = items[idx[0]][0]
            answers = recommend_many(b, [items[i][1] for i in idx], self.settings.candidates, rules)
            for i, r in zip(idx, answers, strict=True):
                out[i] = r
        return out
