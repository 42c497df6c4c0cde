"""Export the towers as two ONNX graphs (dynamic batch), check them against PyTorch, and write the
catalog's item vectors.

user_tower.onnx: user (B,) int64, features (B, F) int64, history (B, L) int64
                 [, profile (B, P) int64, profile_weight (B, P) float32] -> user_vector (B, D)
item_tower.onnx: item, category, price (B,) int64 [, image (B, E) float32] -> item_vector (B, D)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.torch_runtime import export_onnx, parity
from recsys.data import RecData
from recsys.evaluate import item_vectors
from recsys.model import TwoTower

log = logging.getLogger(__name__)


class _UserGraph(nn.Module):
    def __init__(self, model: TwoTower) -> None:
        super().__init__()
        self.tower = model.user_tower

    def forward(self, user: torch.Tensor, features: torch.Tensor, history: torch.Tensor,
                profile: torch.Tensor | None = None, profile_weight: torch.Tensor | None = None) -> torch.Tensor:
        return self.tower(user, features, history, profile, profile_weight)


class _ItemGraph(nn.Module):
    def __init__(self, model: TwoTower) -> None:
        super().__init__()
        self.tower = model.item_tower

    def forward(self, item: torch.Tensor, category: torch.Tensor, price: torch.Tensor,
                image: torch.Tensor | None = None) -> torch.Tensor:
        return self.tower(item, category, price, image)


def _random_inputs(model: TwoTower, b: int, rng: np.random.Generator) -> tuple[dict, dict]:
    c = model.cfg
    hist = rng.integers(0, c.n_items, (b, c.history_len))
    hist[:, rng.integers(1, c.history_len):] = 0  # padded tails
    feats = ([rng.integers(0, n, b) for n in c.user_feature_sizes])
    user = {"user": rng.integers(0, c.n_users, b),
            "features": np.stack(feats, 1) if feats else np.zeros((b, 0), np.int64), "history": hist}
    if c.profile_len:
        prof = rng.integers(0, c.n_items, (b, c.profile_len))
        prof[:, rng.integers(1, c.profile_len):] = 0
        user |= {"profile": prof, "profile_weight": rng.random((b, c.profile_len)).astype(np.float32)}
    item = {"item": rng.integers(0, c.n_items, b), "category": rng.integers(0, c.n_categories, b),
            "price": rng.integers(0, c.n_price, b)}
    if c.image_dim:
        v = rng.standard_normal((b, c.image_dim)).astype(np.float32)
        item["image"] = v / np.linalg.norm(v, axis=1, keepdims=True)
    to = lambda d: {k: (v.astype(np.int64) if v.dtype.kind == "i" else v) for k, v in d.items()}  # noqa: E731
    return to(user), to(item)


def export_towers(model: TwoTower, data: RecData, out_dir: Path, seed: int = 0) -> dict:
    """Write user_tower.onnx, item_tower.onnx, item_vectors.npy, features.json; return parity info."""
    model = model.eval().float()
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    meta = {"model_config": json.dumps(model.cfg.to_dict()), "producer": "vitrine.recsys"}
    ex_user, ex_item = _random_inputs(model, 2, rng)
    export_onnx(_UserGraph(model), tuple(torch.from_numpy(v) for v in ex_user.values()), out_dir / "user_tower.onnx",
                input_names=list(ex_user), output_names=["user_vector"], metadata=meta)
    export_onnx(_ItemGraph(model), tuple(torch.from_numpy(v) for v in ex_item.values()), out_dir / "item_tower.onnx",
                input_names=list(ex_item), output_names=["item_vector"], metadata=meta)
    diffs = []
    for b in (1, 5, 64):
        u, i = _random_inputs(model, b, rng)
        diffs.append(parity(out_dir / "user_tower.onnx", _UserGraph(model), u))
        diffs.append(parity(out_dir / "item_tower.onnx", _ItemGraph(model), i))
    vecs = item_vectors(model, data)
    np.save(out_dir / "item_vectors.npy", vecs.astype(np.float32))
    data.spec.save(out_dir / "features.json")
    log.info("exported towers to %s: max |onnx - torch| = %.2e", out_dir, max(diffs))
    return {"max_abs_diff": max(diffs), "item_vectors": list(vecs.shape)}
