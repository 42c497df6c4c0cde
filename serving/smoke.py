"""The service's smoke check: what it runs on a bundle before serving it. The nightly job runs the
same check before publishing (``check_servable``, the one function of ``serving`` that ``pipelines``
imports), so nothing the service would refuse is ever published."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bundle.versions import BundleError
from serving.loaded_bundle import LoadedBundle
from serving.recommend import recommend
from serving.schemas import RecommendationRequest
from serving.settings import ServingSettings


def smoke(b: LoadedBundle) -> None:
    """One model-path recommendation for a known user with history and one popular answer; raises on failure."""
    user = next(iter(b.shoppers.with_history(1)), None)
    if user is not None:
        r = recommend(b, RecommendationRequest(user_id=user, k=5, in_stock_only=False), b.settings.candidates)
        if r.fallback is not None or not r.items:
            raise BundleError("smoke query for a known shopper returned no model answer")  # no id: /readyz is public
        if not all(np.isfinite(i.score) for i in r.items):
            raise BundleError("smoke query produced non-finite scores")
    if not recommend(b, RecommendationRequest(k=5, in_stock_only=False), b.settings.candidates).items:
        raise BundleError("smoke query for popular items returned nothing")


def check_servable(path: Path, settings: ServingSettings | None = None) -> None:
    """What the service does with a bundle before serving it — load every file, smoke queries — run by
    the publisher (``write_bundle(smoke=...)``), so nothing the service would refuse is published."""
    smoke(LoadedBundle(path, settings or ServingSettings(artifacts_dir=path.parent.parent)))
