"""Train the two-tower model. ``train_two_tower(cfg)`` is the one entry; CLI and nightly call it.

Each step: B (user state, positive item) pairs, M uniformly sampled catalog items as extra
negatives; sampled softmax with log-Q correction and accidental-hit masking (recsys/model.py);
AdamW; validation NDCG@10 over the full catalog each epoch with early stopping; checkpoints every
epoch with exact resume; bf16 autocast on CUDA; DDP when launched by torchrun.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import yaml
from tqdm import tqdm

from common.recipes import fields_of, plain
from common.torch_runtime import init_distributed, pick_device, resume, save_checkpoint, save_last
from recsys.config import RecTrainConfig, TowerHparams
from recsys.data import RecData, load_rec_data
from recsys.evaluate import evaluate_ranking, two_tower_scores
from recsys.features import OOV, PAD, FeatureSpec, Vocab
from recsys.model import TwoTower, TwoTowerConfig, sampled_softmax_loss

log = logging.getLogger(__name__)


def build_model(cfg: RecTrainConfig, data: RecData, world: int = 1, device: torch.device | None = None) -> TwoTower:
    """The recipe's hyperparameters (``TowerHparams``) and the data's sizes."""
    spec = data.spec
    mcfg = TwoTowerConfig(
        n_items=spec.item_vocab.size, n_users=spec.user_vocab.size, n_categories=spec.category_vocab.size,
        n_price=spec.n_price_buckets, user_feature_sizes=tuple(v.size for v in spec.user_features.values()),
        image_dim=0 if data.image is None else data.image.shape[1], history_len=spec.history_len,
        profile_len=spec.profile_len, **fields_of(TowerHparams, cfg),
        sparse_ids=cfg.sparse_ids and world == 1 and (device is None or device.type == "cpu"))  # see sparse_ids
    return TwoTower(mcfg)


def _optimizers(model: TwoTower, cfg: RecTrainConfig) -> list[torch.optim.Optimizer]:
    """AdamW for dense weights; SparseAdam for the id tables when they have sparse gradients, so a
    step touches only the rows in the batch instead of every row of a catalog-sized table."""
    sparse = [m.weight for m in model.modules() if isinstance(m, torch.nn.Embedding) and m.sparse]
    ids = {id(p) for p in sparse}
    dense = [p for p in model.parameters() if id(p) not in ids and p.requires_grad]
    fused = all(p.is_cuda for p in dense)  # one kernel for every tensor's update
    opts: list[torch.optim.Optimizer] = [torch.optim.AdamW(dense, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                                           fused=fused or None)]
    if sparse:
        opts.append(torch.optim.SparseAdam(sparse, lr=cfg.lr))
    return opts


def _row_map(old: Vocab, new: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """(new rows, old rows) holding the same value in two vocabularies; padding and OOV included."""
    if old.hash_buckets or new.hash_buckets:
        n = min(old.size, new.size) if old.hash_buckets == new.hash_buckets else 2
        return np.arange(n), np.arange(n)
    pos = pd.Index(old.values).get_indexer(new.values)  # new value i -> old position or -1
    keep = np.flatnonzero(pos >= 0)
    return (np.concatenate([[PAD, OOV], Vocab.index_of_row(keep)]),
            np.concatenate([[PAD, OOV], Vocab.index_of_row(pos[keep])]))


def warm_start(model: TwoTower, spec: FeatureSpec, checkpoint: Path) -> dict[str, str]:
    """Initialise ``model`` from an earlier two-tower: id tables row by row where the id (item, user,
    category, feature value) exists in both vocabularies, every other tensor where shapes match.
    New ids keep their fresh initialisation. Returns what was copied, per tensor."""
    ck = torch.load(checkpoint, map_location="cpu", weights_only=True)
    old_spec, old = FeatureSpec.from_json(ck["feature_spec"]), ck["model"]
    vocabs = {"item_tower.item_emb.weight": "item", "user_tower.item_emb.weight": "item",
              "user_tower.user_emb.weight": "user", "item_tower.cat_emb.weight": "category"}
    pairs = {"item": (old_spec.item_vocab, spec.item_vocab), "user": (old_spec.user_vocab, spec.user_vocab),
             "category": (old_spec.category_vocab, spec.category_vocab)}
    for i, (name, v) in enumerate(spec.user_features.items()):
        if name in old_spec.user_features:
            vocabs[f"user_tower.feat_embs.{i}.weight"] = f"feature:{name}"
            pairs[f"feature:{name}"] = (old_spec.user_features[name], v)
    report, state = {}, model.state_dict()
    with torch.no_grad():
        for key, t in state.items():
            if key not in old:
                continue
            if key in vocabs and old[key].shape[1:] == t.shape[1:]:
                new_rows, old_rows = _row_map(*pairs[vocabs[key]])
                t[torch.from_numpy(new_rows)] = old[key][torch.from_numpy(old_rows)].to(t.dtype)
                report[key] = f"{len(new_rows)}/{len(t)} rows"
            elif key.endswith("price_emb.weight") and old_spec.price_edges != spec.price_edges:
                report[key] = "price buckets changed: fresh"
            elif old[key].shape == t.shape:
                t.copy_(old[key])
                report[key] = "copied"
    model.load_state_dict(state)
    log.info("warm start from %s: %s", checkpoint, {k: v for k, v in report.items() if "rows" in v})
    return report


def load_two_tower(path: Path, map_location: str | torch.device = "cpu") -> tuple[TwoTower, FeatureSpec, dict]:
    ck = torch.load(path, map_location=map_location, weights_only=True)
    model = TwoTower(TwoTowerConfig.from_dict(ck["model_config"]))
    model.load_state_dict(ck["model"])
    return model, FeatureSpec.from_json(ck["feature_spec"]), ck


def load_with_data(checkpoint: Path, data_dir: Path, **load_kw) -> tuple[TwoTower, RecData]:
    """A two-tower checkpoint and the dataset encoded the way it was trained (history and profile
    lengths, event weights, recency from the checkpoint's FeatureSpec); ``load_kw`` go to load_rec_data."""
    model, spec, _ = load_two_tower(checkpoint)
    data = load_rec_data(data_dir, history_len=spec.history_len, profile_len=spec.profile_len,
                         event_weights=spec.event_weights, half_life_days=spec.half_life_days, **load_kw)
    return model, data


def train_two_tower(cfg: RecTrainConfig, data: RecData | None = None,
                    on_epoch_end: Callable[[dict], None] | None = None) -> Path:
    """Train (or resume) into ``cfg.run_dir``; returns ``best.pt``."""
    ddp, rank, world = init_distributed()
    main = rank == 0
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    run = Path(cfg.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = load_rec_data(Path(cfg.data_dir), split=cfg.split, history_len=cfg.history_len,
                             image_vectors=Path(cfg.image_vectors) if cfg.image_vectors else None,
                             max_eval_users=cfg.eval_users, seed=cfg.seed, profile_len=cfg.profile_len,
                             half_life_days=cfg.half_life_days)
    model = build_model(cfg, data, world, device)
    if cfg.init_from and not (run / "last.pt").exists():  # a resumed run already holds its own weights
        warm_start(model, data.spec, Path(cfg.init_from))
    model = model.to(device)
    opts = _optimizers(model, cfg)
    ex = data.train
    keep = np.flatnonzero(ex.item_row >= 0)
    n_items = data.n_items
    p_item = data.item_counts / data.item_counts.sum()  # how often each item is a positive
    B, M = cfg.batch_size, cfg.n_negatives
    # Expected share of candidate slots an item takes: B·p in-batch + M/I uniform.
    log_q = torch.from_numpy(np.log(B * p_item + M / n_items)).float().to(device)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
    item_t = {k: t(v) for k, v in data.item_inputs.items()}
    # Every training example lives on the device for the whole run: a step gathers its batch there
    # (no host arrays indexed and copied per step, no host sync inside an epoch).
    ex_t = {k: t(getattr(ex, k)) for k in ("item_row", "profile_row", "user", "features", "history")}
    keep_t = t(keep)  # (pairs,) example rows with a positive in the catalog
    prof_t, prof_w_t = t(data.train_profile), t(data.train_profile_w)  # (Ut, P) each
    image_t = t(data.image) if data.image is not None else None
    full = n_items <= cfg.full_softmax_items
    all_rows = torch.arange(n_items, device=device)
    steps = min(len(keep) // (B * world), cfg.max_steps or len(keep))
    if steps == 0:
        raise ValueError(f"{len(keep)} training pairs is less than one global batch ({B * world})")

    def item_vecs(rows: torch.Tensor) -> torch.Tensor:
        img = image_t[rows] if image_t is not None else None
        return model.item_tower(item_t["item"][rows], item_t["category"][rows], item_t["price"][rows], img)

    start, stopping, ck = resume(run, cfg.patience, device)
    if ck is not None:
        model.load_state_dict(ck["model"])
        for o, st in zip(opts, ck["optimizers"], strict=True):
            o.load_state_dict(st)
        log.info("resuming %s at epoch %d", run, start + 1)
    if main:
        (run / "config.yaml").write_text(yaml.safe_dump({"train": plain(cfg), "model": model.cfg.to_dict(),
                                                         "world_size": world, "device": str(device)}, sort_keys=False))
    # DDP: the towers are called separately, so rather than wrapping the module we average the
    # gradients ourselves after backward (same seed on every rank -> same initial weights).

    for epoch in range(start, cfg.epochs):
        g = torch.Generator(device=device).manual_seed(cfg.seed * 100_003 + epoch)  # same draws on resume
        torch.manual_seed(cfg.seed * 100_003 + epoch)  # id dropout draws: same on resume
        order = keep_t[torch.randperm(len(keep), generator=g, device=device)][rank::world]
        model.train()
        t0, loss_sum = time.perf_counter(), torch.zeros((), device=device)
        for i in tqdm(range(steps), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not main, leave=False,
                      mininterval=5):
            idx = order[i * B : (i + 1) * B]  # (B,) example rows, on the device
            pos = ex_t["item_row"][idx]
            neg = torch.randint(0, n_items, (M,), generator=g, device=device)
            pr = ex_t["profile_row"][idx]
            prof = prof_t[pr]  # (B, P)
            # The positive is hidden from its own profile (else the task is a lookup), and a share of
            # the rest is dropped so the tower learns from partial histories.
            keep_w = (prof != Vocab.index_of_row(pos)[:, None]) & (
                torch.rand(prof.shape, generator=g, device=device) >= cfg.profile_dropout)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                u = model.user_tower(ex_t["user"][idx], ex_t["features"][idx], ex_t["history"][idx],
                                     prof, prof_w_t[pr] * keep_w)
                if full:  # the whole catalog is the candidate set: exact softmax, no sampling correction
                    logits = u.float() @ item_vecs(all_rows).float().T / model.temperature  # (B, I)
                    loss = torch.nn.functional.cross_entropy(logits, pos)
                else:
                    v = item_vecs(torch.cat([pos, neg]))
                    loss = sampled_softmax_loss(u.float(), v[:B].float(), pos, log_q[pos], v[B:].float(), neg,
                                                log_q[neg], model.temperature)
            for o in opts:
                o.zero_grad(set_to_none=True)
            loss.backward()
            if ddp:
                for p in model.parameters():
                    if p.grad is not None:
                        dist.all_reduce(p.grad)
                        p.grad /= world
            for o in opts:
                o.step()
            loss_sum += loss.detach()
        loss_sum = loss_sum.item()  # waits for the epoch's last step
        train_s = time.perf_counter() - t0
        if main:
            scores = two_tower_scores(model, data, data.valid, device=device)
            m = evaluate_ranking(scores, data.valid, data, ks=(10, 20))
            rec = {"epoch": epoch + 1, "loss": loss_sum / steps, "valid_ndcg@10": m["ndcg@10"],
                   "valid_recall@20": m["recall@20"], "pairs_per_s": steps * B * world / train_s, "epoch_s": train_s}
            log.info("epoch %d: loss %.4f valid NDCG@10 %.4f Recall@20 %.4f (%.0f pairs/s)", epoch + 1, rec["loss"],
                     m["ndcg@10"], m["recall@20"], rec["pairs_per_s"])
            state = {"model_config": model.cfg.to_dict(), "feature_spec": data.spec.to_json()}
            if stopping.update(m["ndcg@10"], rec):
                save_checkpoint(run / "best.pt", model=model.state_dict(), epoch=epoch, valid=m, **state)
            save_last(run, epoch, stopping, model=model.state_dict(), optimizers=[o.state_dict() for o in opts],
                      **state)
            (run / "history.yaml").write_text(yaml.safe_dump(stopping.history, sort_keys=False))
            if on_epoch_end is not None:
                on_epoch_end(rec)
        stop = torch.tensor(int(main and stopping.stop))
        if ddp:
            dist.broadcast(stop, 0)
        if stop.item():
            if main:
                log.info("early stop after epoch %d", epoch + 1)
            break
    return run / "best.pt"


if __name__ == "__main__":  # torchrun entry: torchrun --nproc-per-node N -m recsys.train CONFIG.yaml
    import sys

    logging.basicConfig(level=logging.INFO if int(os.environ.get("RANK", "0")) == 0 else logging.WARNING)
    train_two_tower(RecTrainConfig.from_yaml(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
    if dist.is_initialized():
        dist.destroy_process_group()
