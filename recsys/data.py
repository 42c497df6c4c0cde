"""Assemble recommender inputs from a canonical dataset and one of its splits.

Item index space: the catalog sorted by item id; row r has vocabulary index ``Vocab.index_of_row(r)``
(0 = padding, 1 = OOV), so score matrices, relevance sets and FAISS ids all use catalog rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.features import PROFILE_LEN, FeatureSpec, Vocab, history_matrix, last_items

log = logging.getLogger(__name__)


@dataclass
class Examples:
    """Training pairs (user state at the event, item of the event)."""

    user: np.ndarray  # (N,) user vocab index
    features: np.ndarray  # (N, F)
    history: np.ndarray  # (N, L) item vocab indices, most recent first
    item_row: np.ndarray  # (N,) catalog row of the positive
    profile_row: np.ndarray  # (N,) row of the user's long-term profile in RecData.train_profile


@dataclass
class EvalUsers:
    """Users to rank for: their state, what to exclude, what is relevant (catalog rows)."""

    user_ids: np.ndarray  # (U,) str
    user: np.ndarray  # (U,)
    features: np.ndarray  # (U, F)
    history: np.ndarray  # (U, L)
    profile: np.ndarray  # (U, P) long-term profile (vocab indices) from the seen events
    profile_w: np.ndarray  # (U, P) its weights
    exclude: list[np.ndarray]  # seen items, never recommended
    relevant: list[np.ndarray]  # ground truth


@dataclass
class RecData:
    spec: FeatureSpec
    items: pd.DataFrame  # catalog sorted by item_id
    item_inputs: dict[str, np.ndarray]  # item, category, price: (I,)
    image: np.ndarray | None  # (I, E) or None
    users: pd.DataFrame
    train: Examples
    item_counts: np.ndarray  # (I,) training interactions per item
    valid: EvalUsers
    test: EvalUsers
    split_dir: Path  # the {train,valid,test}.parquet these examples came from
    train_profile: np.ndarray  # (Ut, P) each training user's whole training history (vocab indices)
    train_profile_w: np.ndarray  # (Ut, P) its weights (FeatureSpec.user_profiles)

    @property
    def n_items(self) -> int:
        return len(self.items)


def _rows(spec: FeatureSpec, ids: pd.Series) -> np.ndarray:
    return spec.item_vocab.encode_rows(ids)  # catalog row; -1 = OOV


def _rows_per_user(user_ids: pd.Series, rows: np.ndarray, ids: np.ndarray) -> list[np.ndarray]:
    """Distinct catalog rows (sorted) of each user in ``ids``, in that order; OOV rows dropped."""
    u = pd.Index(ids).get_indexer(user_ids)
    keep = (u >= 0) & (rows >= 0)
    pairs = np.unique(np.stack([u[keep], rows[keep]], 1).astype(np.int64), axis=0)  # sorted by (user, row)
    bounds = np.searchsorted(pairs[:, 0], np.arange(len(ids) + 1))
    return [pairs[bounds[i] : bounds[i + 1], 1] for i in range(len(ids))]


def _eval_users(spec: FeatureSpec, users: pd.DataFrame, seen: pd.DataFrame, target: pd.DataFrame,
                max_users: int | None, seed: int) -> EvalUsers:
    target = target.assign(row=_rows(spec, target["item_id"]))
    target = target[target["row"] >= 0]
    ids = np.sort(target["user_id"].unique())
    if max_users is not None and len(ids) > max_users:
        ids = np.sort(np.random.default_rng(seed).choice(ids, max_users, replace=False))
    seen = seen[seen["user_id"].isin(ids)]
    hist = last_items(seen, spec.history_len).reindex(ids)
    profile, profile_w = spec.user_profiles(seen, ids)
    return EvalUsers(profile=profile, profile_w=profile_w,
        user_ids=ids,
        user=spec.user_vocab.encode(ids),
        features=spec.encode_user_features(ids, users),
        history=spec.encode_history([h if isinstance(h, list) else [] for h in hist]),
        exclude=_rows_per_user(seen["user_id"], _rows(spec, seen["item_id"]), ids),
        relevant=_rows_per_user(target["user_id"], target["row"].to_numpy(), ids),
    )


def load_rec_data(data_dir: Path, *, split: str = "temporal-user", split_dir: Path | None = None, history_len: int = 20,
                  image_vectors: Path | None = None, holdout_items: np.ndarray | None = None,
                  max_eval_users: int | None = None, seed: int = 0, profile_len: int = PROFILE_LEN,
                  event_weights: dict[str, float] | None = None, half_life_days: float = 0.0) -> RecData:
    """Read tables + split, fit the feature spec on training data, build examples and eval users.

    ``split_dir``: where the split's parts are (default ``DATA/splits/SPLIT``, what `vitrine data split`
    writes; the nightly job passes its split step's own directory).
    ``holdout_items``: item ids removed from training entirely (cold-start evaluation); they stay in
    the catalog and the vocabulary but their id embedding never trains.
    """
    items = pd.read_parquet(data_dir / "items.parquet").sort_values("item_id").reset_index(drop=True)
    users = pd.read_parquet(data_dir / "users.parquet")
    sp = split_dir or data_dir / "splits" / split
    if not (sp / "train.parquet").is_file():
        raise FileNotFoundError(f"{sp}: no split (run `vitrine data split {data_dir} --kind {split}`)")
    train, valid, test = (pd.read_parquet(sp / f"{p}.parquet") for p in ("train", "valid", "test"))
    fit_train = train if holdout_items is None else train[~train["item_id"].isin(holdout_items)]
    spec = FeatureSpec.fit(items, users, history_len=history_len, profile_len=profile_len,
                           event_weights=event_weights, half_life_days=half_life_days)
    image = None
    if image_vectors is not None:
        vec = np.load(image_vectors)
        order = pd.read_parquet(data_dir / "items.parquet", columns=["item_id"])["item_id"]
        image = vec[pd.Index(order).get_indexer(items["item_id"])].astype(np.float32)  # to sorted order

    ev = fit_train.sort_values(["user_id", "ts"], kind="stable")
    codes, _ = pd.factorize(ev["user_id"])
    item_idx = spec.item_vocab.encode(ev["item_id"])
    ex = Examples(user=spec.user_vocab.encode(ev["user_id"]),
                  features=spec.encode_user_features(ev["user_id"].to_numpy(), users),
                  history=history_matrix(codes, item_idx, history_len), item_row=Vocab.row_of_index(item_idx),
                  profile_row=codes)
    train_profile, train_profile_w = spec.user_profiles(ev, pd.unique(ev["user_id"]))  # rows in factorize order
    counts = np.bincount(ex.item_row[ex.item_row >= 0], minlength=len(items)).astype(np.float64)
    train_valid = pd.concat([train, valid])
    data = RecData(
        spec=spec, items=items, item_inputs=spec.encode_items(items), image=image, users=users, train=ex,
        item_counts=counts,
        valid=_eval_users(spec, users, train, valid, max_eval_users, seed),
        test=_eval_users(spec, users, train_valid, test, None, seed), split_dir=sp,
        train_profile=train_profile, train_profile_w=train_profile_w,
    )
    log.info("rec data: %d items, %d training pairs, %d valid users, %d test users", len(items), len(ex.user),
             len(data.valid.user_ids), len(data.test.user_ids))
    return data
