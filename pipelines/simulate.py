"""A shopper simulator with known truth, to test the closed loop end to end (docs/online.md).

It drives a running service over HTTP with fashion-shop's shoppers (``truth/``): each session asks
one placement for a page, "renders" it (a ``list_view``), examines each position with a known
probability, clicks what attracts the shopper's true taste, carts and buys some of the clicks, and
sends every event with the list's ``rec_id`` and the position it was displayed at.

The click model is the position-based model: P(click at k) = examination(k) · attraction(u, i), with
examination(k) = k^-eta (position 1 always examined) and attraction a saturating function of the
shopper's true taste for the item, θ_c · φ_{c,s} · π_b (category, visual style and price bucket; the
generator's own parameters, pipelines/fashion_world.py), relative to an indifferent shopper's.

Placements (arms), drawn per session:
- ``home``: the shopper's personalised page (their user id);
- ``popular``: the same shopper, anonymous: the service's popularity fallback;
- ``shuffled``: the personalised page displayed in a random order, so that every position holds an
  item of the same expected attraction: its position-CTR curve measures examination(k) alone;
- ``reversed``: the personalised page displayed upside down (what an off-policy estimate of the
  reversed ordering should find, serving/off_policy.py).

Deterministic by seed: session ``i`` draws from ``(seed, i)`` whatever order the threads run in (the
service's answers may still differ between runs: real-time state follows the events' arrival).
Bounded: ``sessions`` and ``max_seconds``.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from pipelines.fashion_mnist import CLASSES

log = logging.getLogger(__name__)
ARMS = ("home", "popular", "shuffled", "reversed")


@dataclass(frozen=True)
class SimConfig:
    sessions: int = 2_000
    k: int = 10  # items per page
    seed: int = 0
    eta: float = 0.7  # examination(k) = k ** -eta
    max_attraction: float = 0.6  # attraction = max · r / (r + half), r = taste relative to indifference
    half: float = 4.0
    p_cart: float = 0.3  # given a click, at full attraction
    p_purchase: float = 0.5  # given a cart
    arms: tuple[float, ...] = (0.4, 0.2, 0.4)  # shares of home, popular, shuffled, reversed sessions (missing: 0)
    concurrency: int = 8
    max_seconds: float = 600.0

    def examination(self) -> np.ndarray:
        return np.arange(1, self.k + 1, dtype=np.float64) ** -self.eta  # (K,)


@dataclass
class SimResult:
    sessions: int = 0
    events: int = 0
    rejected: int = 0
    failed: int = 0  # sessions whose page or events the service did not take
    seconds: float = 0.0
    lists: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ARMS, 0))
    clicks: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ARMS, 0))
    carts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ARMS, 0))
    purchases: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ARMS, 0))
    revenue: dict[str, float] = field(default_factory=lambda: dict.fromkeys(ARMS, 0.0))
    # per experiment variant that served the page (the response's ``variant``; "" for none): lists,
    # clicks, and the expected clicks of the pages shown (sum of examination x attraction: the truth)
    variants: dict[str, dict[str, float]] = field(default_factory=dict)

    def ctr(self, arm: str) -> float:
        return self.clicks[arm] / max(self.lists[arm], 1)  # per list; per impression: divide by k


class Truth:
    """Each shopper's true taste for any catalog item, from the generator's parameters."""

    def __init__(self, data: Path) -> None:
        truth = data / "truth"
        if not (truth / "users.parquet").is_file():
            raise FileNotFoundError(f"{truth / 'users.parquet'} is missing: the simulator needs fashion-shop's truth/")
        users = pd.read_parquet(truth / "users.parquet")
        items = pd.read_parquet(data / "items.parquet", columns=["item_id", "category", "price"]).merge(
            pd.read_parquet(truth / "items.parquet", columns=["item_id", "style", "price_bucket"]), on="item_id")
        code = {c: i for i, c in enumerate(CLASSES)}
        self.user_ids = users["user_id"].astype(str).to_numpy()
        self.weight = users["sessions_per_day"].to_numpy(np.float64)  # active shoppers come more often
        n_c, n_s = len(CLASSES), sum(c.startswith("phi_0_") for c in users.columns)
        n_b = sum(c.startswith("pi_") for c in users.columns)
        self.theta = users[[f"theta1_{c}" for c in range(n_c)]].to_numpy(np.float64)  # (U, C)
        self.phi = users[[f"phi_{c}_{s}" for c in range(n_c) for s in range(n_s)]].to_numpy(
            np.float64).reshape(-1, n_c, n_s)  # (U, C, S)
        self.pi = users[[f"pi_{b}" for b in range(n_b)]].to_numpy(np.float64)  # (U, B)
        self.indifferent = 1.0 / (n_c * n_s * n_b)
        self.item = {iid: (code.get(c, -1), int(s), int(b), float(p)) for iid, c, s, b, p in zip(
            items["item_id"].astype(str), items["category"], items["style"], items["price_bucket"], items["price"],
            strict=True)}

    def taste(self, u: int, item_ids: list[str]) -> np.ndarray:
        """θ_c · φ_{c,s} · π_b relative to an indifferent shopper's; 0 for items the truth lacks.  (K,)"""
        out = np.zeros(len(item_ids))
        for j, iid in enumerate(item_ids):
            c, s, b, _ = self.item.get(iid, (-1, 0, 0, 0.0))
            if c >= 0:
                out[j] = self.theta[u, c] * self.phi[u, c, s] * self.pi[u, b] / self.indifferent
        return out

    def price(self, item_id: str) -> float:
        return self.item.get(item_id, (-1, 0, 0, 0.0))[3]


def _session(client: httpx.Client, truth: Truth, cfg: SimConfig, i: int, ts0: float
             ) -> tuple[str, list[dict], list, tuple[str, float]]:
    """One session: the page request, the events the shopper generates (not yet sent), and (the
    experiment variant that served the page, the page's expected clicks)."""
    rng = np.random.default_rng([cfg.seed, i])
    u = int(rng.choice(len(truth.user_ids), p=truth.weight / truth.weight.sum()))
    user, session = str(truth.user_ids[u]), f"sim-{cfg.seed}-{i}"
    shares = np.zeros(len(ARMS))
    shares[: len(cfg.arms)] = cfg.arms
    arm = ARMS[int(rng.choice(len(ARMS), p=shares / shares.sum()))]
    body = {"k": cfg.k, "placement": arm, "session_id": session} | ({} if arm == "popular" else {"user_id": user})
    r = client.post("/v1/recommendations", json=body)
    r.raise_for_status()
    page = r.json()
    shown = [it["item_id"] for it in page["items"]]
    if arm == "shuffled":
        shown = [shown[j] for j in rng.permutation(len(shown))]
    elif arm == "reversed":
        shown = shown[::-1]
    rec = page.get("rec_id")
    ts = datetime.fromtimestamp(ts0, UTC).isoformat()
    events: list[dict] = []

    def ev(typ: str, **kw) -> dict:
        return {"event_id": f"{session}-{len(events)}", "type": typ, "user_id": user, "session_id": session,
                "ts": ts, "rec_id": rec, "placement": arm} | kw

    events.append(ev("list_view"))
    taste = truth.taste(u, shown)
    attraction = cfg.max_attraction * taste / (taste + cfg.half)  # (K,)
    expected = float(cfg.examination()[: len(shown)] @ attraction)
    examined = rng.random(len(shown)) < cfg.examination()[: len(shown)]
    clicked = examined & (rng.random(len(shown)) < attraction)
    outcome = []
    for j in np.flatnonzero(clicked):
        iid, pos = shown[j], int(j) + 1
        events.append(ev("click", item_id=iid, position=pos))
        outcome.append(("click", 0.0))
        if rng.random() < cfg.p_cart * attraction[j] / cfg.max_attraction:
            events.append(ev("cart", item_id=iid, position=pos))
            outcome.append(("cart", 0.0))
            if rng.random() < cfg.p_purchase:
                price = truth.price(iid)
                events.append(ev("purchase", item_id=iid, position=pos, price=price, quantity=1,
                                 order_id=f"o-{session}-{pos}"))
                outcome.append(("purchase", price))
    return arm, events, outcome, (page.get("variant") or "", expected)


def simulate(base_url: str, data: Path, cfg: SimConfig, *, headers: dict[str, str] | None = None) -> SimResult:
    """Run ``cfg.sessions`` sessions against the service at ``base_url``; the counts the shoppers made."""
    truth = Truth(data)
    res, lock = SimResult(), threading.Lock()
    t0 = time.monotonic()
    deadline = t0 + cfg.max_seconds

    def one(i: int, client: httpx.Client) -> None:
        if time.monotonic() > deadline:
            return
        try:
            arm, events, outcome, (variant, expected) = _session(client, truth, cfg, i, time.time())
            r = client.post("/v1/events", json={"events": events})
            r.raise_for_status()
            rejected = len(r.json().get("rejected", []))
        except (httpx.HTTPError, KeyError, ValueError) as e:
            log.warning("session %d: %s", i, e)
            with lock:
                res.failed += 1
            return
        with lock:
            res.sessions += 1
            res.events += len(events) - rejected
            res.rejected += rejected
            res.lists[arm] += 1
            for typ, price in outcome:
                getattr(res, typ + "s")[arm] += 1
                res.revenue[arm] += price
            v = res.variants.setdefault(variant, {"lists": 0, "clicks": 0, "expected": 0.0})
            v["lists"] += 1
            v["clicks"] += sum(typ == "click" for typ, _ in outcome)
            v["expected"] += expected

    with httpx.Client(base_url=base_url, headers=headers or {}, timeout=30) as client, \
            ThreadPoolExecutor(cfg.concurrency) as pool:
        list(pool.map(lambda i: one(i, client), range(cfg.sessions)))
    res.seconds = time.monotonic() - t0
    log.info("simulated %d sessions (%d failed) in %.1f s: %d events", res.sessions, res.failed, res.seconds,
             res.events)
    return res
