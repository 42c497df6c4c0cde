"""The online path of DESIGN.md: resolve the user -> user tower -> filtered FAISS top-N -> ranker ->
business rules -> one page of items. Plain functions on a :class:`LoadedBundle`; the routers only
translate HTTP to these calls."""

from __future__ import annotations

import time
from dataclasses import dataclass

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


@dataclass
class _Ctx:
    """One request on its way through the batch."""

    req: RecommendationRequest
    t0: float
    u: int | None
    history: np.ndarray
    seen: np.ndarray
    allowed: np.ndarray  # the request's filters (shared by requests with the same filters)
    purchased: np.ndarray  # the user's own exclusions on top of ``allowed``
    timings: Timings
    cand: np.ndarray | None = None  # retrieved rows, tower order
    score: np.ndarray | None = None


def _prepare(b: LoadedBundle, req: RecommendationRequest, masks: dict | None = None) -> _Ctx:
    t0 = time.perf_counter()
    u = b.user_row.get(req.user_id) if req.user_id is not None else None
    session = b.rows(req.recent_item_ids)
    history = b.user_history[u] if u is not None else np.zeros(0, np.int64)
    if len(session):  # fresh clicks first, then the stored history without repeats
        history = np.concatenate([session, history[~np.isin(history, session)]])
    seen = np.unique(np.concatenate([session, b.user_seen[u]])) if u is not None else np.unique(session)
    purchased = b.user_purchased[u] if (u is not None and req.exclude_purchased) else np.zeros(0, np.int64)
    allowed = masks.get(_filter_key(req)) if masks is not None else None
    if allowed is None:
        allowed = filter_mask(b, req)
        if masks is not None:
            masks[_filter_key(req)] = allowed
    return _Ctx(req, t0, u, history, seen, allowed, purchased, Timings(user_ms=(time.perf_counter() - t0) * 1e3))


def _filter_key(req: RecommendationRequest) -> tuple:
    return (tuple(req.categories) if req.categories is not None else None, req.price_min, req.price_max,
            req.in_stock_only, tuple(req.exclude_item_ids))


def _retrieve_group(b: LoadedBundle, ctxs: list[_Ctx], U: np.ndarray, candidates: int) -> None:
    """One FAISS call for requests with the same filters: over-fetch by the largest purchase list,
    then drop each user's own purchases, so every request keeps its top-N allowed candidates."""
    t1 = time.perf_counter()
    extra = max(len(c.purchased) for c in ctxs)
    n = max(candidates, max(c.req.offset + c.req.k for c in ctxs))
    D, I = b.items_index.search(U, n + extra, allowed=ctxs[0].allowed)
    per = (time.perf_counter() - t1) * 1e3 / len(ctxs)
    for c, d, i in zip(ctxs, D, I, strict=True):
        keep = i >= 0
        if len(c.purchased):
            keep &= ~np.isin(i, c.purchased)
        c.cand, c.score = i[keep][:n], d[keep][:n]
        c.timings.retrieve_ms = per


def _finish(b: LoadedBundle, c: _Ctx, ranked: np.ndarray, scores: np.ndarray | None,
            fallback: str | None) -> RecommendationResponse:
    req, tm = c.req, c.timings
    t3 = time.perf_counter()
    want = req.offset + req.k
    keep = diversify(ranked[: want * (1 if req.diversity is None else 20)], b.category, req.diversity)
    page = keep[req.offset : want]
    items = items_out(b, ranked[page], None if scores is None else scores[page])
    tm.rules_ms = (time.perf_counter() - t3) * 1e3
    tm.total_ms = (time.perf_counter() - c.t0) * 1e3
    return RecommendationResponse(items=items, bundle_version=b.version, fallback=fallback,
                                  user_known=c.u is not None, offset=req.offset, k=req.k, timings=tm)


def recommend_many(b: LoadedBundle, reqs: list[RecommendationRequest], candidates: int
                   ) -> list[RecommendationResponse | Exception]:
    """The online path for a batch of concurrent requests: one user-tower call and one ranker call
    for all of them, one FAISS call per distinct set of filters. A request's error is its own."""
    out: list[RecommendationResponse | Exception] = [RequestError("not processed")] * len(reqs)
    with b.lock.read():
        ctxs: dict[int, _Ctx] = {}
        masks: dict[tuple, np.ndarray] = {}  # requests with the same filters share one mask
        for i, r in enumerate(reqs):
            try:
                ctxs[i] = _prepare(b, r, masks)
            except RequestError as e:
                out[i] = e
        model = [i for i, c in ctxs.items() if len(c.history)]
        for i, c in ctxs.items():
            if not len(c.history):  # nobody we know anything about: popular items in scope
                ranked = b.popular[c.allowed[b.popular]]
                if len(c.purchased):
                    ranked = ranked[~np.isin(ranked, c.purchased)]
                out[i] = _finish(b, c, ranked, None, "popular")
        if not model:
            return out
        t = time.perf_counter()
        U = b.user_vectors([reqs[i].user_id for i in model], [ctxs[i].history for i in model])
        per = (time.perf_counter() - t) * 1e3 / len(model)
        groups: dict[tuple, list[int]] = {}
        for j, i in enumerate(model):
            ctxs[i].timings.user_ms += per
            groups.setdefault(_filter_key(reqs[i]), []).append(j)
        for js in groups.values():
            _retrieve_group(b, [ctxs[model[j]] for j in js], U[js], candidates)
        inputs = {}
        for j, i in enumerate(model):
            c = ctxs[i]
            if not len(c.cand):
                out[i] = _finish(b, c, c.cand, None, None)
                continue
            t = time.perf_counter()
            inputs[i] = b.rank_inputs(U[j], c.cand, c.score, c.seen, c.history)
            c.timings.rank_ms = (time.perf_counter() - t) * 1e3
        if inputs:
            t = time.perf_counter()
            scores = b.rank_many(list(inputs.values()))
            per = (time.perf_counter() - t) * 1e3 / len(inputs)
            for i, s in zip(inputs, scores, strict=True):
                c = ctxs[i]
                c.timings.rank_ms += per
                order = np.argsort(-s, kind="stable")
                out[i] = _finish(b, c, c.cand[order], s[order], None)
    return out


def recommend(b: LoadedBundle, req: RecommendationRequest, candidates: int) -> RecommendationResponse:
    r = recommend_many(b, [req], candidates)[0]
    if isinstance(r, Exception):
        raise r
    return r


def nearest(b: LoadedBundle, by: str, query: np.ndarray, k: int, f: Filters,
            exclude: np.ndarray | None = None) -> list[Item]:
    """Filtered neighbours of a vector in the behaviour (item-tower) or image index."""
    with b.lock.read():
        allowed = filter_mask(b, f, exclude)
        D, I = b.index(by).search(query[None], k, allowed=allowed)
        keep = I[0] >= 0
        return items_out(b, I[0][keep], D[0][keep])


def similar(b: LoadedBundle, row: int, by: str, k: int, f: Filters) -> list[Item]:
    """Nearest items to ``row`` by item-tower vector (behaviour) or CNN embedding (image), itself excluded."""
    return nearest(b, by, b.index(by).vectors[row], k, f, np.array([row]))
