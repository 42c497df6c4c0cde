"""The placements' lists (recsys/placements.py) on hand-made touches: the features, live events, the
repeat-aware merge, continue, buy-again and complements, and the bundle file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.placements import FEATURES, MODELS, PlacementModels, Touched, design, recency_rank
from recsys.repeat_sources import bundle_models, write_fit

NAN = np.nan


def _touched(rows, age, n, cart, buys, buy_age) -> Touched:
    f = lambda x: np.asarray(x, np.float32)  # noqa: E731
    return Touched(np.asarray(rows, np.int64), f(age), f(n), f(cart), f(np.zeros(len(rows))), f(buys), f(buy_age))


def _models(coef: dict[str, np.ndarray] | None = None, hit_rate=(0.3, 0.2, 0.1), interval=None, n_items: int = 10,
            comp: dict[int, list[tuple[int, float]]] | None = None) -> PlacementModels:
    coef = coef or {}
    comp = comp or {}
    off = np.zeros(n_items + 1, np.int64)
    rows, score = [], []
    for i in range(n_items):
        for r, s in comp.get(i, []):
            rows.append(r), score.append(s)
        off[i + 1] = len(rows)
    iv = np.full(n_items, NAN, np.float32) if interval is None else np.asarray(interval, np.float32)
    return PlacementModels({m: coef.get(m, np.zeros(1 + len(FEATURES))) for m in MODELS}, np.asarray(hit_rate), iv,
                           off, np.asarray(rows, np.int64), np.asarray(score, np.float32))


def test_design_by_hand() -> None:
    age = np.array([0.0, 3.0])
    x = design(age, np.array([1.0, 0.0]), np.array([1.0, 0.0]), np.array([2.0, 0.0]), np.array([0.0, 2.0]),
               np.array([NAN, 20.0]), np.array([10.0, 10.0]), recency_rank(age))
    assert x.shape == (2, 1 + len(FEATURES))
    np.testing.assert_allclose(x[0], [1, 0, np.log(2), 1, 2, 0, 0, 0, 0, 0])  # never bought: no due time
    np.testing.assert_allclose(x[1], [1, np.log(4), 0, 0, 0, np.log(3), np.log(2), np.log(2) ** 2, 1, np.log(2)])
    assert recency_rank(np.array([5.0, 0.5, 2.0])).tolist() == [2, 0, 1]


def test_live_events_are_touches_of_age_zero() -> None:
    t = _touched([3, 5], [4.0, 9.0], [2, 1], [1, 0], [0, 0], [NAN, NAN])
    live = t.with_live(np.array([5, 7]), np.array([3]))
    got = dict(zip(live.rows.tolist(), zip(live.age.tolist(), live.n.tolist(), live.buys.tolist(),
                                          live.cart.tolist(), strict=True), strict=True))
    assert got == {3: (0.0, 2.0, 1.0, 0.0), 5: (0.0, 2.0, 0.0, 0.0), 7: (0.0, 1.0, 0.0, 0.0)}
    assert live.buy_age[live.rows == 3][0] == 0 and np.isnan(live.buy_age[live.rows == 7][0])


def test_home_merges_a_seen_item_where_its_chance_beats_the_rank_and_keeps_the_ranker_order() -> None:
    coef = np.zeros(1 + len(FEATURES))
    coef[0], coef[2] = -4.0, 4.0  # chance rises with touches: 0.5 at one touch ... ~0.018 at none
    m = _models({"home": coef}, hit_rate=(0.6, 0.3, 0.2, 0.1, 0.05))
    t = _touched([8, 9], [1.0, 1.0], [np.e - 1, 0.0], [0, 0], [0, 0], [NAN, NAN])
    ranked = np.array([1, 9, 2, 3, 4, 5])  # the ranker found seen item 9 too
    rows, p, repeat = m.home_rows(t, ranked)
    # 8 (0.5) after the first discovery item (0.6); 9 (0.018) after every one above it; 9 not twice
    assert rows.tolist() == [1, 8, 2, 3, 4, 5, 9]
    assert repeat.tolist() == [False, True, False, False, False, False, True]
    assert p[1] == pytest.approx(0.5) and np.all(np.diff(p) <= 0)


def test_continue_buy_again_and_complements() -> None:
    coef = {"continue": np.zeros(1 + len(FEATURES)), "buy_again": np.zeros(1 + len(FEATURES))}
    coef["continue"][3] = 3.0  # an open cart
    coef["buy_again"][7] = -1.0  # due_sq
    interval = [NAN] * 10
    interval[4], interval[6] = 10.0, 30.0
    m = _models(coef, interval=interval, comp={2: [(5, 3.0), (6, 1.0), (3, 9.0)], 4: [(6, 2.5), (2, 1.0)]})
    # 1 viewed, 2 carted (open), 3 bought and not touched since, 4 bought 10 days ago (due), 6 bought 1 day ago
    t = _touched([1, 2, 3, 4, 6], [1, 2, 5, 10, 1], [1, 1, 1, 1, 1], [0, 1, 0, 0, 0], [0, 0, 1, 1, 1],
                 [NAN, NAN, 5, 10, 1])
    assert m.continue_rows(t)[0].tolist() == [2, 1]
    assert m.buy_again_rows(t)[0].tolist() == [4, 6]  # 3 has no interval: a one-off product
    codes = np.array([0, 0, 1, 1, 2, 4, 3, 0, 0, 0])  # category per row: 2 and 3 are one category
    rows, score = m.complements(np.array([2, 4]), codes)
    assert rows.tolist() == [6, 5] and score.tolist() == [3.5, 3.0]  # 3: the cart's category; 2: in the cart


def test_bundle_models_round_trip(tmp_path: Path) -> None:
    t0 = pd.Timestamp("2026-08-01", tz="UTC")
    ev = pd.DataFrame([(f"s{n}", i, "purchase", t0 + pd.Timedelta(days=d)) for n in range(3)
                       for i, d in (("tee", 0), ("tee", 7), ("tee", 14), ("hat", 14.001))],
                      columns=["user_id", "item_id", "event", "ts"])
    items = pd.DataFrame({"item_id": ["coat", "hat", "tee"], "category": ["Coat", "Hat", "Tee"]})
    coef = {m: [0.1 * j for j in range(1 + len(FEATURES))] for m in MODELS}
    write_fit(tmp_path / "placements.json", coef, [0.2, 0.1])
    bundle_models(tmp_path / "placements.json", ev, items).save(tmp_path / "placements.npz")
    m = PlacementModels.load(tmp_path / "placements.npz")
    assert np.isnan(m.interval[0]) and np.isnan(m.interval[1]) and m.interval[2] == 7.0
    assert m.comp_rows[m.comp_off[2] : m.comp_off[3]].tolist() == [1]  # tee -> hat, bought together
    np.testing.assert_allclose(m.coef["home"], coef["home"])
    m.append_item()
    assert len(m.interval) == 4 and m.comp_off[-1] == m.comp_off[-2]
    (tmp_path / "bad.json").write_text('{"features": ["age"], "coef": {}, "hit_rate": []}')
    with pytest.raises(ValueError, match="features"):
        bundle_models(tmp_path / "bad.json", ev, items)


def test_models_over_other_features_are_refused_by_name(tmp_path: Path) -> None:
    m = _models()
    m.coef["home"] = np.zeros(4)  # a bundle from code with fewer features
    m.save(tmp_path / "p.npz")
    with pytest.raises(ValueError, match="coefficients"):
        PlacementModels.load(tmp_path / "p.npz")
