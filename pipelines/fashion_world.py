"""fashion-shop's world: the catalog built from the real Fashion-MNIST images (category, visual
style, price bucket, popularity, launch day) and the shoppers' latent tastes, drawn once from the
seed. ``pipelines/fashion_shop.py`` simulates their events; ``pipelines/fashion_truth.py`` turns
the same parameters into each shopper's true preferences (docs/data.md has the model)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.fashion_mnist import CLASSES, FashionMNIST
from pipelines.tables import TS_DTYPE

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
    # Funnels across days (pipelines/fashion_funnels.py); all off by default: the data is as before.
    revisit_share: float = 0.0  # revisit sessions per regular session, for shoppers with recent items
    revisit_views: float = 2.0  # mean items re-viewed in a revisit session
    p_cart_return: float = 0.3  # a re-viewed, earlier carted and left item is carted and bought
    consumables: tuple[str, ...] = ()  # category names bought again (e.g. "T-shirt/top")
    repurchase_days: float = 30.0  # mean days between purchases of a consumable (gamma, shape 4)
    p_rebuy: float = 0.7  # chance each purchase of a consumable is followed by another
    complements: tuple[tuple[str, str], ...] = ()  # (category, complement category): bought together
    p_complement: float = 0.3  # chance a purchase in such a category brings one of its partners


# `vitrine data fashion-shop --funnels`: shoppers who come back, return to left carts and re-buy basics
FUNNELS = {"revisit_share": 0.5, "revisit_views": 2.0, "p_cart_return": 0.3,
           "consumables": ("T-shirt/top", "Trouser", "Sneaker"), "repurchase_days": 21.0, "p_rebuy": 0.7,
           "complements": (("Trouser", "Shirt"), ("Shirt", "Trouser"), ("Dress", "Bag"), ("Coat", "Ankle boot"),
                           ("Pullover", "Trouser"), ("Sandal", "Bag")), "p_complement": 0.3}


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
