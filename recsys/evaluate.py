"""Full-catalog evaluation: score every item for each user, mask what they already saw, take top K.

The same harness ranks the two-tower model and every baseline (each is a function from a chunk of
evaluation users to a (users, items) score matrix), so their numbers compare.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from recsys.data import EvalUsers, RecData
from recsys.features import OOV
from recsys.metrics import list_metrics, ranking_metrics
from recsys.model import TwoTower

ScoreFn = Callable[[np.ndarray], np.ndarray]  # user positions in EvalUsers -> (b, I) scores


def rank_users(score_fn: ScoreFn, eu: EvalUsers, k: int = 100, chunk: int = 1024) -> np.ndarray:
    """(U, k) catalog rows, best first, seen items excluded."""
    out = []
    for s in range(0, len(eu.user_ids), chunk):
        pos = np.arange(s, min(s + chunk, len(eu.user_ids)))
        scores = torch.tensor(np.asarray(score_fn(pos)), dtype=torch.float32)  # a copy: rows get masked below
        for j, u in enumerate(pos):
            if len(eu.exclude[u]):
                scores[j, torch.as_tensor(eu.exclude[u])] = float("-inf")
        out.append(torch.topk(scores, min(k, scores.shape[1]), dim=1).indices.numpy())
    return np.concatenate(out) if out else np.zeros((0, k), np.int64)


def evaluate_ranking(score_fn: ScoreFn, eu: EvalUsers, data: RecData, ks: tuple[int, ...] = (10, 20, 50, 100)
                     ) -> dict[str, float]:
    topk = rank_users(score_fn, eu, max(ks))
    return ranking_metrics(topk, eu.relevant, ks) | list_metrics(topk[:, :10], data.n_items, data.item_counts)


@torch.no_grad()
def item_vectors(model: TwoTower, data: RecData, *, oov_rows: np.ndarray | None = None,
                 device: torch.device | str = "cpu", batch: int = 8192) -> np.ndarray:
    """(I, D) item-tower outputs for the catalog; ``oov_rows`` are encoded as brand-new items (OOV id)."""
    model.eval()
    inp = {k: v.copy() for k, v in data.item_inputs.items()}
    if oov_rows is not None and len(oov_rows):
        inp["item"][oov_rows] = OOV
    out = []
    for s in range(0, data.n_items, batch):
        sl = slice(s, s + batch)
        img = torch.from_numpy(data.image[sl]).to(device) if data.image is not None else None
        out.append(model.item_tower(torch.from_numpy(inp["item"][sl]).to(device),
                                    torch.from_numpy(inp["category"][sl]).to(device),
                                    torch.from_numpy(inp["price"][sl]).to(device), img).float().cpu())
    return torch.cat(out).numpy()


@torch.no_grad()
def user_vectors(model: TwoTower, eu: EvalUsers, device: torch.device | str = "cpu", batch: int = 8192) -> np.ndarray:
    model.eval()
    out = []
    for s in range(0, len(eu.user), batch):
        sl = slice(s, s + batch)
        out.append(model.user_tower(*(torch.from_numpy(a[sl]).to(device) for a in (
            eu.user, eu.features, eu.history, eu.profile, eu.profile_w))).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, model.cfg.out_dim), np.float32)


def two_tower_scores(model: TwoTower, data: RecData, eu: EvalUsers, *, oov_rows: np.ndarray | None = None,
                     device: torch.device | str = "cpu") -> ScoreFn:
    V = item_vectors(model, data, oov_rows=oov_rows, device=device)  # (I, D)
    U = user_vectors(model, eu, device)  # (U, D)
    return lambda pos: U[pos] @ V.T


def segment_metrics(score_fn: ScoreFn, eu: EvalUsers, data: RecData, *, cold_max_seen: int = 20,
                    new_item_days: int = 30, ks: tuple[int, ...] = (10, 20, 100)) -> dict[str, dict[str, float]]:
    """Metrics for all users, for cold users (at most ``cold_max_seen`` seen items) and for new
    items (relevance restricted to items created in the dataset's last ``new_item_days`` days)."""
    topk = rank_users(score_fn, eu, max(ks))
    out = {"all": ranking_metrics(topk, eu.relevant, ks) | {"users": len(eu.relevant)}}
    cold = np.flatnonzero(np.array([len(e) for e in eu.exclude]) <= cold_max_seen)
    out[f"cold users (<= {cold_max_seen} seen)"] = (
        ranking_metrics(topk[cold], [eu.relevant[i] for i in cold], ks) | {"users": len(cold)})
    created = data.items["created_at"]
    new_rows = np.flatnonzero((created >= created.max() - np.timedelta64(new_item_days, "D")).to_numpy())
    rel_new = [np.intersect1d(r, new_rows) for r in eu.relevant]
    out[f"new items (last {new_item_days} days)"] = (
        ranking_metrics(topk, rel_new, ks) | {"users": int(sum(len(r) > 0 for r in rel_new))})
    return out
