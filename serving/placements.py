"""The request's ``placement`` picks its candidate sources (docs/serving.md, "Placements"):

    home        (default, and any other name) the model path; with the bundle's placement models
                the shopper's touched items join the page where their chance of being touched
                next beats the discovery item's at that rank (``discovery_only``: never)
    product     items like ``context_item_ids[0]`` (the product on the page), item-tower neighbours
    cart        complements of ``context_item_ids`` (the cart; a known shopper's open cart when empty)
    continue    the shopper's open items (viewed or carted, not bought since), by purchase intent
    buy-again   the shopper's bought items that are re-bought at a learned interval, the most likely first

The lists are recsys/placements.py's; the page (rules, filters, stock, pagination) is the same as
every placement's (serving/recommend.py ``page``).
"""

from __future__ import annotations

import numpy as np

from recsys.placements import PlacementModels, member
from serving.errors import RequestError
from serving.loaded_bundle import LoadedBundle

OWN_LISTS = ("product", "cart", "continue", "buy-again")  # placements that do not run the model path
SOURCE = {"product": "similar", "cart": "complements", "continue": "history", "buy-again": "history"}
KEEPS_PURCHASES = ("buy-again",)  # purchases are the point: never excluded, whatever exclude_purchased says


def models(b: LoadedBundle, placement: str) -> PlacementModels:
    if b.placements is None:
        raise RequestError(f"placement {placement!r} needs the placement models, and bundle {b.version} was "
                           "built without them (rebuild it: vitrine nightly)", 409)
    return b.placements


def admissible(p, rows: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows the request's filter mask allows (filters, stock, hidden products, exclude rules),
    less the shopper's purchases (none when the request keeps them): what the page may list."""
    rows = np.asarray(rows, np.int64)
    keep = (rows < len(p.allowed)) & p.allowed[np.minimum(rows, len(p.allowed) - 1)]
    if len(p.shopper.purchased):
        keep &= ~member(rows, p.shopper.purchased)
    return rows[keep], np.asarray(scores)[keep]


def own_list(b: LoadedBundle, p) -> tuple[np.ndarray, np.ndarray]:
    """(rows, scores) of a placement with its own source, best first, that the request's filters
    allow; ``p``: serving/recommend.py ``Prepared``."""
    return admissible(p, *_source(b, p))


def _source(b: LoadedBundle, p) -> tuple[np.ndarray, np.ndarray]:
    req, t = p.req, p.shopper.touched
    context = b.catalog.rows(req.context_item_ids)
    if req.placement == "product":
        if not len(context):
            raise RequestError("placement 'product' needs context_item_ids: the product on the page (a known id)")
        n = req.offset + req.k + len(context)
        D, I = b.items_index.search(b.items_index.vectors[context[:1]], n + 1, allowed=p.allowed)
        keep = (I[0] >= 0) & ~np.isin(I[0], context)
        return I[0][keep].astype(np.int64), D[0][keep]
    m = models(b, req.placement)
    if req.placement == "continue":
        return m.continue_rows(t)
    if req.placement == "buy-again":
        return m.buy_again_rows(t)
    if not len(context):  # the shopper's open cart (``cart``: carted after the last purchase)
        context = t.rows[t.cart > 0]
    return m.complements(context, b.catalog.codes)


def home_merge(b: LoadedBundle, p, rows: np.ndarray, scores: np.ndarray, depth: int
               ) -> tuple[np.ndarray, np.ndarray, set[int]]:
    """The ranker's list with the shopper's touched items merged in by chance of being touched next
    (recsys/placements.py ``home_rows``); unchanged without placement models or touches, or with
    ``discovery_only`` (then every touched item is out). ``depth``: the ranked rows the page may read
    (only they are merged; a seen item taken out leaves room for one more). Returns rows, scores and
    the repeat rows."""
    t = p.shopper.touched
    rows, scores = rows[: depth + len(t)], scores[: depth + len(t)]
    if p.req.discovery_only:
        keep = ~member(rows, t.rows)
        return rows[keep], scores[keep], set()
    if b.placements is None or not len(t):
        return rows, scores, set()
    seen, _ = admissible(p, t.rows, t.rows)  # a seen product the request may show
    known = b.shoppers.home_chance(p.shopper.row, b.placements) if p.shopper.stored else None
    merged, chance, repeat = b.placements.home_rows(t, rows, member(t.rows, seen), known)
    return merged, chance, set(merged[repeat].tolist())
