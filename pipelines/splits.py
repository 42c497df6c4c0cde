"""Deterministic train/valid/test splits of an events table.

- ``temporal-user`` (default): each user's events sorted by timestamp then item id; the last
  floor(n/10) go to test, the floor(n/10) before them to validation, the rest to training.
- ``random-user``: the same counts per user, but the order within a user is a seeded shuffle
  (for comparison with published random-split tables).
- ``temporal-global``: one cut-off for everybody at the 80% and 90% quantiles of time (what a
  nightly job faces: train on the past, evaluate on the future).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.tables import write_table

KINDS = ("temporal-user", "random-user", "temporal-global")
PARTS = ("train", "valid", "test")


def _id_rank(ids: pd.Series) -> np.ndarray:
    """Sort key of ids: numeric order when every id is an integer string (MovieLens), else text."""
    num = pd.to_numeric(ids, errors="coerce")
    if num.notna().all():
        return num.to_numpy()
    return pd.factorize(ids, sort=True)[0]


def _per_user(events: pd.DataFrame, order_key: np.ndarray, valid_frac: float, test_frac: float) -> np.ndarray:
    """Part label (0 train, 1 valid, 2 test) for each row, given a within-user order key."""
    user_codes, _ = pd.factorize(events["user_id"], sort=True)
    order = np.lexsort((order_key, user_codes))
    users = user_codes[order]
    _, start, counts = np.unique(users, return_index=True, return_counts=True)
    n = np.repeat(counts, counts)
    rank = np.arange(len(users)) - np.repeat(start, counts)  # position within the user
    n_test = np.floor(n * test_frac).astype(int)
    n_valid = np.floor(n * valid_frac).astype(int)
    part_sorted = np.where(rank >= n - n_test, 2, np.where(rank >= n - n_test - n_valid, 1, 0))
    part = np.empty(len(users), np.int8)
    part[order] = part_sorted
    return part


def split_events(
    events: pd.DataFrame,
    kind: str = "temporal-user",
    *,
    valid_frac: float = 0.1,
    test_frac: float = 0.1,
    seed: int = 0,
) -> dict[str, pd.DataFrame]:
    if kind not in KINDS:
        raise ValueError(f"unknown split kind {kind!r}; choose from {KINDS}")
    events = events.reset_index(drop=True)
    if kind == "temporal-global":
        ts = events["ts"]
        cut_valid = ts.quantile(1 - valid_frac - test_frac)
        cut_test = ts.quantile(1 - test_frac)
        part = np.where(ts >= cut_test, 2, np.where(ts >= cut_valid, 1, 0))
    else:
        if kind == "temporal-user":
            # ts then item id: lexsort's last key is primary, so build a combined rank.
            key = np.lexsort((_id_rank(events["item_id"]), events["ts"].to_numpy()))
            rank = np.empty(len(events), np.int64)
            rank[key] = np.arange(len(events))
        else:
            rank = np.random.default_rng(seed).permutation(len(events))
        part = _per_user(events, rank, valid_frac, test_frac)
    return {name: events[part == i].reset_index(drop=True) for i, name in enumerate(PARTS)}


def write_splits(splits: dict[str, pd.DataFrame], out: Path) -> None:
    for name, df in splits.items():
        write_table(df, out / f"{name}.parquet")
