"""The online path (docs/architecture.md, "One request"): resolve the user -> user tower -> filtered
FAISS top-N -> union with the item-to-item and popular-in-category channels -> ranker -> business
rules -> one page of items. Plain functions on a
:class:`LoadedBundle`; the routers only translate HTTP to these calls."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from recsys.channels import Candidates, candidates_of, union_block
from serving.errors import RequestError
from serving.explain import reasons
from serving.loaded_bundle import LoadedBundle
from serving.rules import Rule, RuleEffect, RuleSet, apply_pins, apply_ranking_rules, excluded_rows, page_category
from serving.schemas import Filters, RecommendationRequest, RecommendationResponse


def items_out(b: LoadedBundle, rows: np.ndarray, scores: np.ndarray | None = None) -> list[dict]:
    """Item records (the fields of :class:`Item`, in its order) for catalog rows, as plain dicts of
    Python scalars: routes serialise them directly or validate them into their response model."""
    rows = np.asarray(rows, np.int64)
    ids, price, stock = b.item_ids, b.price[rows].tolist(), b.in_stock[rows].tolist()
    sc = [None] * len(rows) if scores is None else [x if x == x else None for x in scores.tolist()]  # NaN: unscored
    return [{"item_id": ids[r], "title": b.titles[r], "category": b.category[r], "price": price[i],
             "in_stock": stock[i], "image_url": f"/images/{ids[r]}", "score": sc[i], "reason": None}
            for i, r in enumerate(rows.tolist())]


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
    profile: tuple[np.ndarray, np.ndarray]  # long-term profile (rows, weights), session clicks included
    seen: np.ndarray
    allowed: np.ndarray  # the request's filters (shared by requests with the same filters)
    purchased: np.ndarray  # the user's own exclusions on top of ``allowed``
    ms: dict[str, float]  # stage -> milliseconds (a plain dict: pydantic attribute writes cost µs each)
    cand: np.ndarray | None = None  # the candidates in the ranker's order (the model path)
    score: np.ndarray | None = None  # their ranker scores
    channels: Candidates | None = None  # the candidates as the ranker received them, with the channels' view
    rules: list[Rule] | None = None  # the merchandising rules in effect for this request


_NONE = np.zeros(0, np.int64)
_NONE.flags.writeable = False


def _prepare(b: LoadedBundle, req: RecommendationRequest, masks: dict, rules: RuleSet | None) -> _Ctx:
    t0 = time.perf_counter()
    active = rules.for_request(datetime.now(UTC), page_category(req.categories)) if rules else []
    u = b.user_row.get(req.user_id) if req.user_id is not None else None
    session = b.rows(req.recent_item_ids)
    history = b.user_history[u] if u is not None else _NONE
    seen = b.user_seen[u] if u is not None else _NONE  # stored distinct (order is irrelevant)
    if len(session):  # fresh clicks first, then the stored history without repeats
        history = np.concatenate([session, history[~np.isin(history, session, kind="table")]])
        seen = np.union1d(seen, session)
    purchased = b.user_purchased[u] if (u is not None and req.exclude_purchased) else _NONE
    key = _filter_key(req)
    allowed = masks.get(key)
    if allowed is None:  # the request's filters and the exclude rules (the same for the same filters)
        gone = excluded_rows(active, b.row_of, b.stats.category[: b.n_items], b.spec.category_vocab.encode)
        allowed = masks[key] = filter_mask(b, req, gone)
    ms = {"user_ms": (time.perf_counter() - t0) * 1e3, "retrieve_ms": 0.0, "rank_ms": 0.0}
    return _Ctx(req, t0, u, history, b.profile(u, session), seen, allowed, purchased, ms, rules=active)


def _filter_key(req: RecommendationRequest) -> tuple:
    return (tuple(req.categories) if req.categories is not None else None, req.price_min, req.price_max,
            req.in_stock_only, tuple(req.exclude_item_ids))


def _page_depth(req: RecommendationRequest) -> int:
    """Ranked items the business rules may look at to fill the page (more when capping categories)."""
    return (req.offset + req.k) * (1 if req.diversity is None else 20)


def _popular(b: LoadedBundle, c: _Ctx) -> np.ndarray:
    """The most popular allowed rows, as many as the page can use: the popularity order is scanned
    in growing prefixes instead of masking all of it (70k rows) for every anonymous request."""
    want, n = _page_depth(c.req), 256
    while True:
        head = b.popular[:n]
        ranked = head[c.allowed[head]]
        if len(c.purchased):
            ranked = ranked[~np.isin(ranked, c.purchased, kind="table")]
        if len(ranked) >= want or n >= len(b.popular):
            return ranked
        n *= 8


def _candidates(b: LoadedBundle, ctxs: list[_Ctx], U: np.ndarray, size: int) -> tuple[np.ndarray, ...]:
    """Candidates for requests with the same filters (``_filter_key``), one call per stage: FAISS
    over-fetches by the largest purchase list; the union (recsys.channels.union_block: the tower's
    list less each shopper's purchases, then the channels' candidates, the lists the ranker was
    trained on) fills one block: rows (B, C), channel features (B, C, 5), lengths (B,). ``size``:
    the union's size; a page deeper than that widens it (the tower's list fills the extra places)."""
    n = max(size, max(c.req.offset + c.req.k for c in ctxs))
    _, I = b.items_index.search(U, n + max(len(c.purchased) for c in ctxs), allowed=ctxs[0].allowed)  # (B, T)
    return union_block(b.channels, I, [c.seen for c in ctxs], [c.history for c in ctxs], ctxs[0].allowed,
                       b.stats.category, n, [c.purchased for c in ctxs], n_tower=n)


def _ranked(b: LoadedBundle, model: list[_Ctx], U: np.ndarray, groups: list[list[int]], size: int) -> None:
    """Every model-path request's candidates in the ranker's order: ``_candidates`` per filter set,
    then one ranker call over all their blocks (padded to the widest)."""
    t = time.perf_counter()
    blocks = [_candidates(b, [model[j] for j in js], U[js], size) for js in groups]
    order = [j for js in groups for j in js]
    rows, feats, lens = blocks[0]
    if len(blocks) > 1:  # several filter sets: one block, zero-padded to the widest (a deep page's)
        C = max(r.shape[1] for r, _, _ in blocks)
        rows = np.concatenate([np.pad(r, ((0, 0), (0, C - r.shape[1]))) for r, _, _ in blocks])  # (B, C)
        feats = np.concatenate([np.pad(f, ((0, 0), (0, C - f.shape[1]), (0, 0))) for _, f, _ in blocks])
        lens = np.concatenate([n for _, _, n in blocks])
    ctxs = [model[j] for j in order]
    t2 = time.perf_counter()
    scores = b.rank_block(U[order], rows, [c.seen for c in ctxs], [c.history for c in ctxs], feats)  # (B, C)
    t3 = time.perf_counter()
    for c, got, s in zip(ctxs, candidates_of(rows, feats, lens), scores, strict=True):
        c.ms["retrieve_ms"], c.ms["rank_ms"] = (t2 - t) * 1e3 / len(ctxs), (t3 - t2) * 1e3 / len(ctxs)
        c.channels = got
        by = np.argsort(-s[: len(got.rows)], kind="stable")
        c.cand, c.score = got.rows[by], s[by]


def _finish(b: LoadedBundle, c: _Ctx, ranked: np.ndarray, scores: np.ndarray | None, fallback: str | None) -> dict:
    """Business rules (serving/rules.py: boost / bury, the category cap, pins; excludes are already in
    the filter mask), pagination, the item records; with ``explain``, each item's reason."""
    req = c.req
    t3 = time.perf_counter()
    ranked = np.asarray(ranked, np.int64)
    effect = RuleEffect()
    before = ranked
    if any(r.action in ("boost", "bury") for r in c.rules):
        order = apply_ranking_rules(c.rules, ranked, b.row_of, b.category, effect)
        ranked, scores = ranked[order], None if scores is None else scores[order]
    keep = diversify(ranked[: _page_depth(req)], b.category, req.diversity)
    listed, listed_scores = ranked[keep], None if scores is None else scores[keep]
    if any(r.action == "pin" for r in c.rules):
        def allowed(row: int) -> bool:  # the filters, hidden products and exclude rules, then purchases
            return row < len(c.allowed) and bool(c.allowed[row]) and row not in c.purchased
        pinned = apply_pins(c.rules, listed, b.row_of, allowed, effect)
        if listed_scores is not None:  # a pinned product keeps its score if it was ranked, else none
            score_of = dict(zip(listed.tolist(), listed_scores.tolist(), strict=True))
            listed_scores = np.array([score_of.get(r, np.nan) for r in pinned.tolist()], np.float64)
        listed = pinned
    page = listed[req.offset : req.offset + req.k]
    page_scores = None if listed_scores is None else listed_scores[req.offset : req.offset + req.k]
    items = items_out(b, page, page_scores)
    if req.explain:
        why = reasons(b.items_index.vectors, b.item_ids, page, c.history,
                      before if fallback else c.channels.rows, None if fallback else before,
                      c.channels, effect.by_row, fallback)
        for item, r in zip(items, why, strict=True):
            item["reason"] = r
    t4 = time.perf_counter()
    timings = c.ms | {"rules_ms": (t4 - t3) * 1e3, "total_ms": (t4 - c.t0) * 1e3}
    return {"items": items, "bundle_version": b.version, "fallback": fallback, "user_known": c.u is not None,
            "offset": req.offset, "k": req.k, "timings": timings}


def recommend_many(b: LoadedBundle, reqs: list[RecommendationRequest], candidates: int,
                   rules: RuleSet | None = None) -> list[dict | Exception]:
    """The online path for a batch of concurrent requests: one user-tower call and one ranker call
    for all of them, and per distinct set of filters one FAISS call and one union call
    (``_ranked``). A request's error is its own.

    Answers are plain dicts in the shape of :class:`RecommendationResponse`, built from the bundle's
    typed arrays: the route serialises them with ``pydantic_core.to_json`` (the same bytes as the
    model's ``model_dump_json``, tested) without validating them into the model first."""
    out: list[dict | Exception] = [RequestError("not processed")] * len(reqs)
    with b.lock.read():
        ctxs: dict[int, _Ctx] = {}
        masks: dict[tuple, np.ndarray] = {}  # requests with the same filters share one mask
        for i, r in enumerate(reqs):
            try:
                ctxs[i] = _prepare(b, r, masks, rules)
            except RequestError as e:
                out[i] = e
        for i, c in ctxs.items():
            if not len(c.history):  # nobody we know anything about: popular items in scope
                out[i] = _finish(b, c, _popular(b, c), None, "popular")
        at = [i for i, c in ctxs.items() if len(c.history)]  # the model path's requests
        model = [ctxs[i] for i in at]
        if not model:
            return out
        t = time.perf_counter()
        U = b.user_vectors([c.req.user_id for c in model], [c.history for c in model],
                           [c.profile for c in model])  # (B, D)
        per = (time.perf_counter() - t) * 1e3 / len(model)
        groups: dict[tuple, list[int]] = {}
        for j, c in enumerate(model):
            c.ms["user_ms"] += per
            groups.setdefault(_filter_key(c.req), []).append(j)
        extra = b.channels.config.extra if b.channels is not None else 0
        _ranked(b, model, U, list(groups.values()), candidates + extra)  # the tower fills what the channels leave
        for i, c in zip(at, model, strict=True):
            out[i] = _finish(b, c, c.cand, c.score if len(c.cand) else None, None)
    return out


def recommend(b: LoadedBundle, req: RecommendationRequest, candidates: int,
              rules: RuleSet | None = None) -> RecommendationResponse:
    """One request, answer validated into the response model (the smoke query, previews, tests)."""
    r = recommend_many(b, [req], candidates, rules)[0]
    if isinstance(r, Exception):
        raise r
    return RecommendationResponse.model_validate(r)


def nearest(b: LoadedBundle, by: str, query: np.ndarray, k: int, f: Filters,
            exclude: np.ndarray | None = None) -> list[dict]:
    """Filtered neighbours of a vector in the behaviour (item-tower) or image index."""
    with b.lock.read():
        allowed = filter_mask(b, f, exclude)
        D, I = b.index(by).search(query[None], k, allowed=allowed)
        keep = I[0] >= 0
        return items_out(b, I[0][keep], D[0][keep])


def similar(b: LoadedBundle, row: int, by: str, k: int, f: Filters) -> list[dict]:
    """Nearest items to ``row`` by item-tower vector (behaviour) or CNN embedding (image), itself excluded."""
    return nearest(b, by, b.index(by).vectors[row], k, f, np.array([row]))
