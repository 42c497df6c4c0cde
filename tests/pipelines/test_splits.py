import pandas as pd
import pytest

from pipelines.splits import split_events


def _events(n_by_user: dict[str, int]) -> pd.DataFrame:
    rows = []
    for u, n in n_by_user.items():
        for k in range(n):
            rows.append({"user_id": u, "item_id": str(100 - k), "event": "view",
                         "ts": pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=k)})
    return pd.DataFrame(rows)


def test_per_user_temporal_counts_by_hand() -> None:
    # n=25 -> floor(2.5)=2 test, 2 valid, 21 train; n=10 -> 1/1/8; n=9 -> 0/0/9
    ev = _events({"a": 25, "b": 10, "c": 9}).sample(frac=1, random_state=0)
    parts = split_events(ev, "temporal-user")
    count = {k: v.groupby("user_id").size().to_dict() for k, v in parts.items()}
    assert count["test"] == {"a": 2, "b": 1}
    assert count["valid"] == {"a": 2, "b": 1}
    assert count["train"] == {"a": 21, "b": 8, "c": 9}
    # test holds each user's latest events, valid the ones just before
    a = {k: v[v.user_id == "a"]["ts"] for k, v in parts.items()}
    assert a["train"].max() < a["valid"].min() and a["valid"].max() < a["test"].min()


def test_ties_in_time_break_by_numeric_item_id() -> None:
    t = pd.Timestamp("2024-01-01", tz="UTC")
    ev = pd.DataFrame({"user_id": ["u"] * 10, "item_id": [str(i) for i in (9, 10, 1, 2, 3, 4, 5, 6, 7, 8)],
                       "event": "view", "ts": [t] * 10})
    parts = split_events(ev, "temporal-user")
    assert parts["test"]["item_id"].tolist() == ["10"]  # numeric order: 9 < 10
    assert parts["valid"]["item_id"].tolist() == ["9"]


def test_random_split_is_seeded_and_keeps_counts() -> None:
    ev = _events({"a": 30, "b": 20})
    p1, p2 = split_events(ev, "random-user", seed=1), split_events(ev, "random-user", seed=1)
    p3 = split_events(ev, "random-user", seed=2)
    assert p1["test"].equals(p2["test"]) and not p1["test"].equals(p3["test"])
    assert p1["test"].groupby("user_id").size().to_dict() == {"a": 3, "b": 2}


def test_global_temporal_cutoff() -> None:
    ev = _events({"a": 50, "b": 50})
    parts = split_events(ev, "temporal-global")
    assert parts["train"]["ts"].max() < parts["valid"]["ts"].min() <= parts["valid"]["ts"].max() \
        < parts["test"]["ts"].min()
    assert sum(len(p) for p in parts.values()) == 100


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown split kind"):
        split_events(_events({"a": 3}), "by-moon-phase")
