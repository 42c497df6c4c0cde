"""fashion-shop: the embedded default dataset.

The catalog is real: every Fashion-MNIST image (Zalando product photos, 10 categories) becomes a
product. Shoppers and their events come from a seeded generative model (docs/data.md):

    P(view item i | shopper u, day t) = θ_u(t)[c] · φ_u[c, s] · π_u[b] · q_i / Q[c, s, b](t)

with c the item's category, s its visual style (k-means cluster of its pixels within c), b its
price bucket (quintile within c), q_i a Zipf popularity and Q the popularity mass of the items of
cell (c, s, b) already launched at t. θ_u drifts linearly over the window and is tilted by a
season; carts and purchases follow views with probabilities that rise with style and price fit.
Events for day d use the RNG stream (seed, d), so the history can later be extended day by day.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from pipelines.fashion_funnels import Funnels, active
from pipelines.fashion_mnist import CLASSES, FashionMNIST
from pipelines.fashion_truth import write_truth
from pipelines.fashion_world import EVENT_CODES, FashionShopConfig, World, build_world, category_probs
from pipelines.tables import TS_DTYPE

log = logging.getLogger(__name__)


def _sample_rows(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One categorical draw per row of a probability matrix.  (N, K) -> (N,)"""
    u = rng.random(len(p))[:, None]
    return np.minimum((p.cumsum(1) < u).sum(1), p.shape[1] - 1)


class _CellSampler:
    """Draws an item from cell (c, s, b) ∝ popularity among items launched by time t.

    Items are laid out sorted by (cell, launch time); the launched items of a cell at time t are
    then a prefix of its segment, so one searchsorted + one cumulative-sum lookup samples them.
    """

    def __init__(self, cell: np.ndarray, launch: np.ndarray, weight: np.ndarray, n_cells: int):
        self.order = np.lexsort((launch, cell))
        self.cell = cell[self.order]
        self.launch = launch[self.order]
        self.cum = np.concatenate([[0.0], np.cumsum(weight[self.order])])
        self.start = np.searchsorted(self.cell, np.arange(n_cells))
        # One sortable key per item: launch days lie in (-1e6, 1e6), far below the cell spacing.
        self.key = self.cell * 1e7 + self.launch

    def available(self, cells: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Index one past the last launched item of each (cell, t), in sorted layout."""
        return np.searchsorted(self.key, cells * 1e7 + t, side="right")

    def sample(self, cells: np.ndarray, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        lo = self.start[cells]
        hi = np.maximum(self.available(cells, t), lo)
        mass = self.cum[hi] - self.cum[lo]
        target = self.cum[lo] + rng.random(len(cells)) * mass
        pos = np.clip(np.searchsorted(self.cum, target, side="right") - 1, lo, np.maximum(hi - 1, lo))
        out = self.order[np.minimum(pos, len(self.order) - 1)]
        return np.where(hi > lo, out, -1)  # -1: nothing launched in this cell yet


def simulate_day(world: World, cfg: FashionShopConfig, day: int, samplers: tuple) -> pd.DataFrame:
    """All events of one day. Deterministic in (seed, day)."""
    fine, coarse = samplers
    rng = np.random.default_rng([cfg.seed, 1000 + day])
    U = len(world.rate)
    active = world.users["signup_day"].to_numpy() <= day + 1
    n_sess = rng.poisson(world.rate * active)
    sess_user = np.repeat(np.arange(U), n_sess)
    if len(sess_user) == 0:
        return pd.DataFrame(columns=["user_id", "item_id", "event", "ts"])
    sess_t = day + rng.random(len(sess_user))  # days from start
    sess_cat = _sample_rows(category_probs(world, sess_user, sess_t / cfg.days), rng)
    n_views = 1 + rng.geometric(1 / cfg.mean_session_views, len(sess_user)) - 1
    v_user = np.repeat(sess_user, n_views)
    v_sess = np.repeat(np.arange(len(sess_user)), n_views)
    # View times: session start + cumulative ~40 s gaps.
    gaps = rng.exponential(40 / 86400, len(v_user))
    first = np.concatenate([[0], np.cumsum(n_views)[:-1]])
    cum = np.cumsum(gaps)
    v_t = sess_t[v_sess] + cum - (cum[first] - gaps[first])[v_sess]
    stray = rng.random(len(v_user)) > cfg.stay_in_category
    v_cat = sess_cat[v_sess].copy()
    if stray.any():
        v_cat[stray] = _sample_rows(category_probs(world, v_user[stray], v_t[stray] / cfg.days), rng)
    S, B = cfg.n_styles, cfg.n_price_buckets
    v_style = _sample_rows(world.phi[v_user, v_cat], rng)
    v_bucket = _sample_rows(world.pi[v_user], rng)
    item = fine.sample((v_cat * S + v_style) * B + v_bucket, v_t, rng)
    empty = item < 0  # no launched item in that (c, s, b) yet: fall back to the category
    if empty.any():
        item[empty] = coarse.sample(v_cat[empty], v_t[empty], rng)
    keep = item >= 0
    v_user, v_t, item, v_cat, v_style, v_bucket = (a[keep] for a in (v_user, v_t, item, v_cat, v_style, v_bucket))
    # Funnel: cart odds rise with style and price fit; purchases follow carts.
    it = world.items
    style_fit = world.phi[v_user, v_cat, it["style"].to_numpy()[item]] / world.phi[v_user, v_cat].max(1)
    price_fit = world.pi[v_user, it["price_bucket"].to_numpy()[item]] / world.pi[v_user].max(1)
    cart = rng.random(len(item)) < cfg.p_cart * style_fit * price_fit
    buy = cart & (rng.random(len(item)) < cfg.p_purchase)
    cart_t = v_t + rng.exponential(20 / 86400, len(item))
    buy_t = cart_t + rng.exponential(120 / 86400, len(item))
    users = np.concatenate([v_user, v_user[cart], v_user[buy]])
    items = np.concatenate([item, item[cart], item[buy]])
    code = np.concatenate([np.zeros(len(item), int), np.ones(cart.sum(), int), np.full(buy.sum(), 2)])
    t = np.concatenate([v_t, cart_t[cart], buy_t[buy]])
    start = pd.Timestamp(cfg.start, tz="UTC")
    ts = (start + pd.to_timedelta(np.round(t * 86400 * 1e3), unit="ms")).astype(TS_DTYPE)
    return pd.DataFrame({
        "user_id": world.users["user_id"].to_numpy()[users],
        "item_id": it["item_id"].to_numpy()[items],
        "event": EVENT_CODES[code],
        "ts": ts,
    })


def make_samplers(world: World, cfg: FashionShopConfig) -> tuple[_CellSampler, _CellSampler]:
    it = world.items
    cat, w, launch = it["category_code"].to_numpy(), it["popularity"].to_numpy(), it["launch_day"].to_numpy()
    fine_cell = (cat * cfg.n_styles + it["style"].to_numpy()) * cfg.n_price_buckets + it["price_bucket"].to_numpy()
    n_fine = len(CLASSES) * cfg.n_styles * cfg.n_price_buckets
    return _CellSampler(fine_cell, launch, w, n_fine), _CellSampler(cat, launch, w, len(CLASSES))


def simulate(world: World, cfg: FashionShopConfig, days: range, before: pd.DataFrame | None = None) -> pd.DataFrame:
    """The events of ``days``; ``before``: the dataset's earlier events (the funnels' memory)."""
    samplers = make_samplers(world, cfg)
    funnels = Funnels(world.users, world.items, world.rate, cfg) if active(cfg) else None
    if funnels is not None and before is not None:
        funnels.add(before)
    parts = []
    for d in tqdm(days, desc="days", leave=False):
        base = simulate_day(world, cfg, d, samplers)
        if funnels is not None:  # revisits and re-purchases drawn from what happened before day d
            base = funnels.first_purchases(base, d)
            extra = funnels.draw(d, TS_DTYPE, base)
            funnels.add(base)
            funnels.add(extra)
            parts.append(extra)
        parts.append(base)
    ev = pd.concat(parts, ignore_index=True)
    order = np.lexsort((ev["item_id"].to_numpy(), ev["user_id"].to_numpy(), ev["ts"].to_numpy()))
    return ev.iloc[order].reset_index(drop=True)


# ----------------------------------------------------------------------------- writer


def write_images(world: World, fm: FashionMNIST, root: Path) -> None:
    images = fm.images
    it = world.items
    for idx, rel in tqdm(zip(it["fmnist_index"], it["image"], strict=True), total=len(it),
                         desc="images", leave=False, mininterval=2):
        path = root / rel
        if path.exists():  # images are a pure function of the Fashion-MNIST index
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        Image.fromarray(images[idx], mode="L").save(tmp, format="PNG", optimize=False)
        tmp.replace(path)


CATALOG_COLUMNS = ["item_id", "title", "category", "price", "in_stock", "image", "created_at",
                   "fmnist_index", "fmnist_split"]


def generate(cfg: FashionShopConfig, fm: FashionMNIST, out: Path) -> dict:
    """Build the dataset in ``out``: images, raw tables and the oracle. Returns the summary.

    The tables written here are the generator's raw output; the CLI passes them through
    :func:`pipelines.validate.validate` like any other source before they count as canonical.
    """
    out.mkdir(parents=True, exist_ok=True)
    log.info("building world: %d shoppers, %d items", cfg.n_users, cfg.n_items)
    world = build_world(cfg, fm)
    write_images(world, fm, out)
    events = simulate(world, cfg, range(cfg.days))
    write_truth(world, cfg, out / "truth")
    counts = events["event"].value_counts().to_dict()
    summary = {"dataset": "fashion-shop", "config": asdict(cfg), "items": len(world.items),
               "users": len(world.users), "events": len(events), "event_counts": counts}
    (out / "dataset.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return {"summary": summary, "items": world.items[CATALOG_COLUMNS],
            "users": world.users[["user_id", "age_band", "region", "signup_at"]], "events": events}


def append_days(out: Path, n_days: int, fm: FashionMNIST) -> dict:
    """The next ``n_days`` of events for an existing dataset (a nightly job's new data).

    The world (catalog, shoppers, preferences) is rebuilt from the config in ``dataset.json`` —
    deterministic in the seed — and days ``days_total .. days_total + n_days - 1`` are simulated,
    each with its own (seed, day) random stream, so appending 3 then 4 days equals appending 7.
    Shoppers who sign up in those days join ``users``; the catalog itself does not grow (every
    Fashion-MNIST image is already a product). Returns raw tables for the usual validation.
    """
    meta = json.loads((out / "dataset.json").read_text())
    cfg = FashionShopConfig(**meta["config"])
    done = int(meta.get("days_total", cfg.days))
    world = build_world(cfg, fm)
    old = pd.read_parquet(out / "events.parquet")
    new = simulate(world, cfg, range(done, done + n_days), before=old)
    events = pd.concat([old, new], ignore_index=True)
    meta["days_total"] = done + n_days
    meta["events"] = len(events)
    (out / "dataset.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    users = world.users[world.users["signup_day"] <= done + n_days][["user_id", "age_band", "region", "signup_at"]]
    log.info("appended days %d..%d: %d new events", done, done + n_days - 1, len(new))
    return {"items": pd.read_parquet(out / "items.parquet"), "users": users, "events": events, "new_events": len(new)}
