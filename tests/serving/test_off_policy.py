"""Off-policy estimates (serving/off_policy.py): exploration's logged propensities are the real
frequencies, IPS / SNIPS recover a candidate ordering's CTR on clicks drawn from a position-based
model, and the service logs explored pages that the estimate reads back."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serving.off_policy import estimate, explore, logged_lists
from tests.helpers import eventually
from tests.serving.conftest import READ, make_client


def test_logged_propensities_are_the_frequencies_of_each_item_at_each_position() -> None:
    items = [{"item_id": f"i{j}"} for j in range(6)]
    rng, m, rate, n = random.Random(0), 4, 0.3, 40_000
    seen, claimed = Counter(), {}
    for _ in range(n):
        page, props, order = explore(items, rate, m, rng)
        assert [items[j] for j in order] == page and page[m:] == items[m:]
        for k, (it, p) in enumerate(zip(page, props, strict=True)):
            seen[(it["item_id"], k)] += 1
            claimed[(it["item_id"], k)] = p
    for (item, k), p in claimed.items():
        assert seen[(item, k)] / n == pytest.approx(p, abs=0.01)
    assert claimed[("i0", 0)] == pytest.approx(0.7 + 0.3 / 4) and claimed[("i5", 5)] == 1.0


def _pbm_log(rng: np.random.Generator, n: int, m: int, rate: float) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Lists of ``m`` items whose service score is their attraction plus noise; clicks ~ exam(k) x attraction."""
    exam = np.arange(1, m + 1) ** -0.8  # (M,)
    attraction = rng.beta(1, 6, (n, m))  # (N, M), per list
    score = attraction + rng.normal(0, 0.05, (n, m))
    rows = []
    for i in range(n):
        order = np.argsort(-score[i])
        items = [{"item_id": str(j), "score": score[i, j]} for j in order]
        page, props, _ = explore(items, rate, m, random.Random(int(rng.integers(1 << 30))))
        for k, (it, p) in enumerate(zip(page, props, strict=True)):
            j = int(it["item_id"])
            rows.append({"rec_id": f"r{i}", "item_id": it["item_id"], "position": k + 1, "score": it["score"],
                         "propensity": p, "clicks": int(rng.random() < exam[k] * attraction[i, j])})
    return pd.DataFrame(rows), exam, attraction


def test_ips_recovers_a_candidate_orderings_ctr() -> None:
    rng = np.random.default_rng(0)
    m = 5
    log, exam, attraction = _pbm_log(rng, 20_000, m, rate=0.5)
    truth = {"reversed": np.mean([exam @ np.sort(a) for a in attraction]) / m,  # lowest attraction first
             "random": exam.mean() * attraction.mean()}
    for cand, want in truth.items():
        est = estimate(log, cand, m)
        assert est.lists == 20_000 and est.matched > 0
        assert est.ips == pytest.approx(want, rel=0.08), cand
        assert est.ips_low < want < est.ips_high, cand
        assert est.snips == pytest.approx(want, rel=0.08), cand
    # the logging policy's own ordering, where the log is densest
    assert estimate(log, "logged", m).ips == pytest.approx(
        np.mean([exam @ a[np.argsort(-s)] for a, s in zip(attraction, attraction, strict=True)]) / m, rel=0.08)


def test_the_service_logs_explored_pages_and_estimates_from_them(artifacts: Path) -> None:
    with make_client(artifacts, events=True, explore_rate=1.0, explore_positions=5,
                     explore_placements=["home"]) as c:
        users = c.get("/v1/merch/shoppers", params={"limit": 30}, headers=READ).json()["user_ids"]
        assert c.get("/v1/analytics/off-policy", headers=READ).status_code == 409  # nothing explored yet
        for n, u in enumerate(users):
            plain = c.post("/v1/recommendations", json={"user_id": u, "k": 8, "placement": "category-page"}).json()
            page = c.post("/v1/recommendations", json={"user_id": u, "k": 8, "placement": "home"}).json()
            ids = [i["item_id"] for i in page["items"]]
            assert sorted(ids[:5]) == sorted(i["item_id"] for i in plain["items"][:5])  # the top 5, reordered
            assert ids[5:] == [i["item_id"] for i in plain["items"][5:]]
            c.post("/v1/events", json={"events": [{"event_id": f"c{n}", "type": "click", "user_id": u,
                                                   "rec_id": page["rec_id"], "item_id": ids[0], "position": 1}]})
        served = c.app.state.service.served
        eventually(lambda: not served.queue, what="served lists written")
        log = logged_lists(c.app.state.service.events_root, "home")
        assert len(log) == 8 * len(users) and np.allclose(log[log.position <= 5].propensity, 0.2)
        assert set(log[log.position > 5].propensity) == {1.0} and log.clicks.sum() == len(users)
        got = c.get("/v1/analytics/off-policy", params={"candidate": "logged", "placement": "home"},
                    headers=READ).json()
        assert got["lists"] == len(users) and got["positions"] == 5
        assert got["ips"] == pytest.approx(estimate(log, "logged", 5).ips)
        assert c.get("/v1/analytics/off-policy", params={"candidate": "nope"}, headers=READ).status_code == 422
