"""The ranking stage, one module for both sides (docs/architecture.md, "One request"): a block of
shoppers' tower candidates -> their union with the recall channels -> the ranker's features -> the
ranker's feed -> scores.

Serving's request batch (serving/recommend.py) and the ranker's training and test lists
(recsys/ranker.py) call the same ``candidate_block`` and ``ranker_feed``, so the ranker sees online
exactly the columns it was trained on. The columns are named in one place each: what the union says
about a candidate in ``recsys/union_kernel.py`` (``FIELDS``, one name per channel in ``CHANNELS``),
the ranker's dense features in ``recsys/rank_features.py`` (``DENSE``). An exported ranker names the
features it reads in its metadata, and ``RankerModel`` feeds it those, by name.

numpy, numba and ONNX Runtime only: serving imports this (the DCN-v2 itself is recsys/ranker.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.onnx_runtime import make_session, run
from recsys.channels import ChannelConfig, Channels, union_block
from recsys.rank_features import DENSE, LEGACY_NAMES, ItemStats, rank_features, tower_order


@dataclass
class Block:
    """A batch of shoppers' candidate lists, padded to one width C."""

    rows: np.ndarray  # (B, C) int64 catalog rows (past a shopper's length: row 0, never read)
    channels: np.ndarray  # (B, C, len(FIELDS)) float32: what the recall channels say about each
    lens: np.ndarray  # (B,) int64 each shopper's number of candidates
    vectors: np.ndarray  # (B, C, D) float32 the candidates' item-tower vectors
    dense: np.ndarray  # (B, C, len(DENSE)) float32 the ranker's features

    def __len__(self) -> int:
        return len(self.rows)


def candidate_block(ch: Channels | None, tower: np.ndarray, U: np.ndarray, item_vectors: np.ndarray,
                    seen: list[np.ndarray], recent: list[np.ndarray], allowed: np.ndarray, stats: ItemStats,
                    n_categories: int, size: int, *, blocked: list[np.ndarray] | None = None,
                    n_tower: int | None = None) -> Block:
    """Union (``recsys.channels.union_block``: the tower's answer ``tower`` (B, T), -1 = none, less
    each shopper's ``blocked`` rows, with the channels' lists over ``allowed``), then the features of
    every candidate (``features_block``). ``U``: (B, D) user vectors; ``item_vectors``: (I, D) the
    catalog's; ``seen`` / ``recent``: per shopper, everything they touched and their latest items
    (most recent first)."""
    rows, feats, lens = union_block(ch, tower, seen, recent, allowed, stats.category, size, blocked, n_tower)
    return features_block(rows, feats, lens, U, item_vectors, seen, recent, stats, n_categories)


def features_block(rows: np.ndarray, channels: np.ndarray | None, lens: np.ndarray | None, U: np.ndarray,
                   item_vectors: np.ndarray, seen: list[np.ndarray], recent: list[np.ndarray], stats: ItemStats,
                   n_categories: int, score: np.ndarray | None = None) -> Block:
    """The ranker's features of candidate ``rows`` (B, C) (``rank_features``, one compiled pass).
    ``channels``: (B, C, len(FIELDS)) what the recall channels said, None: the rows are the tower's
    list in its order; ``score``: the tower scores, u · v when None."""
    V = np.asarray(item_vectors[rows], np.float32)  # (B, C, D)
    if score is None:
        score = (V @ np.asarray(U, np.float32)[:, :, None])[..., 0]  # (B, C) u · v
    if channels is None:
        channels = tower_order(*rows.shape)
    dense = rank_features(stats, seen, recent, rows, np.asarray(score, np.float32), n_categories, channels)
    lens = np.full(len(rows), rows.shape[1], np.int64) if lens is None else lens
    return Block(rows, channels, lens, V, dense)


def stack_blocks(blocks: list[Block]) -> Block:
    """One block of several (e.g. one per filter set), zero-padded to the widest: padding changes no
    real candidate's features (each depends only on its own row and position) and is never read."""
    if len(blocks) == 1:
        return blocks[0]
    C = max(b.rows.shape[1] for b in blocks)

    def stacked(field: str) -> np.ndarray:
        return np.concatenate([np.pad(x, [(0, 0), (0, C - x.shape[1])] + [(0, 0)] * (x.ndim - 2))
                               for x in (getattr(b, field) for b in blocks)])

    return Block(stacked("rows"), stacked("channels"), np.concatenate([b.lens for b in blocks]), stacked("vectors"),
                 stacked("dense"))


def ranker_feed(dense: np.ndarray, user_vec: np.ndarray, item_vec: np.ndarray, category: np.ndarray
                ) -> dict[str, np.ndarray]:
    """The ranker's inputs by name (the DCN-v2's ``forward`` arguments, the ONNX graph's inputs), one
    row per (shopper, candidate): dense (B, C, F) -> (B·C, F); user_vec (B, D) repeated per
    candidate; item_vec (B, C, D) -> (B·C, D); category (B, C) codes -> (B·C,)."""
    B, C = dense.shape[:2]
    return {"dense": np.ascontiguousarray(dense.reshape(B * C, -1), np.float32),
            "user_vec": np.repeat(np.asarray(user_vec, np.float32), C, 0),
            "item_vec": np.ascontiguousarray(item_vec.reshape(B * C, -1), np.float32),
            "category": np.asarray(category, np.int64).reshape(-1)}


def feature_names(declared: list[str]) -> list[str]:
    """The features a ranker declares, in today's names (``LEGACY_NAMES``: older bundles' rankers)."""
    return [LEGACY_NAMES.get(n, n) for n in declared]


class RankerModel:
    """``ranker.onnx`` as serving runs it: the features it declares (by name, in its order) from
    today's ``DENSE`` columns, and the recall channels it was trained with."""

    def __init__(self, path: Path, *, threads: int = 1, device: str = "cpu") -> None:
        self.session = make_session(path, threads=threads, device=device)
        meta = self.session.get_modelmeta().custom_metadata_map
        names = feature_names(json.loads(meta.get("dense", json.dumps(DENSE))))
        unknown = [n for n in names if n not in DENSE]
        if unknown:
            raise ValueError(f"{path}: the ranker wants features {unknown} this code does not compute")
        self.columns = np.array([DENSE.index(n) for n in names], np.int64)
        self.channels = ChannelConfig(**json.loads(meta["channels"])) if "channels" in meta else None

    def score(self, block: Block, U: np.ndarray, category: np.ndarray) -> np.ndarray:
        """(B, C) scores of a block's candidates for users ``U`` (B, D); ``category``: (I,) codes."""
        feed = ranker_feed(block.dense[..., self.columns], U, block.vectors, category[block.rows])
        return run(self.session, feed)[0].reshape(block.rows.shape)
