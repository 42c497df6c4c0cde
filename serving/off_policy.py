"""Off-policy estimates (docs/experiments.md): what a candidate ordering's CTR would be, from the
served log, before it serves anyone.

Exploration (``explore_rate`` > 0, off by default): on that share of pages the top ``m`` items the
service chose are shown in a uniformly random order. Every logged item carries its propensity: the
probability, under this mixed policy, that the item appears at the position it was shown,
p(i, k) = (1 - rate) * [the service put i at k] + rate / m, for the top m positions.

Estimator: the item-position inverse propensity score (Li, Kim, Zitouni 2018, "Offline evaluation
of ranking policies with click models") under the position-based click model: a candidate that
puts item i at position k earns the clicks the log saw for i at k, weighted by 1 / p(i, k):
    IPS   = 1 / (N m) * sum_lists sum_{k <= m} click(i_k, k) * P(cand puts i_k at k) / p(i_k, k)
    SNIPS = IPS / (1 / (N m) * sum_lists sum_{k <= m} P(cand puts i_k at k) / p(i_k, k))
both per impression of the top m. Unbiased (IPS) when every (item, position) the candidate uses
has a positive propensity — true for any reordering of the service's own top m, the candidates
here — and clicks depend on the item and the position only.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel

from serving.experiment_stats import normal_interval
from serving.online import attributed, connect

CANDIDATES = ("logged", "reversed", "random")  # orderings of the service's own top m


class OffPolicyEstimate(BaseModel):
    candidate: str
    placement: str | None
    positions: int
    lists: int  # logged lists with propensities
    matched: int  # (item, position) pairs the candidate shares with the log
    ips: float
    ips_low: float
    ips_high: float
    snips: float


def explore(items: list[dict], rate: float, m: int, rng: random.Random
            ) -> tuple[list[dict], list[float], list[int]]:
    """(the page, each item's propensity, where each shown item was in the service's order): with
    probability ``rate`` its top ``m`` items shuffled."""
    m = min(m, len(items))
    if m < 2:
        return items, [1.0] * len(items), list(range(len(items)))
    top = list(range(m))
    shuffled = rng.random() < rate
    if shuffled:
        rng.shuffle(top)
    page = [items[j] for j in top] + items[m:]
    props = [(1 - rate) * (j == k) + rate / m for k, j in enumerate(top)] + [1.0] * (len(items) - m)
    return page, props, top + list(range(m, len(items)))


def candidate_probability(lists: pd.DataFrame, candidate: str, m: int) -> np.ndarray:
    """Per logged row of the top m, the probability that the candidate puts the row's item at the
    row's position. ``logged``: the service's order by its score (what it shows without
    exploration); ``reversed``: that order upside down; ``random``: a uniformly random order (1/m
    everywhere: the expectation, not one draw, so no noise is added)."""
    if candidate not in CANDIDATES:
        raise ValueError(f"unknown candidate {candidate!r}; choose from {CANDIDATES}")
    if candidate == "random":
        return np.full(len(lists), 1.0 / m)
    key = lists["score"].to_numpy(np.float64) * (1 if candidate == "logged" else -1)
    rank = pd.Series(-key, index=lists.index).groupby(lists["rec_id"]).rank(method="first")
    return (rank.to_numpy(np.int64) == lists["position"].to_numpy()).astype(np.float64)


def estimate(lists: pd.DataFrame, candidate: str, m: int, *, placement: str | None = None,
             alpha: float = 0.05) -> OffPolicyEstimate:
    """IPS and SNIPS of ``candidate``'s CTR over the top ``m`` positions from logged rows (rec_id,
    item_id, position, score, propensity, clicks) of lists with propensities."""
    top = lists[(lists["position"] <= m) & lists["propensity"].notna()]
    n = top["rec_id"].nunique()
    if n == 0:
        return OffPolicyEstimate(candidate=candidate, placement=placement, positions=m, lists=0, matched=0,
                                 ips=math.nan, ips_low=math.nan, ips_high=math.nan, snips=math.nan)
    prob = candidate_probability(top, candidate, m)
    w = prob / top["propensity"].to_numpy(np.float64)
    value = w * top["clicks"].to_numpy(np.float64)
    per_list = pd.DataFrame({"rec_id": top["rec_id"].to_numpy(), "v": value, "w": w}).groupby("rec_id").sum()
    ips = per_list["v"].sum() / (n * m)
    iv = normal_interval(ips, per_list["v"].std(ddof=1) / m / math.sqrt(n) if n > 1 else math.nan, alpha)
    weight = per_list["w"].sum() / (n * m)
    return OffPolicyEstimate(candidate=candidate, placement=placement, positions=m, lists=n,
                             matched=int((prob > 0).sum()), ips=ips, ips_low=iv.low, ips_high=iv.high,
                             snips=ips / weight if weight > 0 else math.nan)


def logged_lists(root: Path, placement: str | None = None) -> pd.DataFrame:
    """Every served item with a propensity (explored placements), with its attributed clicks."""
    con = connect()
    cols = ["rec_id", "item_id", "position", "score", "propensity", "clicks"]
    if not attributed(con, root):
        return pd.DataFrame(columns=cols)
    where = "AND placement = ?" if placement else ""
    return con.execute(f"SELECT {', '.join(cols)} FROM io WHERE propensity IS NOT NULL {where}",
                       [placement] if placement else []).df()
