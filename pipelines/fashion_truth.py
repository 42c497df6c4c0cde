"""The fashion-shop oracle: each shopper's true next-view distribution over the catalog, from the
generator's latent parameters, and the ``truth/`` tables written beside the dataset so retrieval can
be scored against what shoppers really like (bench/recsys_fashion.py, bench/fashion_shop_stats.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.fashion_funnels import Partners
from pipelines.fashion_mnist import CLASSES
from pipelines.fashion_world import FashionShopConfig, World, category_probs
from pipelines.tables import write_table


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
    """Latent item/user parameters and each sampled shopper's true top-k at the window's end; with
    the funnels' complements, every product's partners (``partners.parquet``)."""
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
    if cfg.complements:  # the funnels' complements: what the cart placement should find
        partners = Partners(it, cfg)
        ids = it["item_id"].to_numpy()
        pairs = [(ids[i], ids[j]) for i in np.flatnonzero(it["category"].isin(dict(cfg.complements)).to_numpy())
                 for j in partners.of(int(i)).tolist()]
        write_table(pd.DataFrame(pairs, columns=["item_id", "partner_id"]), out / "partners.parquet")
