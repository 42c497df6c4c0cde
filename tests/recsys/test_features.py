import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.features import OOV, PAD, FeatureSpec, Vocab, history_matrix, last_items


def test_vocab_oov_and_json_round_trip() -> None:
    v = Vocab.fit(pd.Series(["b", "a", "c", None, "a"]))
    assert v.values == ["a", "b", "c"] and v.size == 5
    assert v.encode(["a", "c", "zzz", None]).tolist() == [2, 4, OOV, OOV]
    w = Vocab(**v.to_dict())
    assert w.encode(["b"]).tolist() == [3]


def test_hashed_vocab_is_stable_and_in_range() -> None:
    v = Vocab.fit(pd.Series([f"u{i}" for i in range(1000)]), max_vocab=100, hash_buckets=64)
    assert v.hash_buckets == 64 and v.size == 66
    a = v.encode([f"u{i}" for i in range(1000)])
    assert a.min() >= 2 and a.max() < 66
    assert len(np.unique(a)) > 50  # spreads over the buckets
    # the same value hashes the same in a fresh process (no per-process seed)
    code = ("from recsys.features import Vocab; "
            "print(Vocab(values=[], hash_buckets=64).encode(['u7', 'u999']).tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parents[2]).stdout.strip()
    assert out == str(v.encode(["u7", "u999"]).tolist())


def _spec() -> FeatureSpec:
    items = pd.DataFrame({"item_id": ["i1", "i2", "i3", "i4"], "category": ["a", "a", "b", "b"],
                          "price": [1.0, 2.0, 3.0, 4.0]})
    users = pd.DataFrame({"user_id": ["u1", "u2"], "age_band": ["18-24", "55+"], "score": [1.0, 2.0]})
    return FeatureSpec.fit(items, users, n_price_buckets=2, history_len=3)


def test_feature_spec_round_trip_encodes_identically(tmp_path: Path) -> None:
    spec = _spec()
    assert list(spec.user_features) == ["age_band"]  # numeric columns are not categorical features
    spec.save(tmp_path / "features.json")
    again = FeatureSpec.load(tmp_path / "features.json")
    items = pd.DataFrame({"item_id": ["i2", "new"], "category": ["b", "zzz"], "price": [1.5, 99.0]})
    for k in ("item", "category", "price"):
        np.testing.assert_array_equal(spec.encode_items(items)[k], again.encode_items(items)[k])
    enc = spec.encode_items(items)
    assert enc["item"].tolist() == [3, OOV] and enc["category"].tolist() == [3, OOV]
    assert enc["price"].tolist() == [1, 2]  # one edge at the median 2.5
    users = pd.DataFrame({"user_id": ["u1", "u2"], "age_band": ["18-24", "55+"]})
    assert spec.encode_user_features(["u2", "ghost"], users).tolist() == [[3], [OOV]]


def test_history_encoding_pads_and_truncates() -> None:
    spec = _spec()
    h = spec.encode_history([["i4", "i1", "i2", "i3"], [], ["nope"]])
    assert h.tolist() == [[5, 2, 3], [PAD, PAD, PAD], [OOV, PAD, PAD]]


def test_history_matrix_by_hand() -> None:
    users = np.array([0, 0, 0, 1, 1])
    items = np.array([10, 11, 12, 20, 21])
    H = history_matrix(users, items, 2)
    assert H.tolist() == [[0, 0], [10, 0], [11, 10], [0, 0], [20, 0]]


def test_last_items_most_recent_first() -> None:
    ev = pd.DataFrame({"user_id": ["a", "a", "a", "b"], "item_id": ["x", "y", "z", "w"],
                       "ts": pd.to_datetime([3, 1, 2, 1], unit="s", utc=True)})
    assert last_items(ev, 2).to_dict() == {"a": ["x", "z"], "b": ["w"]}


def test_features_module_is_torch_free() -> None:
    code = "import sys, recsys.features, recsys.metrics; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_user_profiles_weigh_event_types_and_recency_by_hand() -> None:
    items = pd.DataFrame({"item_id": ["i1", "i2", "i3", "i4"], "category": ["a"] * 4, "price": [1.0] * 4})
    users = pd.DataFrame({"user_id": ["u1", "u2"]})
    spec = FeatureSpec.fit(items, users, profile_len=2, half_life_days=10.0,
                           event_weights={"view": 1.0, "cart": 2.0, "purchase": 4.0})
    day = lambda d: pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(days=d)  # noqa: E731
    ev = pd.DataFrame({"user_id": ["u1", "u1", "u1", "u1", "u1", "u2"],
                       "item_id": ["i1", "i1", "i2", "i3", "zz", "i4"],
                       "event": ["view", "purchase", "view", "cart", "view", "view"],
                       "ts": [day(0), day(10), day(20), day(30), day(31), day(5)]})
    idx, w = spec.user_profiles(ev, np.array(["u1", "u2", "u3"]))
    # u1's last event is day 31 (an unknown item, dropped from the profile but not from "now"... it is
    # dropped before the clock is read, so u1's clock is day 30). Most recent first, cut at 2: i3, i2.
    assert idx[0].tolist() == [Vocab.index_of_row(2), Vocab.index_of_row(1)]
    np.testing.assert_allclose(w[0], [2.0, 1.0 * 0.5 ** (10 / 10)], rtol=1e-6)
    assert idx[1].tolist() == [Vocab.index_of_row(3), PAD] and w[1].tolist() == [1.0, 0.0]
    assert idx[2].tolist() == [PAD, PAD]  # no events: empty profile
    spec3 = FeatureSpec.fit(items, users, profile_len=3, half_life_days=10.0)
    idx3, w3 = spec3.user_profiles(ev, np.array(["u1"]))
    # i1: a view at day 0 (weight 1 · 0.5^3) plus a purchase at day 10 (4 · 0.5^2), summed
    np.testing.assert_allclose(w3[0, 2], 1 * 0.5**3 + 4 * 0.5**2, rtol=1e-6)
    again = FeatureSpec.from_json(spec3.to_json())
    assert again.profile_len == 3 and again.half_life_days == 10.0 and again.event_weights == spec3.event_weights


def test_user_tower_feed_pads_and_cuts_profiles() -> None:
    spec = FeatureSpec.fit(pd.DataFrame({"item_id": ["a", "b", "c"], "category": ["x"] * 3, "price": [1.0] * 3}),
                           pd.DataFrame({"user_id": ["u"]}), history_len=2, profile_len=2)
    feed = spec.user_tower_feed(np.array([2, 1]), np.zeros((2, 0), np.int64), [np.array([2, 1, 0]), np.array([])],
                                [(np.array([0, 1, 2]), np.array([3.0, 2.0, 1.0], np.float32)),
                                 (np.zeros(0, np.int64), np.zeros(0, np.float32))])
    assert feed["history"].tolist() == [[4, 3], [0, 0]]
    assert feed["profile"].tolist() == [[2, 3], [0, 0]] and feed["profile_weight"].tolist() == [[3.0, 2.0], [0, 0]]
