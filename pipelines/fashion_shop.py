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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from pipelines.fashion_mnist import CLASSES, FashionMNIST
from pipelines.tables import TS_DTYPE, write_table

log = logging.getLogger(__name__)

CATEGORY_MEDIAN_PRICE = (19.0, 45.0, 39.0, 59.0, 119.0, 35.0, 35.0, 79.0, 69.0, 99.0)
# Season tilt per category over the autumn window (log-odds at the end vs the start).
SEASON = (-0.6, 0.0, 0.6, -0.3, 1.0, -1.0, 0.0, 0.0, 0.0, 0.8)
STYLE_WORDS = ("Classic", "Urban", "Minimal", "Vintage", "Sporty", "Bold", "Soft", "Essential",
               "Modern", "Relaxed", "Tailored", "Studio")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")
REGIONS = ("north", "south", "east", "west", "central")
EVENT_CODES = np.array(["view", "cart", "purchase"])


@dataclass(frozen=True)
class FashionShopConfig:
    seed: int = 7
    n_users: int = 30_000
    n_items: int = 70_000  # at most 70,000: a seeded subset of Fashion-MNIST when smaller
    days: int = 90
    start: str = "2026-08-01"  # first day of the simulated window (UTC)
    n_styles: int = 8  # visual styles per category
    n_price_buckets: int = 5
    zipf_s: float = 0.9  # popularity exponent
    new_item_share: float = 0.2  # launched during the window; the rest in the year before
    new_user_share: float = 0.3  # sign up during the window (cold users)
    sessions_per_day: float = 0.12  # mean over shoppers; lognormal across them
    mean_session_views: float = 5.0
    stay_in_category: float = 0.8  # chance a view stays in the session's category
    p_cart: float = 0.15  # at perfect style and price fit
    p_purchase: float = 0.35  # given a cart
    category_concentration: float = 1.5  # Dirichlet mass of θ: lower = more focused shoppers
    style_concentration: float = 0.4
    drift: float = 0.3  # share of θ replaced by a fresh draw by the end of the window
    truth_users: int = 2_000  # shoppers whose true top items are written
    truth_top_k: int = 100


@dataclass
class World:
    """The latent state: what the generator knows and a recommender must learn."""

    items: pd.DataFrame  # catalog + latent columns style, price_bucket, popularity, launch_day
    users: pd.DataFrame  # features + signup_day
    theta0: np.ndarray  # (U, C) category preference at the start
    theta1: np.ndarray  # (U, C) ... at the end of the window
    phi: np.ndarray  # (U, C, S) style preference within each category
    pi: np.ndarray  # (U, B) price-bucket preference
    rate: np.ndarray  # (U,) sessions per day


# ----------------------------------------------------------------------------- catalog


def _kmeans(x: np.ndarray, k: int, rng: np.random.Generator, iters: int = 15) -> np.ndarray:
    """Plain Lloyd's k-means with k-means++ seeding; float64 for run-to-run stable labels."""
    n = len(x)
    k = min(k, n)
    centers = [x[rng.integers(n)]]
    d2 = ((x - centers[0]) ** 2).sum(1)
    for _ in range(1, k):
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1 / n)
        centers.append(x[rng.choice(n, p=p)])
        d2 = np.minimum(d2, ((x - centers[-1]) ** 2).sum(1))
    c = np.stack(centers)
    for _ in range(iters):
        dist = (x**2).sum(1)[:, None] - 2 * x @ c.T + (c**2).sum(1)[None]  # (N, k)
        labels = dist.argmin(1)
        for j in range(k):
            if (labels == j).any():
                c[j] = x[labels == j].mean(0)
    return labels


def _catalog(cfg: FashionShopConfig, fm: FashionMNIST, rng: np.random.Generator) -> pd.DataFrame:
    images, labels = fm.images, fm.labels.astype(np.int64)
    n_train = len(fm.train_labels)
    n = min(cfg.n_items, len(labels))
    idx = np.sort(rng.choice(len(labels), n, replace=False)) if n < len(labels) else np.arange(n)
    cat = labels[idx]
    # Style: k-means on 7x7 average-pooled pixels within each category.
    pooled = images[idx].reshape(n, 7, 4, 7, 4).mean((2, 4)).reshape(n, 49).astype(np.float64) / 255
    style = np.zeros(n, np.int64)
    for c in range(len(CLASSES)):
        m = cat == c
        if m.any():
            style[m] = _kmeans(pooled[m], cfg.n_styles, rng)
    brightness = images[idx].reshape(n, -1).mean(1)
    tone = np.where(brightness < 60, "Dark", np.where(brightness > 110, "Light", "Mid-tone"))
    # Price: category median x style multiplier x item noise, ending in .99.
    style_mult = np.exp(rng.normal(0, 0.25, (len(CLASSES), cfg.n_styles)))
    raw = np.asarray(CATEGORY_MEDIAN_PRICE)[cat] * style_mult[cat, style] * np.exp(rng.normal(0, 0.3, n))
    price = np.maximum(np.floor(raw), 4) + 0.99
    bucket = np.zeros(n, np.int64)
    for c in range(len(CLASSES)):
        m = cat == c
        if m.any():
            ranks = pd.Series(price[m]).rank(method="first").to_numpy() - 1
            bucket[m] = (ranks * cfg.n_price_buckets // m.sum()).astype(np.int64)
    popularity = (rng.permutation(n) + 1.0) ** -cfg.zipf_s
    new = rng.random(n) < cfg.new_item_share
    launch = np.where(new, rng.uniform(0, cfg.days, n), rng.uniform(-365, 0, n))  # days from start
    start = pd.Timestamp(cfg.start, tz="UTC")
    created = start + pd.to_timedelta(np.round(launch * 86400), unit="s")
    item_id = np.char.add("i", np.char.zfill(idx.astype(str), 5))
    words = np.asarray(STYLE_WORDS)[style % len(STYLE_WORDS)]
    names = np.asarray([c.replace("/top", " top") for c in CLASSES])[cat]
    return pd.DataFrame({
        "item_id": item_id,
        "title": pd.Series(words).str.cat([tone, names], sep=" ").to_numpy(),
        "category": np.asarray(CLASSES)[cat],
        "price": price,
        "in_stock": rng.random(n) < 0.93,
        "image": [f"images/{i // 1000:02d}/{iid}.png" for i, iid in zip(idx, item_id, strict=True)],
        "created_at": created.astype(TS_DTYPE),
        "fmnist_index": idx,
        "fmnist_split": np.where(idx < n_train, "train", "test"),
        # latent (written to truth/, dropped from items.parquet)
        "category_code": cat,
        "style": style,
        "price_bucket": bucket,
        "popularity": popularity,
        "launch_day": launch,
    })


# ----------------------------------------------------------------------------- shoppers


def build_world(cfg: FashionShopConfig, fm: FashionMNIST) -> World:
    rng = np.random.default_rng([cfg.seed, 0])
    items = _catalog(cfg, fm, rng)
    U, C, S, B = cfg.n_users, len(CLASSES), cfg.n_styles, cfg.n_price_buckets
    age = rng.choice(len(AGE_BANDS), U, p=[0.15, 0.3, 0.25, 0.18, 0.12])
    # Age tilts the category prior, so user features carry some signal.
    base = np.bincount(items["category_code"], minlength=C) + 1.0
    tilt = np.exp(rng.normal(0, 0.5, (len(AGE_BANDS), C)))
    prior = base / base.sum() * tilt[age]
    prior = cfg.category_concentration * prior / prior.sum(1, keepdims=True)
    theta0 = rng.gamma(prior)  # row-wise Dirichlet via normalised gammas
    theta0 /= theta0.sum(1, keepdims=True)
    fresh = rng.gamma(prior)
    fresh /= fresh.sum(1, keepdims=True)
    theta1 = (1 - cfg.drift) * theta0 + cfg.drift * fresh
    phi = rng.gamma(np.full((U, C, S), cfg.style_concentration))
    phi /= phi.sum(2, keepdims=True)
    centre = rng.uniform(-0.5, B - 0.5, U)
    width = rng.uniform(0.6, 2.0, U)
    pi = np.exp(-((np.arange(B)[None] - centre[:, None]) ** 2) / (2 * width[:, None] ** 2))
    pi /= pi.sum(1, keepdims=True)
    sigma = 0.8
    rate = cfg.sessions_per_day * np.exp(rng.normal(-sigma**2 / 2, sigma, U))
    new = rng.random(U) < cfg.new_user_share
    signup = np.where(new, rng.uniform(0, cfg.days, U), rng.uniform(-730, 0, U))
    start = pd.Timestamp(cfg.start, tz="UTC")
    users = pd.DataFrame({
        "user_id": np.char.add("u", np.char.zfill(np.arange(U).astype(str), 6)),
        "age_band": np.asarray(AGE_BANDS)[age],
        "region": np.asarray(REGIONS)[rng.integers(0, len(REGIONS), U)],
        "signup_at": (start + pd.to_timedelta(np.round(signup * 86400), unit="s")).astype(TS_DTYPE),
        "signup_day": signup,
    })
    return World(items, users, theta0, theta1, phi, pi, rate)


def category_probs(world: World, users: np.ndarray, t_frac: np.ndarray | float) -> np.ndarray:
    """θ_u(t) with drift and season, t_frac in [0, 1] across the window.  (N, C)"""
    # Drift completes at the end of the generated window and holds afterwards (appended days).
    t = np.minimum(np.broadcast_to(np.asarray(t_frac, float), users.shape), 1.0)[:, None]
    p = (1 - t) * world.theta0[users] + t * world.theta1[users]
    p = p * np.exp(np.asarray(SEASON)[None] * (t - 0.5))
    return p / p.sum(1, keepdims=True)


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


def simulate(world: World, cfg: FashionShopConfig, days: range) -> pd.DataFrame:
    samplers = make_samplers(world, cfg)
    parts = [simulate_day(world, cfg, d, samplers) for d in tqdm(days, desc="days", leave=False)]
    ev = pd.concat(parts, ignore_index=True)
    order = np.lexsort((ev["item_id"].to_numpy(), ev["user_id"].to_numpy(), ev["ts"].to_numpy()))
    return ev.iloc[order].reset_index(drop=True)


# ----------------------------------------------------------------------------- oracle


def true_affinity(world: World, cfg: FashionShopConfig, users: np.ndarray, t_frac: float = 1.0) -> np.ndarray:
    """P(next view = item | shopper) at ``t_frac`` of the window, over the catalog.  (N, I)

    The session mixture (stay in category or stray) draws categories from θ_u(t) either way, so
    the marginal is θ·φ·π·q/Q, plus — exactly as the sampler does — the mass of (c, s, b) cells
    with nothing launched yet moved to the whole category ∝ q. Rows sum to 1 (views that find no
    launched item in their category are dropped by the simulator, so we condition on a view).
    """
    it = world.items
    t = t_frac * cfg.days
    launched = it["launch_day"].to_numpy() <= t
    cat, sty, bkt = it["category_code"].to_numpy(), it["style"].to_numpy(), it["price_bucket"].to_numpy()
    q = it["popularity"].to_numpy() * launched
    cell = (cat * cfg.n_styles + sty) * cfg.n_price_buckets + bkt
    Q = np.bincount(cell, weights=q, minlength=len(CLASSES) * cfg.n_styles * cfg.n_price_buckets)
    Qc = np.bincount(cat, weights=q, minlength=len(CLASSES))
    theta = category_probs(world, users, t_frac)  # (N, C)
    phi, pi = world.phi[users], world.pi[users]  # (N, C, S), (N, B)
    empty = (Q == 0).reshape(len(CLASSES), cfg.n_styles, cfg.n_price_buckets)
    spill = np.einsum("ncs,nb,csb->nc", phi, pi, empty)  # (N, C) mass of empty cells
    fine = phi[:, cat, sty] * pi[:, bkt] * (q / np.where(Q[cell] > 0, Q[cell], 1))[None]
    coarse = spill[:, cat] * (q / np.where(Qc[cat] > 0, Qc[cat], 1))[None]
    p = theta[:, cat] * (fine + coarse)  # (N, I)
    return p / p.sum(1, keepdims=True)


def write_truth(world: World, cfg: FashionShopConfig, out: Path) -> None:
    """Latent item/user parameters and each sampled shopper's true top-k at the window's end."""
    out.mkdir(parents=True, exist_ok=True)
    it = world.items
    write_table(it[["item_id", "style", "price_bucket", "popularity", "launch_day"]], out / "items.parquet")
    C, S = world.phi.shape[1:]
    cols = {"user_id": world.users["user_id"].to_numpy(), "sessions_per_day": world.rate}
    cols |= {f"theta0_{c}": world.theta0[:, c] for c in range(C)}
    cols |= {f"theta1_{c}": world.theta1[:, c] for c in range(C)}
    cols |= {f"phi_{c}_{s}": world.phi[:, c, s] for c in range(C) for s in range(S)}
    cols |= {f"pi_{b}": world.pi[:, b] for b in range(world.pi.shape[1])}
    write_table(pd.DataFrame(cols), out / "users.parquet")
    rng = np.random.default_rng([cfg.seed, 2])
    U = len(world.rate)
    sample = np.sort(rng.choice(U, min(cfg.truth_users, U), replace=False))
    k = min(cfg.truth_top_k, len(it))
    rows = []
    for chunk in np.array_split(sample, max(1, len(sample) // 200)):
        aff = true_affinity(world, cfg, chunk)
        top = np.argpartition(-aff, k - 1, axis=1)[:, :k]
        score = np.take_along_axis(aff, top, 1)
        order = np.argsort(-score, axis=1, kind="stable")
        top, score = np.take_along_axis(top, order, 1), np.take_along_axis(score, order, 1)
        rows.append(pd.DataFrame({
            "user_id": np.repeat(world.users["user_id"].to_numpy()[chunk], k),
            "item_id": it["item_id"].to_numpy()[top.ravel()],
            "rank": np.tile(np.arange(1, k + 1), len(chunk)),
            "affinity": score.ravel(),
        }))
    write_table(pd.concat(rows, ignore_index=True), out / "top_affinities.parquet")


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
    samplers = make_samplers(world, cfg)
    new = pd.concat([simulate_day(world, cfg, d, samplers) for d in range(done, done + n_days)], ignore_index=True)
    order = np.lexsort((new["item_id"].to_numpy(), new["user_id"].to_numpy(), new["ts"].to_numpy()))
    events = pd.concat([pd.read_parquet(out / "events.parquet"), new.iloc[order]], ignore_index=True)
    meta["days_total"] = done + n_days
    meta["events"] = len(events)
    (out / "dataset.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    users = world.users[world.users["signup_day"] <= done + n_days][["user_id", "age_band", "region", "signup_at"]]
    log.info("appended days %d..%d: %d new events", done, done + n_days - 1, len(new))
    return {"items": pd.read_parquet(out / "items.parquet"), "users": users, "events": events, "new_events": len(new)}
