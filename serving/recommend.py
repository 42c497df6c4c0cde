"""The online path of DESIGN.md: resolve the user -> user tower -> filtered FAISS top-N -> ranker ->
business rules -> one page of items. Plain functions on a :class:`LoadedBundle`; the routers only
translate HTTP to these calls."""

from __future__ import annotations

import time

import numpy as np

from serving.runtime import LoadedBundle
from serving.schemas import Filters, Item, RecommendationRequest, RecommendationResponse, Timings


class RequestError(ValueError):
    """The request is well-formed but cannot be answered as asked (-> HTTP 4xx with this message)."""


def items_out(b: LoadedBundle, rows: np.ndarray, scores: np.ndarray | None = None) -> list[Item]:
    return [Item(item_id=b.item_ids[r], title=b.titles[r], category=b.category[r], price=float(b.price[r]),
                 in_stock=bool(b.in_stock[r]), image_url=f"/images/{b.item_ids[r]}",
                 score=None if scores is None else float(scores[i])) for i, r in enumerate(rows)]


def filter_mask(b: LoadedBundle, f: Filters, extra_exclude: np.ndarray | None = None) -> np.ndarray:
    if f.categories is not None:
        unknown = sorted(set(f.categories) - set(b.category_names))
        if unknown:
            raise RequestError(f"unknown categories {unknown}; known: {b.category_names}")
    exclude = b.rows(f.exclude_item_ids)
    if extra_exclude is not None and len(extra_exclude):
        exclude = np.concatenate([exclude, extra_exclude])
    return b.allowed(categories=f.categories, price_min=f.price_min, price_max=f.price_max,
                     in_stock_only=f.in_stock_only, exclude=exclude)


def diversify(rows: np.ndarray, categories: np.ndarray, cap: int | None) -> np.ndarray:
    """Keep ranked order but at most ``cap`` items per category (items past the cap are dropped)."""
    if cap is None:
        return np.arange(len(rows))
    seen: dict[str, int] = {}
    keep = []
    for i, r in enumerate(rows):
        c = categories[r]
        if seen.get(c, 0) < cap:
            seen[c] = seen.get(c, 0) + 1
            keep.append(i)
    return np.asarray(keep, np.int64)


def recommend(b: LoadedBundle, req: RecommendationRequest, candidates: int) -> RecommendationResponse:
    t0 = time.perf_counter()
    tm = Timings()
    u = b.user_row.get(req.user_id) if req.user_id is not None else None
    session = b.rows(req.recent_item_ids)
    history = b.user_history[u] if u is not None else np.zeros(0, np.int64)
    if len(session):  # fresh clicks first, then the stored history without repeats
        history = np.concatenate([session, history[~np.isin(history, session)]])
    seen = np.unique(np.concatenate([session, b.user_seen[u]])) if u is not None else np.unique(session)
    purchased = b.user_purchased[u] if (u is not None and req.exclude_purchased) else None
    want = req.offset + req.k
    with b.lock.read():
        allowed = filter_mask(b, req, purchased)
        t1 = time.perf_counter()
        tm.user_ms = (t1 - t0) * 1e3
        if len(history) == 0:  # nobody we know anything about: popular items in scope
            ranked = b.popular[allowed[b.popular]]
            scores, fallback = None, "popular"
            t2 = t3 = time.perf_counter()
        else:
            uvec = b.user_vector(req.user_id, history)
            n = max(candidates, want)
            D, I = b.items_index.search(uvec[None], n, allowed=allowed)
            keep = I[0] >= 0
            cand, score = I[0][keep], D[0][keep]
            t2 = time.perf_counter()
            tm.retrieve_ms = (t2 - t1) * 1e3
            if len(cand):
                s = b.rank(uvec, cand, score, seen, history)
                order = np.argsort(-s, kind="stable")
                ranked, scores = cand[order], s[order]
            else:
                ranked, scores = cand, None
            fallback = None
            t3 = time.perf_counter()
            tm.rank_ms = (t3 - t2) * 1e3
        keep = diversify(ranked[: want * (1 if req.diversity is None else 20)], b.category, req.diversity)
        page = keep[req.offset : want]
        items = items_out(b, ranked[page], None if scores is None else scores[page])
    tm.rules_ms = (time.perf_counter() - t3) * 1e3
    tm.total_ms = (time.perf_counter() - t0) * 1e3
    return RecommendationResponse(items=items, bundle_version=b.version, fallback=fallback, user_known=u is not None,
                                  offset=req.offset, k=req.k, timings=tm)


def similar(b: LoadedBundle, row: int, by: str, k: int, f: Filters) -> list[Item]:
    """Nearest items to ``row`` by item-tower vector (behaviour) or CNN embedding (image), itself excluded."""
    index = b.items_index if by == "behaviour" else b.image_index
    with b.lock.read():
        allowed = filter_mask(b, f, np.array([row]))
        D, I = index.search(index.vectors[row][None], k, allowed=allowed)
        keep = I[0] >= 0
        return items_out(b, I[0][keep], D[0][keep])


def image_search(b: LoadedBundle, embedding: np.ndarray, k: int, f: Filters) -> list[Item]:
    with b.lock.read():
        allowed = filter_mask(b, f)
        D, I = b.image_index.search(embedding[None], k, allowed=allowed)
        keep = I[0] >= 0
        return items_out(b, I[0][keep], D[0][keep])
