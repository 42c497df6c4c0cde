"""What gets recommended, measured by running the service's own path: exposure counts over a sample
of shoppers, catalog coverage, Gini, the long tail, the most and never recommended products per
category, the fallback share; photos to check ranked by exposure; a 2-D map of the image
embeddings and the classifier's confusion against the catalog. Plain functions, numpy in and out
(the merchandisers' console and ``/v1/analytics`` only call them)."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bundle.photo_predictions import suspect_rows
from serving.catalog import image_url
from serving.loaded_bundle import LoadedBundle
from serving.recommend import recommend_many
from serving.rules import RuleSet
from serving.saliency import catalog_overlay
from serving.schemas import RecommendationRequest

log = logging.getLogger(__name__)
SHOPPERS, K = 500, 10  # the console's exposure sample: home pages of this many known shoppers, k items each
GALLERY = 48  # photos to check shown per page


def coverage(counts: np.ndarray, live: np.ndarray) -> float:
    """Share of the live catalog recommended at least once."""
    n = int(live.sum())
    return float(((counts > 0) & live).sum() / n) if n else 0.0


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of recommendation counts over items (0: every item shown equally often;
    → 1: one item gets every impression). Sorted ascending x_1..x_n:
    G = sum_i (2i - n - 1) x_i / (n sum_i x_i)."""
    x = np.sort(np.asarray(counts, np.float64))
    n, total = len(x), x.sum()
    if n == 0 or total == 0:
        return 0.0
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * x).sum() / (n * total))


def long_tail(counts: np.ndarray, live: np.ndarray) -> list[dict]:
    """Live items per band of recommendation count: 0, 1, 2-3, 4-7, ... (powers of two)."""
    c = np.asarray(counts)[live]
    out = [{"band": "0", "low": 0, "high": 0, "items": int((c == 0).sum())}]
    low = 1
    while low <= max(int(c.max(initial=0)), 1):
        high = 2 * low - 1
        out.append({"band": str(low) if low == high else f"{low}-{high}", "low": low, "high": high,
                    "items": int(((c >= low) & (c <= high)).sum())})
        low *= 2
    return out


def by_category(counts: np.ndarray, category: np.ndarray, live: np.ndarray, top: int = 5) -> list[dict]:
    """Per category: live items, how many were never recommended, the most recommended rows
    (count descending, row ascending on ties) and some never-recommended rows (lowest rows first)."""
    out = []
    cats = pd.Series(category[: len(counts)])
    for name in sorted(cats[live].unique()):
        rows = np.flatnonzero(live & (cats.to_numpy() == name))
        c = counts[rows]
        order = np.lexsort((rows, -c))[:top]
        never = rows[c == 0]
        out.append({"category": str(name), "items": len(rows), "never": len(never),
                    "most": [(int(rows[i]), int(c[i])) for i in order if c[i] > 0],
                    "never_sample": [int(r) for r in never[:top]]})
    return out


@dataclass
class Exposure:
    """Recommendation counts per catalog row from ``requests`` pages of ``k`` items."""

    counts: np.ndarray  # (I,) int64
    requests: int
    fallback: int  # pages the popular fallback served
    k: int
    seconds: float


def sample_shoppers(b: LoadedBundle, n: int, seed: int = 0) -> list[str]:
    users = list(b.shoppers.row_of)
    rng = np.random.default_rng(seed)
    return [users[i] for i in sorted(rng.choice(len(users), min(n, len(users)), replace=False).tolist())]


def exposure(b: LoadedBundle, users: list[str], k: int, candidates: int, rules: RuleSet | None,
             batch: int = 32) -> Exposure:
    """Each shopper's home page (no filters but stock) through ``recommend_many``, rules included."""
    t = time.perf_counter()
    counts = np.zeros(b.catalog.n_items, np.int64)
    fallback = 0
    for s in range(0, len(users), batch):
        reqs = [RecommendationRequest(user_id=u, k=k) for u in users[s : s + batch]]
        for r in recommend_many(b, reqs, candidates, rules):
            if isinstance(r, Exception):
                continue
            fallback += r["fallback"] is not None
            rows = b.catalog.rows([i["item_id"] for i in r["items"]])
            np.add.at(counts, rows, 1)
    return Exposure(counts, len(users), fallback, k, time.perf_counter() - t)


class ExposureCache:
    """One exposure run per (bundle, rules, sample) for ``ttl_s``, the ``size`` most recently used kept:
    the console's pages share them, and a caller alternating parameters (the analytics routes need the
    read role) recomputes at most once per key and ``ttl_s``, one computation at a time."""

    def __init__(self, ttl_s: float = 300.0, size: int = 4) -> None:
        self.ttl_s, self.size, self.lock = ttl_s, size, threading.Lock()
        self.entries: OrderedDict[tuple, tuple[float, Exposure]] = OrderedDict()

    def get(self, b: LoadedBundle, rules: RuleSet, n_users: int, k: int, candidates: int) -> Exposure:
        key = (id(b), b.version, tuple(sorted(r.model_dump_json() for r in rules.rules)), b.labels_applied,
               len(b.catalog.live_rows), n_users, k)
        with self.lock:  # one computation at a time: two pages opened together wait for the first
            hit = self.entries.get(key)
            if hit is not None and time.monotonic() - hit[0] < self.ttl_s:
                self.entries.move_to_end(key)
                return hit[1]
            e = exposure(b, sample_shoppers(b, n_users), k, candidates, rules)
            self.entries[key] = (time.monotonic(), e)
            self.entries.move_to_end(key)
            while len(self.entries) > self.size:  # bundles and rule sets move on: the oldest go
                self.entries.popitem(last=False)
            return e

    def warm(self, b: LoadedBundle, rules: RuleSet, candidates: int) -> None:
        """Compute the default sample now (a thread started when a bundle is installed), so the
        console's first visit does not wait for it."""
        try:
            e = self.get(b, rules, SHOPPERS, K, candidates)
            log.info("exposure sample of %d shoppers computed in %.2f s", e.requests, e.seconds)
            if b.image_model is not None:  # the gallery's first page of saliency overlays
                for p in photos_to_check(b, e.counts, set())[:GALLERY]:
                    catalog_overlay(b, p["item_id"])
        except Exception:  # analytics must never take the service down
            log.exception("warming the exposure sample of %s failed", b.version)


def live_mask(b: LoadedBundle) -> np.ndarray:
    return np.asarray(b.items_index.live[: b.catalog.n_items], bool)


def class_names(b: LoadedBundle) -> list[str]:
    """The image model's categories ([] for a bundle without one)."""
    return b.image_model.class_names if b.image_model is not None else []


def class_codes(b: LoadedBundle) -> np.ndarray:
    """Each row's catalog category as an index into the image model's class names (-1: not a class)."""
    return b.catalog.index_in(class_names(b))


def photos_to_check(b: LoadedBundle, counts: np.ndarray, decided: set[str]) -> list[dict]:
    """Suspected mislabeled live products not decided yet, most recommended first (then the CNN's
    confidence, then the row): the mistakes shoppers see most are fixed first."""
    if b.photos is None:
        return []
    rows = suspect_rows(b.photos, class_codes(b), live_mask(b))
    rows = np.array([r for r in rows.tolist() if b.catalog.item_ids[r] not in decided], np.int64)
    if not len(rows):
        return []
    conf = b.photos.confidence[rows]
    order = np.lexsort((rows, -conf, -counts[rows]))
    names = class_names(b)
    return [{"item_id": b.catalog.item_ids[r], "title": b.catalog.titles[r], "category": b.catalog.category_of(r),
             "predicted": names[int(b.photos.predicted[r])], "confidence": float(b.photos.confidence[r]),
             "recommended": int(counts[r]), "image_url": image_url(b.catalog.item_ids[r])}
            for r in rows[order].tolist()]


def confusion(b: LoadedBundle) -> dict:
    """Catalog category (rows) against the image model's prediction (columns), live photos only."""
    names = class_names(b)
    if b.photos is None or not names:
        return {"classes": names, "matrix": []}
    cat, pred = class_codes(b), b.photos.predicted[: b.catalog.n_items].astype(np.int64)
    ok = (cat >= 0) & (pred >= 0) & live_mask(b)
    m = np.zeros((len(names), len(names)), np.int64)
    np.add.at(m, (cat[ok], pred[ok]), 1)
    return {"classes": names, "matrix": m.tolist()}


def embedding_map(b: LoadedBundle, n: int = 3000, seed: int = 0) -> dict:
    """A 2-D PCA projection of the image embeddings of ``n`` random live products."""
    if b.image_index is None:
        return {"points": []}
    rows = np.flatnonzero(live_mask(b) & (np.linalg.norm(b.image_index.vectors[: b.catalog.n_items], axis=1) > 0))
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(rows, min(n, len(rows)), replace=False))
    X = np.asarray(b.image_index.vectors[rows], np.float64)
    X -= X.mean(0)
    _, _, Vt = np.linalg.svd(X, full_matrices=False)
    xy = X @ Vt[:2].T  # (n, 2)
    cats, ids = b.catalog.category_of(rows).tolist(), b.catalog.item_ids
    return {"points": [{"item_id": ids[r], "category": c, "x": round(float(x), 4), "y": round(float(y), 4)}
                       for r, c, (x, y) in zip(rows.tolist(), cats, xy.tolist(), strict=True)]}
