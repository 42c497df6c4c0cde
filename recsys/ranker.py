"""Second-stage ranker: a DCN-v2 cross network over the two-tower's candidates.

Protocol (the nightly job's view of time): the two-tower, trained on the training period,
retrieves C candidates for every user of the *validation* period from their training history;
the ranker learns to order those lists against what the users did next (listwise softmax, hard
negatives = the tower's own candidates). It is then judged on the *test* period: candidates from
train + validation history, features as of the end of validation, NDCG@10 of the ranker's order vs
the tower's order of the very same candidates.

Why DCN-v2 (docs/models.md): the useful signals are interactions — "category share × tower score",
"price gap × category" — that explicit cross layers x_{l+1} = x0 ⊙ (W x_l + b) + x_l express in
a few thousand parameters, next to a small MLP; DLRM's pairwise dot products would only cross
the embedding fields, not the dense ones. W is low-rank (U·V, rank 32): the ranker runs on every
request, and the full-rank form needs about 3x the multiply-adds per candidate (177k vs 62k).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from torch import nn

from common.recipes import fields_of, plain
from common.torch_runtime import EarlyStopping, export_onnx, parity, pick_device, save_checkpoint
from recsys.channels import CHANNELS, FIELDS, Channels, binary_matrix, fit_channels
from recsys.config import RankerHparams, RankerTrainConfig
from recsys.data import EvalUsers, RecData
from recsys.evaluate import item_vectors, user_vectors
from recsys.features import Vocab
from recsys.metrics import ranking_metrics
from recsys.model import TwoTower
from recsys.rank_features import DENSE, ItemStats
from recsys.ranking import Block, candidate_block, ranker_feed, stack_blocks
from recsys.repeat_sources import fit_split, write_fit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RankerConfig(RankerHparams):
    """The ranker's hyperparameters (recsys/config.py) and the sizes its data sets; saved in every checkpoint."""

    n_dense: int = len(DENSE)
    vec_dim: int = 64
    n_categories: int = 16

    def to_dict(self) -> dict:
        return asdict(self) | {"hidden": list(self.hidden)}

    @classmethod
    def from_dict(cls, d: dict) -> RankerConfig:
        d = {"raw_vectors": True} | d  # checkpoints from before the field had u and v in x0
        return cls(**(d | {"hidden": tuple(d["hidden"])}))


class DCNRanker(nn.Module):
    """logit = tower-score skip + head([cross(x0), deep(x0)]), x0 = [dense, u ⊙ v, category]
    (or [dense, u, v, u ⊙ v, category] with ``raw_vectors``)."""

    def __init__(self, cfg: RankerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("mu", torch.zeros(cfg.n_dense))  # dense standardisation, set from training lists
        self.register_buffer("sigma", torch.ones(cfg.n_dense))
        self.category = nn.Embedding(cfg.n_categories, cfg.cat_dim)
        d0 = cfg.n_dense + (3 if cfg.raw_vectors else 1) * cfg.vec_dim + cfg.cat_dim
        r = cfg.cross_rank
        self.cross = nn.ModuleList((nn.Sequential(nn.Linear(d0, r, bias=False), nn.Linear(r, d0)) if r else
                                    nn.Linear(d0, d0)) for _ in range(cfg.cross_layers))
        layers, din = [], d0
        for h in cfg.hidden:
            layers += [nn.Linear(din, h), nn.ReLU(), nn.Dropout(cfg.dropout)]
            din = h
        self.deep = nn.Sequential(*layers)
        self.head = nn.Linear(d0 + din, 1)
        nn.init.zeros_(self.head.weight)  # start exactly at the tower's order, learn corrections
        nn.init.zeros_(self.head.bias)
        self.skip = nn.Parameter(torch.ones(()))  # weight of the standardised tower score

    def forward(self, dense: torch.Tensor, user_vec: torch.Tensor, item_vec: torch.Tensor,
                category: torch.Tensor) -> torch.Tensor:
        z = (dense - self.mu) / self.sigma  # (B, F)
        vecs = [user_vec, item_vec, user_vec * item_vec] if self.cfg.raw_vectors else [user_vec * item_vec]
        x0 = torch.cat([z, *vecs, self.category(category)], -1)  # (B, d0)
        x = x0
        for lin in self.cross:
            x = x0 * lin(x) + x
        return self.skip * z[:, 0] + self.head(torch.cat([x, self.deep(x0)], -1)).squeeze(-1)  # (B,)


@dataclass
class Lists:
    """C candidates per user (the channels' union, tower's list first), their features and labels."""

    user_vec: np.ndarray  # (U, D)
    cand: np.ndarray  # (U, C) catalog rows
    dense: np.ndarray  # (U, C, F)
    label: np.ndarray  # (U, C) bool: candidate is relevant
    relevant: list[np.ndarray]  # all relevant rows (NDCG over the full set, not just the retrieved)
    channel_rank: dict[str, np.ndarray] = field(default_factory=dict)  # channel -> (U, C) rank, ABSENT if not in it


def retrieve(U: np.ndarray, V: np.ndarray, exclude: list[np.ndarray], C: int, chunk: int = 2048
             ) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-C rows and scores per user with seen items masked: (U, C), (U, C)."""
    rows, scores = [], []
    Vt = torch.from_numpy(V)
    for s in range(0, len(U), chunk):
        sc = torch.from_numpy(U[s : s + chunk]) @ Vt.T  # (b, I)
        for j, ex in enumerate(exclude[s : s + chunk]):
            if len(ex):
                sc[j, torch.as_tensor(ex)] = float("-inf")
        top = torch.topk(sc, min(C, sc.shape[1]), dim=1)
        rows.append(top.indices.numpy())
        scores.append(top.values.numpy())
    return np.concatenate(rows), np.concatenate(scores)


def recent_rows(eu: EvalUsers) -> list[np.ndarray]:
    """History window as catalog rows, most recent first (padding/OOV dropped)."""
    return [r[r >= 0] for r in Vocab.row_of_index(eu.history)]


def candidate_lists(ch: Channels | None, data: RecData, eu: EvalUsers, Uv: np.ndarray, V: np.ndarray,
                    tower: np.ndarray, stats: ItemStats, size: int, chunk: int = 4096) -> Block:
    """Every user's candidates and features through the ranking stage serving runs
    (recsys/ranking.py ``candidate_block``), each user's seen items blocked in every channel; lists
    cut to the shortest (a user who saw nearly the whole catalog has fewer unseen items)."""
    recent = recent_rows(eu)
    everything = np.ones(data.n_items, bool)  # the seen items are blocked per user, not cleared in a mask
    blocks = [candidate_block(ch, tower[lo : lo + chunk], Uv[lo : lo + chunk], V, eu.exclude[lo : lo + chunk],
                              recent[lo : lo + chunk], everything, stats, data.spec.category_vocab.size, size,
                              blocked=eu.exclude[lo : lo + chunk])
              for lo in range(0, len(tower), chunk)]
    if not blocks:
        z = np.zeros((0, size))
        return Block(z.astype(np.int64), np.zeros((0, size, len(FIELDS)), np.float32), np.zeros(0, np.int64),
                     np.zeros((0, size, V.shape[1]), np.float32), np.zeros((0, size, len(DENSE)), np.float32))
    b = stack_blocks(blocks)
    n = int(b.lens.min())
    if n < size:
        log.warning("candidate lists cut to %d (of %d): too few unseen items", n, size)
    return Block(b.rows[:, :n], b.channels[:, :n], b.lens, b.vectors[:, :n], b.dense[:, :n])


def build_lists(model: TwoTower, data: RecData, eu: EvalUsers, stats: ItemStats, V: np.ndarray, C: int = 200,
                channels: Channels | None = None) -> Lists:
    """``V``: the catalog's item vectors (I, D), computed once by the caller. With ``channels``, the
    lists are the union of the tower's top C and the channels' candidates (C + their share in all)."""
    Uv = user_vectors(model, eu)  # (U, D)
    size = C + (channels.config.extra if channels is not None else 0)
    tower, _ = retrieve(Uv, V, eu.exclude, size)
    b = candidate_lists(channels, data, eu, Uv, V, tower, stats, size if channels is not None else C)
    label = np.stack([np.isin(c, r) for c, r in zip(b.rows, eu.relevant, strict=True)]) if len(b.rows) else \
        np.zeros(b.rows.shape, bool)
    ranks = {c: b.channels[..., FIELDS.index(f"{c}_rank")] for c in CHANNELS} if channels is not None else {}
    return Lists(Uv, b.rows, b.dense, label, eu.relevant, ranks)


def period_stats(data: RecData, periods: tuple[str, ...]) -> ItemStats:
    """Item statistics from the events of the given split periods (what was known at that time)."""
    ev = pd.concat([pd.read_parquet(data.split_dir / f"{p}.parquet", columns=["item_id", "ts"])
                    for p in periods])
    rows = data.spec.item_vocab.encode_rows(ev["item_id"])
    return ItemStats.compute(data.items, data.item_inputs["category"], ev, rows, data.image)


def training_channels(cfg: RankerTrainConfig, data: RecData) -> Channels | None:
    """The channel tables fitted on the training period (what was known when the lists were drawn)."""
    if cfg.channels is None:
        return None
    X = binary_matrix(data.train.user, data.train.item_row, data.n_items)
    return fit_channels(X, data.item_inputs["category"], data.spec.category_vocab.size, cfg.channels)


def _tensors(lists: Lists, vecs: np.ndarray, cats: np.ndarray, users: np.ndarray, device) -> tuple:
    """The ranker's inputs for these users' lists, in ``forward``'s order: serving's feed
    (recsys/ranking.py ``ranker_feed``), as tensors."""
    rows = lists.cand[users]  # (B, C)
    feed = ranker_feed(lists.dense[users], lists.user_vec[users], vecs[rows], cats[rows])
    return tuple(torch.from_numpy(v).to(device) for v in feed.values())


@torch.no_grad()
def rerank(model: DCNRanker, lists: Lists, vecs: np.ndarray, cats: np.ndarray, batch_users: int = 256) -> np.ndarray:
    """(U, C) candidate rows in the ranker's order."""
    model.eval()
    out = []
    for s in range(0, len(lists.cand), batch_users):
        users = np.arange(s, min(s + batch_users, len(lists.cand)))
        logits = model(*_tensors(lists, vecs, cats, users, "cpu")).view(len(users), -1).numpy()
        order = np.argsort(-logits, axis=1, kind="stable")
        out.append(np.take_along_axis(lists.cand[users], order, 1))
    return np.concatenate(out)


def hit_rate_by_rank(ranked: np.ndarray, relevant: list[np.ndarray], n: int = 100) -> list[float]:
    """Share of shoppers whose item at each of the first ``n`` ranks is one they touch next: the
    chance a discovery item at that rank is a hit, which the repeat-aware home page weighs against
    each seen item's own chance (recsys/placements.py). Held-out lists: what the ranker did not fit.
    Fitted non-increasing (isotonic), so merging by it never reorders the ranker's own list."""
    from scipy.optimize import isotonic_regression

    top = ranked[:, :n]
    if not len(top):
        return []
    hit = np.stack([np.isin(t, r) for t, r in zip(top, relevant, strict=True)]).mean(0)
    return [round(float(x), 6) for x in isotonic_regression(hit, increasing=False).x]


def ndcg10(topk: np.ndarray, relevant: list[np.ndarray]) -> float:
    return ranking_metrics(topk, relevant, (10,))["ndcg@10"]


def train_ranker(cfg: RankerTrainConfig, model_tt: TwoTower, data: RecData, train_stats: ItemStats,
                 run_dir: Path, channels: Channels | None = None) -> tuple[DCNRanker, dict]:
    """Fit on the validation period's lists; keeps the epoch with the best held-out NDCG@10."""
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    vecs = item_vectors(model_tt, data)  # (I, D)
    lists = build_lists(model_tt, data, data.valid, train_stats, vecs, cfg.candidates, channels)
    cats = data.item_inputs["category"]
    rng = np.random.default_rng(cfg.seed)
    users = rng.permutation(len(lists.cand))
    n_hold = max(1, int(len(users) * cfg.holdout_share))
    hold, fit = np.sort(users[:n_hold]), users[n_hold:]
    fit = fit[lists.label[fit].any(1)]  # a list with no positive teaches a listwise loss nothing
    if len(fit) == 0:
        raise ValueError("no validation user has a relevant item among the candidates: nothing to train on")
    mcfg = RankerConfig(vec_dim=vecs.shape[1], n_categories=data.spec.category_vocab.size,
                        **fields_of(RankerHparams, cfg.model))
    model = DCNRanker(mcfg).to(device)
    flat = lists.dense[fit].reshape(-1, mcfg.n_dense)
    model.mu.copy_(torch.from_numpy(flat.mean(0)))
    sd = flat.std(0)
    model.sigma.copy_(torch.from_numpy(np.where(sd > 1e-6, sd, 1.0)))  # a constant feature (no prices) stays 0
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    hold_lists = Lists(lists.user_vec[hold], lists.cand[hold], lists.dense[hold], lists.label[hold],
                       [lists.relevant[i] for i in hold])
    base = ndcg10(hold_lists.cand, hold_lists.relevant)
    # the untrained ranker is the tower's order (its head starts at 0): an epoch must beat that
    untrained = ndcg10(rerank(model.cpu(), hold_lists, vecs, cats), hold_lists.relevant)
    stopping = EarlyStopping(cfg.patience, best=untrained)
    best_state = None
    model.to(device)
    log.info("ranker: %d training lists, %d held-out users, tower-order held-out NDCG@10 %.4f", len(fit), n_hold, base)
    for epoch in range(cfg.epochs):
        model.train()
        order = rng.permutation(fit)
        loss_sum, t1 = 0.0, time.perf_counter()
        for s in range(0, len(order), cfg.users_per_batch):
            users = order[s : s + cfg.users_per_batch]
            logits = model(*_tensors(lists, vecs, cats, users, device)).view(len(users), -1)  # (B, C)
            y = torch.from_numpy(lists.label[users]).float().to(device)
            target = y / y.sum(1, keepdim=True)  # every positive equally likely
            loss = -(target * torch.log_softmax(logits, 1)).sum(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(users)
        score = ndcg10(rerank(model.cpu(), hold_lists, vecs, cats), hold_lists.relevant)
        model.to(device)
        rec = {"epoch": epoch + 1, "loss": loss_sum / len(order), "holdout_ndcg@10": score,
               "epoch_s": time.perf_counter() - t1}
        log.info("ranker epoch %d: loss %.4f held-out NDCG@10 %.4f (tower order %.4f)", epoch + 1, rec["loss"],
                 score, base)
        if stopping.update(score, rec):
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        elif stopping.stop:
            break
    model = model.cpu()
    if best_state is not None:
        model.load_state_dict(best_state)
    info = {"holdout_tower_ndcg@10": base, "holdout_ranker_ndcg@10": stopping.best, "history": stopping.history,
            "train_lists": int(len(fit)), "train_s": time.perf_counter() - t0,
            "explore_hit_rate": hit_rate_by_rank(rerank(model, hold_lists, vecs, cats), hold_lists.relevant)}
    save_checkpoint(run_dir / "ranker.pt", model=model.state_dict(), model_config=mcfg.to_dict(), info=info)
    (run_dir / "ranker.yaml").write_text(yaml.safe_dump({"train": plain(cfg), "model": mcfg.to_dict(), "info": info},
                                                        sort_keys=False))
    return model, info


def load_ranker(path: Path) -> DCNRanker:
    ck = torch.load(path, map_location="cpu", weights_only=True)
    model = DCNRanker(RankerConfig.from_dict(ck["model_config"]))
    model.load_state_dict(ck["model"])
    return model.eval()


def evaluate_lift(model: DCNRanker, model_tt: TwoTower, data: RecData, test_stats: ItemStats, C: int = 200,
                  channels: Channels | None = None) -> dict:
    """Test period: NDCG@10 etc. of the tower's own top list, of each other channel's, and of the
    ranker's order of the candidates' union; recall of the tower's C candidates and of the union."""
    vecs = item_vectors(model_tt, data)
    lists = build_lists(model_tt, data, data.test, test_stats, vecs, C, channels)
    ranked = rerank(model, lists, vecs, data.item_inputs["category"])
    ks = (10, 20)
    by_channel = {name: ranking_metrics(np.take_along_axis(lists.cand, np.argsort(r, 1, kind="stable"), 1),
                                        lists.relevant, ks) for name, r in lists.channel_rank.items()}
    tower = by_channel.get("tower") or ranking_metrics(lists.cand, lists.relevant, ks)
    ranker = ranking_metrics(ranked, lists.relevant, ks)
    n = lists.cand.shape[1]
    recall = {f"candidate_recall@{C}": ranking_metrics(lists.cand[:, :C], lists.relevant, (C,))[f"recall@{C}"],
              f"union_recall@{n}": ranking_metrics(lists.cand, lists.relevant, (n,))[f"recall@{n}"]}
    return {"users": len(lists.cand), "candidates": C, "union_size": n, **recall, "tower": tower, "ranker": ranker,
            "channels": by_channel, "ndcg@10_lift": ranker["ndcg@10"] / max(tower["ndcg@10"], 1e-12)}


def export_ranker(model: DCNRanker, path: Path, seed: int = 0, channels: dict | None = None) -> float:
    """ranker.onnx: dense (B, F), user_vec (B, D), item_vec (B, D), category (B,) -> score (B,); returns parity.
    ``channels`` (a ChannelConfig as a dict): the recall channels the ranker was trained on, which the
    bundle then fits on all events (pipelines.assemble) and serving runs."""
    model = model.eval()
    c = model.cfg
    rng = np.random.default_rng(seed)

    def inputs(b: int) -> dict[str, np.ndarray]:
        z = rng.standard_normal((b, c.n_dense)).astype(np.float32)  # in the range training saw
        return {"dense": z * model.sigma.numpy() + model.mu.numpy(),
                "user_vec": rng.standard_normal((b, c.vec_dim)).astype(np.float32),
                "item_vec": rng.standard_normal((b, c.vec_dim)).astype(np.float32),
                "category": rng.integers(0, c.n_categories, b).astype(np.int64)}

    ex = inputs(2)
    export_onnx(model, tuple(torch.from_numpy(v) for v in ex.values()), path, input_names=list(ex),
                output_names=["score"], metadata={"model_config": json.dumps(c.to_dict()), "dense": json.dumps(DENSE),
                                                   **({} if channels is None else {"channels": json.dumps(channels)})})
    diff = max(parity(path, model, inputs(b)) for b in (1, 7, 200))
    log.info("exported %s: max |onnx - torch| = %.2e", path, diff)
    return diff


def train_evaluate_export(model_tt: TwoTower, data: RecData, cfg: RankerTrainConfig, out: Path) -> dict:
    """The whole ranker step: train on the validation period, measure the lift on the test period,
    export ``out/ranker.onnx``, write ``out/lift.json`` (returns that record) and ``out/placements.json``."""
    channels = training_channels(cfg, data)
    ranker, info = train_ranker(cfg, model_tt, data, period_stats(data, ("train",)), out, channels)
    # the placements' models (recsys/placements.py), fitted on the same split, and the ranker's hit rate by rank
    category = pd.Series(data.items["category"].to_numpy(), index=data.items["item_id"].astype(str))
    write_fit(out / "placements.json", fit_split(data.split_dir, category), info.pop("explore_hit_rate"))
    lift = evaluate_lift(ranker, model_tt, data, period_stats(data, ("train", "valid")), cfg.candidates, channels)
    ch = None if channels is None else asdict(channels.config)
    record = lift | {"train": info, "onnx_parity": export_ranker(ranker, out / "ranker.onnx", channels=ch)}
    (out / "lift.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
