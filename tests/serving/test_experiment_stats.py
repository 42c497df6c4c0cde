"""The experiment statistics (serving/experiment_stats.py) on data whose truth is known: the delta
method against a bootstrap over shoppers, interval coverage, the always-valid p-value under daily
looks against naive peeking, the ratio check, the power estimate, and team-draft interleaving."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.power import NormalIndPower

from serving import experiment_stats as xs
from serving.experiments import Experiment, Variant
from serving.interleave import team_draft


def _shoppers(rng: np.random.Generator, n: int, ctr: float) -> tuple[np.ndarray, np.ndarray]:
    """Clustered data: each shopper sees 1-20 lists of 10 and has their own CTR around ``ctr``."""
    impressions = 10 * rng.integers(1, 21, n)
    own = rng.beta(2, 2 * (1 - ctr) / ctr, n)  # mean ctr, spread between shoppers
    return rng.binomial(impressions, own).astype(float), impressions.astype(float)


def test_delta_method_matches_a_bootstrap_over_shoppers() -> None:
    rng = np.random.default_rng(0)
    y, x = _shoppers(rng, 3000, 0.05)
    est = xs.ratio(y, x)
    assert est.value == pytest.approx(y.sum() / x.sum())
    boot = [(y[i].sum() / x[i].sum()) for i in (rng.integers(0, len(y), len(y)) for _ in range(400))]
    assert est.se == pytest.approx(np.std(boot), rel=0.15)
    naive = np.sqrt(est.value * (1 - est.value) / x.sum())  # impressions as independent trials
    assert est.se > 1.5 * naive  # clustering matters: the naive interval is far too narrow


def test_intervals_cover_the_truth_and_lift_is_unbiased() -> None:
    rng = np.random.default_rng(1)
    cover_diff = cover_lift = 0
    runs = 300
    for _ in range(runs):
        c, t = xs.ratio(*_shoppers(rng, 800, 0.05)), xs.ratio(*_shoppers(rng, 800, 0.06))
        d, lf = xs.difference(t, c), xs.lift(t, c)
        cover_diff += d.low <= 0.01 <= d.high
        cover_lift += lf.low <= 0.2 <= lf.high
    assert 0.91 <= cover_diff / runs <= 0.99
    assert 0.91 <= cover_lift / runs <= 0.99


def _aa_looks(rng: np.random.Generator, days: int, per_day: int) -> list[tuple[float, float]]:
    """An A/A test looked at daily: each day's cumulative (lift, se) of two identical arms."""
    ya, xa, yb, xb = [], [], [], []
    out = []
    for _ in range(days):
        y, x = _shoppers(rng, per_day, 0.05)
        ya.append(y)
        xa.append(x)
        y, x = _shoppers(rng, per_day, 0.05)
        yb.append(y)
        xb.append(x)
        lf = xs.lift(xs.ratio(np.concatenate(yb), np.concatenate(xb)), xs.ratio(np.concatenate(ya), np.concatenate(xa)))
        out.append((lf.value, lf.se))
    return out


def test_always_valid_p_keeps_false_positives_under_daily_peeking() -> None:
    rng = np.random.default_rng(2)
    runs, msprt_fp, naive_fp = 200, 0, 0
    for _ in range(runs):
        looks = _aa_looks(rng, 14, 150)
        p = 1.0
        for lift, se in looks:
            p = min(p, xs.msprt_p(lift, se * se, tau=0.1))
        msprt_fp += p < 0.05
        naive_fp += any(abs(lift / se) > 1.96 for lift, se in looks)  # "significant" at any look
    assert msprt_fp / runs <= 0.05
    assert naive_fp / runs > 0.10  # peeking at a fixed-horizon test inflates its 5 %


def test_always_valid_interval_holds_the_p_value_decision() -> None:
    for theta, var in ((0.1, 0.001), (0.01, 0.001), (-0.2, 0.0004)):
        iv = xs.always_valid(theta, var, tau=0.1, alpha=0.05)
        excludes_zero = iv.low > 0 or iv.high < 0
        assert excludes_zero == (xs.msprt_p(theta, var, tau=0.1) < 0.05)


def test_ratio_check_flags_a_broken_split() -> None:
    assert xs.srm_test([5000, 5040], [0.5, 0.5]) > 0.1
    assert xs.srm_test([5000, 4500], [0.5, 0.5]) < xs.SRM_ALPHA  # 10 % of one arm lost
    assert xs.srm_test([9000, 1000], [0.9, 0.1]) > 0.1


def test_power_agrees_with_statsmodels_and_grows_for_small_effects() -> None:
    c = xs.Estimate(value=0.05, low=0.0, high=0.1, se=0.001)
    n5, n10 = xs.shoppers_needed(c, 1000, 0.05, 0.05), xs.shoppers_needed(c, 1000, 0.10, 0.05)
    sd = 0.001 * np.sqrt(1000)
    assert n5 == int(np.ceil(NormalIndPower().solve_power(0.05 * 0.05 / sd, alpha=0.05, power=0.8)))
    assert n5 == pytest.approx(4 * n10, rel=0.02)


def _exp(mode: str = "ab") -> Experiment:
    return Experiment(experiment_id="x1", name="t", placements=["home"], mode=mode, salt="s",
                      variants=[Variant(name="control", share=0.5), Variant(name="new", share=0.5)])


def test_analyse_finds_the_better_variant_from_list_rows() -> None:
    rng = np.random.default_rng(3)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for name, ctr in (("control", 0.05), ("new", 0.08)):
        for s in range(1500):
            for k in range(int(rng.integers(1, 4))):
                rows.append({"variant": name, "shopper": f"{name}{s}", "rec_id": f"{name}{s}-{k}",
                             "ts": t0 + timedelta(hours=int(rng.integers(0, 72))), "impressions": 10,
                             "clicks": int(rng.binomial(10, ctr)), "purchases": 0, "revenue": 0.0})
    a = xs.analyse(pd.DataFrame(rows), _exp(), now=t0 + timedelta(days=3))
    [cmp] = a.comparisons
    assert cmp.decision == "better" and cmp.p_always_valid < 0.05
    assert cmp.lift.low < 0.6 < cmp.lift.high
    assert len(cmp.looks) == 3 and not a.srm_flagged
    assert a.variants[1].metrics["ctr"].value == pytest.approx(0.08, abs=0.01)


def test_team_draft_is_fair_and_complete() -> None:
    a = [{"item_id": f"a{i}"} for i in range(10)]
    b = [{"item_id": f"b{i}"} for i in range(5)] + [{"item_id": f"a{i}"} for i in range(5)]
    firsts = 0
    for seed in range(400):
        page, teams = team_draft(a, b, 10, random.Random(seed))
        ids = [p["item_id"] for p in page]
        assert len(ids) == len(set(ids)) == 10
        assert abs(teams.count("A") - teams.count("B")) <= 1
        for item, team in zip(ids, teams, strict=True):
            assert item in {x["item_id"] for x in (a if team == "A" else b)}
        firsts += teams[0] == "A"
    assert 160 < firsts < 240  # the coin: neither ranking owns the top slot


def test_preference_counts_each_shopper_once() -> None:
    teams = pd.DataFrame({"shopper": ["s1", "s1", "s2", "s3", "s3", "s4"],
                          "team": ["control", "new", "new", "control", "new", "control"],
                          "clicks": [1, 2, 1, 1, 1, 0], "rec_id": list("abcdef"), "ts": [0] * 6})
    p = xs.preference(teams, _exp("interleave"))
    assert (p.prefer_control, p.prefer_challenger, p.ties, p.shoppers) == (0, 2, 1, 3)
    assert p.p_value == pytest.approx(0.5)
