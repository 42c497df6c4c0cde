"""The online path (docs/architecture.md, "One request"), read forward; each stage is a function of
the previous one's output:

    prepare   the shopper (stored state + session clicks), the rules compiled for the request, the
              filter mask (filters, hidden products, exclude rules)
    retrieve  one user-tower call for the batch; per distinct filter set one FAISS call and one union
              + features call (recsys/ranking.py ``candidate_block``)
    rank      one ranker call for the batch (recsys/ranking.py ``RankerModel``); each list in its order
    page      the business rules (serving/rules.py ``RulePlan``: move, cap, place), pagination, the
              item records, with ``explain`` each item's reason

A shopper with no history skips retrieve and rank: the popular items in scope. Plain functions on a
:class:`LoadedBundle`; the routers only translate HTTP to these calls."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from recsys.channels import Candidates, candidates_of
from recsys.ranking import Block, candidate_block, stack_blocks
from serving.errors import RequestError
from serving.explain import reasons
from serving.loaded_bundle import LoadedBundle
from serving.placements import KEEPS_PURCHASES, OWN_LISTS, SOURCE, home_merge, own_list
from serving.realtime import RecentEvents
from serving.rules import RulePlan, RuleSet
from serving.schemas import Filters, RecommendationRequest, RecommendationResponse
from serving.shoppers import Shopper

NO_RULES = RuleSet([])


def filter_mask(b: LoadedBundle, f: Filters, extra_exclude: np.ndarray | None = None) -> np.ndarray:
    """(I,) bool: the rows a request's filters allow (hidden products never), less ``extra_exclude``."""
    if f.categories is not None:
        b.catalog.check_categories(f.categories)
    exclude = b.catalog.rows(f.exclude_item_ids)
    if extra_exclude is not None and len(extra_exclude):
        exclude = np.concatenate([exclude, extra_exclude])
    return b.allowed(categories=f.categories, price_min=f.price_min, price_max=f.price_max,
                     in_stock_only=f.in_stock_only, exclude=exclude)


@dataclass
class Prepared:
    """A request after ``prepare``."""

    req: RecommendationRequest
    t0: float
    shopper: Shopper
    allowed: np.ndarray  # (I,) the request's filters and exclude rules (shared by requests with the same filters)
    plan: RulePlan  # the merchandising rules in effect for this request
    ms: dict[str, float]  # stage -> milliseconds (a plain dict: pydantic attribute writes cost µs each)


@dataclass
class Ranked:
    """A model-path request after ``rank``: its candidates in the ranker's order."""

    rows: np.ndarray
    scores: np.ndarray
    candidates: Candidates  # the union as the ranker received it, with the channels' view of it


def _filter_key(req: RecommendationRequest) -> tuple:
    return (tuple(req.categories) if req.categories is not None else None, req.price_min, req.price_max,
            req.in_stock_only, tuple(req.exclude_item_ids))


def _page_depth(req: RecommendationRequest) -> int:
    """Ranked items the business rules may look at to fill the page (more when capping categories)."""
    return (req.offset + req.k) * (1 if req.diversity is None else 20)


def prepare(b: LoadedBundle, req: RecommendationRequest, masks: dict, rules: RuleSet,
            live: RecentEvents | None = None) -> Prepared:
    t0 = time.perf_counter()
    plan = rules.plan(b.catalog, req.categories)
    clicks, bought, carted = req.recent_item_ids, [], []
    if live is not None and (req.user_id or req.session_id):  # what they did since the bundle (serving/realtime.py)
        seen_live, bought, carted = live.recent(req.user_id, req.session_id)
        if seen_live:
            clicks = list(dict.fromkeys([*req.recent_item_ids, *seen_live]))
    keep = not req.exclude_purchased or req.placement in KEEPS_PURCHASES
    shopper = b.shoppers.resolve(req.user_id, b.catalog.rows(clicks), keep_purchased=keep,
                                 also_purchased=b.catalog.rows(bought) if bought and not keep else None,
                                 bought_live=b.catalog.rows(bought) if bought else None,
                                 carted_live=b.catalog.rows(carted) if carted else None)
    key = _filter_key(req)
    allowed = masks.get(key)
    if allowed is None:  # the request's filters and the exclude rules (the same for the same filters)
        allowed = masks[key] = filter_mask(b, req, plan.excluded())
    ms = {"user_ms": (time.perf_counter() - t0) * 1e3, "retrieve_ms": 0.0, "rank_ms": 0.0}
    return Prepared(req, t0, shopper, allowed, plan, ms)


def popular(b: LoadedBundle, p: Prepared) -> np.ndarray:
    """The most popular allowed rows, as many as the page can use: the popularity order is scanned
    in growing prefixes instead of masking all of it (70k rows) for every anonymous request."""
    want, n = _page_depth(p.req), 256
    while True:
        head = b.popular[:n]
        ranked = head[p.allowed[head]]
        if len(p.shopper.purchased):
            ranked = ranked[~np.isin(ranked, p.shopper.purchased, kind="table")]
        if len(ranked) >= want or n >= len(b.popular):
            return ranked
        n *= 8


def _group_block(b: LoadedBundle, ps: list[Prepared], U: np.ndarray, size: int) -> Block:
    """Candidates for requests with the same filters: FAISS over-fetches by the largest purchase
    list; the union (the tower's list less each shopper's purchases, then the channels' candidates,
    the lists the ranker was trained on) and their features. ``size``: the union's size; a page
    deeper than that widens it (the tower's list fills the extra places)."""
    n = max(size, max(p.req.offset + p.req.k for p in ps))
    _, I = b.items_index.search(U, n + max(len(p.shopper.purchased) for p in ps), allowed=ps[0].allowed)  # (B, T)
    return candidate_block(b.channels, I, U, b.items_index.vectors, [p.shopper.seen for p in ps],
                           [p.shopper.history for p in ps], ps[0].allowed, b.catalog.stats,
                           b.spec.category_vocab.size, n, blocked=[p.shopper.purchased for p in ps], n_tower=n)


def retrieve(b: LoadedBundle, model: list[Prepared], size: int) -> tuple[list[Prepared], np.ndarray, Block]:
    """The model path's candidates for the batch: one user-tower call, then ``_group_block`` per
    distinct filter set, stacked into one block (padded to the widest). Returns the requests in the
    block's order, their user vectors (B, D) and the block."""
    t = time.perf_counter()
    U = b.user_vectors([p.req.user_id for p in model], [p.shopper.history for p in model],
                       [p.shopper.profile for p in model])  # (B, D)
    per = (time.perf_counter() - t) * 1e3 / len(model)
    groups: dict[tuple, list[int]] = {}
    for j, p in enumerate(model):
        p.ms["user_ms"] += per
        groups.setdefault(_filter_key(p.req), []).append(j)
    t = time.perf_counter()
    block = stack_blocks([_group_block(b, [model[j] for j in js], U[js], size) for js in groups.values()])
    order = [j for js in groups.values() for j in js]
    per = (time.perf_counter() - t) * 1e3 / len(model)
    for p in model:
        p.ms["retrieve_ms"] = per
    return [model[j] for j in order], U[order], block


def rank(b: LoadedBundle, ps: list[Prepared], U: np.ndarray, block: Block) -> list[Ranked]:
    """One ranker call over the block; each request's candidates in the ranker's order."""
    t = time.perf_counter()
    scores = b.ranker.score(block, U, b.catalog.codes)  # (B, C)
    per = (time.perf_counter() - t) * 1e3 / len(ps)
    out = []
    for p, got, s in zip(ps, candidates_of(block.rows, block.channels, block.lens), scores, strict=True):
        p.ms["rank_ms"] = per
        by = np.argsort(-s[: len(got.rows)], kind="stable")
        out.append(Ranked(got.rows[by], s[by], got))
    return out


def page(b: LoadedBundle, p: Prepared, ranked: np.ndarray, scores: np.ndarray | None, fallback: str | None,
         candidates: Candidates | None = None, own: tuple[str, set[int] | None] | None = None) -> tuple[dict, tuple]:
    """The business rules (``p.plan``: move, the category cap, place; excludes are already in the
    filter mask), pagination, the item records; with ``explain``, each item's reason. Also what the
    served-list log needs (serving/served_log.py ``page_details``): references, computed later.
    ``own``: a placement's own source (serving/placements.py) and the rows it gave (None: all of them)."""
    req = p.req
    t = time.perf_counter()
    ranked = np.asarray(ranked, np.int64)

    def allowed(row: int) -> bool:  # the filters, hidden products and exclude rules, then purchases
        return row < len(p.allowed) and bool(p.allowed[row]) and row not in p.shopper.purchased

    listed, listed_scores, effect = p.plan.apply(ranked, scores, depth=_page_depth(req), cap=req.diversity,
                                                 allowed=allowed)
    rows = listed[req.offset : req.offset + req.k]
    items = b.catalog.items_out(rows, None if listed_scores is None else listed_scores[req.offset : req.offset + req.k])
    if req.explain:
        alone = own is not None and own[1] is None  # a placement's own list: no ranker, no channels
        why = reasons(b.items_index.vectors, b.catalog.item_ids, rows, p.shopper.history,
                      ranked if fallback or alone else candidates.rows, None if fallback or alone else ranked,
                      None if alone else candidates, effect.by_row, own[0] if alone else fallback)
        for item, r, row in zip(items, why, rows.tolist(), strict=True):
            if own is not None and own[1] is not None and row in own[1]:
                r["channels"] = [own[0]]
            item["reason"] = r
    t4 = time.perf_counter()
    timings = p.ms | {"rules_ms": (t4 - t) * 1e3, "total_ms": (t4 - p.t0) * 1e3}
    answer = {"items": items, "bundle_version": b.version, "rec_id": None, "variant": None, "fallback": fallback,
              "user_known": p.shopper.row is not None, "offset": req.offset, "k": req.k, "timings": timings}
    return answer, (rows, None if fallback else ranked, candidates, effect.by_row, own)


def recommend_many(b: LoadedBundle, reqs: list[RecommendationRequest], candidates: int,
                   rules: RuleSet | None = None, live: RecentEvents | None = None,
                   details: list | None = None) -> list[dict | Exception]:
    """The online path for a batch of concurrent requests: prepare each, then one retrieve and one
    rank for every request with a history, then each page. A request's error is its own.

    Answers are plain dicts in the shape of :class:`RecommendationResponse`, built from the bundle's
    typed arrays: the route serialises them with ``pydantic_core.to_json`` (the same bytes as the
    model's ``model_dump_json``, tested) without validating them into the model first. ``details``
    (a list as long as ``reqs``): filled with what the served-list log needs of each answer; ``live``:
    the real-time state (serving/realtime.py)."""
    out: list[dict | Exception] = [RequestError("not processed")] * len(reqs)
    keep = details if details is not None else [None] * len(reqs)
    with b.lock.read():
        prepared: dict[int, Prepared] = {}
        masks: dict[tuple, np.ndarray] = {}  # requests with the same filters share one mask
        for i, r in enumerate(reqs):
            try:
                prepared[i] = prepare(b, r, masks, rules or NO_RULES, live)
            except RequestError as e:
                out[i] = e
        home = {}
        for i, p in prepared.items():
            if p.req.placement in OWN_LISTS:  # continue, buy-again, cart, product: their own sources
                try:
                    rows, sc = own_list(b, p)
                except RequestError as e:
                    out[i] = e
                    continue
                out[i], keep[i] = page(b, p, rows, sc, None, own=(SOURCE[p.req.placement], None))
            elif not len(p.shopper.history):  # nobody we know anything about: popular items in scope
                out[i], keep[i] = page(b, p, popular(b, p), None, "popular")
            else:
                home[i] = p
        at = {id(p): i for i, p in home.items()}  # the model path's requests
        if not at:
            return out
        extra = b.channels.config.extra if b.channels is not None else 0  # the tower fills what the channels leave
        ps, U, block = retrieve(b, list(home.values()), candidates + extra)
        for p, r in zip(ps, rank(b, ps, U, block), strict=True):
            rows, sc, repeats = home_merge(b, p, r.rows, r.scores, _page_depth(p.req))  # their own items too
            out[at[id(p)]], keep[at[id(p)]] = page(b, p, rows, sc if len(rows) else None, None, r.candidates,
                                                   ("history", repeats) if repeats else None)
    return out


def recommend(b: LoadedBundle, req: RecommendationRequest, candidates: int,
              rules: RuleSet | None = None, live: RecentEvents | None = None) -> RecommendationResponse:
    """One request, answer validated into the response model (the smoke query, previews, tests);
    ``live``: the real-time state, as the storefront's requests have it."""
    r = recommend_many(b, [req], candidates, rules, live)[0]
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
        return b.catalog.items_out(I[0][keep], D[0][keep])


def similar(b: LoadedBundle, row: int, by: str, k: int, f: Filters) -> list[dict]:
    """Nearest items to ``row`` by item-tower vector (behaviour) or CNN embedding (image), itself excluded."""
    return nearest(b, by, b.index(by).vectors[row], k, f, np.array([row]))
