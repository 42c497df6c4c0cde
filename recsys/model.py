"""Two-tower retrieval model.

user tower: user id + categorical user features + the long-term profile (whole history, weighted
            by event type and recency, pooled) + the short-term history (last L items through a
            sequence encoder: masked mean, GRU or one self-attention block) -> MLP -> L2-normalised (B, D)
item tower: item id + category + price bucket + projected image embedding (optional)
            -> MLP -> L2-normalised (B, D)
score(u, i) = <u, i> / temperature, the same inner product FAISS searches.

The history path shares the item-id embedding table with the item tower, so a session that sends
only recent item ids (anonymous user = OOV id) lands near the items it viewed. Id dropout during
training (ids replaced by OOV) teaches both towers to work from features alone: anonymous users and
brand-new products.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from recsys.config import TowerHparams
from recsys.features import OOV, PAD


@dataclass(frozen=True, kw_only=True)
class TwoTowerConfig(TowerHparams):
    """The hyperparameters (recsys/config.py ``TowerHparams``) and the sizes the data sets; saved in
    every checkpoint."""

    n_items: int
    n_users: int
    n_categories: int
    n_price: int
    user_feature_sizes: tuple[int, ...] = ()
    image_dim: int = 0  # 0: no image feature
    history_len: int = 20
    profile_len: int = 0  # 0: no long-term profile (checkpoints from before it load unchanged)
    sparse_ids: bool = False  # sparse gradients for the id tables (SparseAdam; single process)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TwoTowerConfig:
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**d)


def _mlp(din: int, hidden: int, dout: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(din, hidden), nn.GELU(), nn.Linear(hidden, dout))


def _id_dropout(ids: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    if not training or p <= 0:
        return ids
    drop = (torch.rand(ids.shape, device=ids.device) < p) & (ids != PAD)
    return torch.where(drop, torch.full_like(ids, OOV), ids)


class ItemTower(nn.Module):
    def __init__(self, cfg: TwoTowerConfig, item_emb: nn.Embedding) -> None:
        super().__init__()
        self.cfg = cfg
        self.item_emb = item_emb
        self.cat_emb = nn.Embedding(cfg.n_categories, cfg.emb_dim)
        self.price_emb = nn.Embedding(cfg.n_price, cfg.emb_dim)
        self.image_proj = nn.Linear(cfg.image_dim, cfg.emb_dim) if cfg.image_dim else None
        n_in = 3 + (1 if cfg.image_dim else 0)
        self.mlp = _mlp(n_in * cfg.emb_dim, cfg.hidden, cfg.out_dim)

    def forward(self, item: torch.Tensor, category: torch.Tensor, price: torch.Tensor,
                image: torch.Tensor | None = None) -> torch.Tensor:
        item = _id_dropout(item, self.cfg.id_dropout, self.training)
        parts = [self.item_emb(item), self.cat_emb(category), self.price_emb(price)]  # each (B, E)
        if self.image_proj is not None:
            parts.append(self.image_proj(image))
        return F.normalize(self.mlp(torch.cat(parts, 1)), dim=1)  # (B, D)


class GRUEncoder(nn.Module):
    """A GRU over the recent items, oldest to newest; the state after the newest real item. Written
    out step by step (L is small) so the ONNX graph is plain matmuls."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.cell = nn.GRUCell(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # (B, L, E), (B, L, 1) newest first
        h = torch.zeros_like(x[:, 0])  # (B, E)
        for t in range(x.shape[1] - 1, -1, -1):  # oldest first; padded steps keep the state
            h = torch.where(mask[:, t] > 0, self.cell(x[:, t], h), h)
        return h


class AttentionEncoder(nn.Module):
    """One pre-norm self-attention block (single head) with learned positions, then a masked mean."""

    def __init__(self, dim: int, length: int) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(length, dim))
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.ff = _mlp(dim, 2 * dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # (B, L, E), (B, L, 1)
        x = x + self.pos[None]
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)  # each (B, L, E)
        att = q @ k.transpose(1, 2) / x.shape[-1] ** 0.5  # (B, L, L)
        att = att + (mask.transpose(1, 2) - 1) * 1e4  # padded keys out; finite so all-padded rows stay finite
        x = x + att.softmax(-1) @ v
        x = x + self.ff(self.norm2(x))
        return (x * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, E)


class UserTower(nn.Module):
    def __init__(self, cfg: TwoTowerConfig, item_emb: nn.Embedding) -> None:
        super().__init__()
        self.cfg = cfg
        self.item_emb = item_emb  # shared with the item tower
        self.user_emb = nn.Embedding(cfg.n_users, cfg.emb_dim, sparse=cfg.sparse_ids)
        self.feat_embs = nn.ModuleList(nn.Embedding(n, cfg.emb_dim) for n in cfg.user_feature_sizes)
        enc = cfg.sequence_encoder
        if enc not in ("mean", "gru", "attention", "none"):
            raise ValueError(f"unknown sequence_encoder {enc!r}; choose mean, gru, attention or none")
        self.encoder = (GRUEncoder(cfg.emb_dim) if enc == "gru" else
                        AttentionEncoder(cfg.emb_dim, cfg.history_len) if enc == "attention" else None)
        n_parts = 1 + (enc != "none") + (1 if cfg.profile_len else 0) + len(cfg.user_feature_sizes)
        self.mlp = _mlp(n_parts * cfg.emb_dim, cfg.hidden, cfg.out_dim)

    def forward(self, user: torch.Tensor, features: torch.Tensor, history: torch.Tensor,
                profile: torch.Tensor | None = None, profile_weight: torch.Tensor | None = None) -> torch.Tensor:
        p = self.cfg.id_dropout if self.cfg.user_id_dropout is None else self.cfg.user_id_dropout
        user = _id_dropout(user, p, self.training)
        parts = [self.user_emb(user)]
        if self.cfg.sequence_encoder != "none":
            mask = (history != PAD).unsqueeze(-1).float()  # (B, L, 1)
            x = self.item_emb(history)  # (B, L, E)
            parts.append((x * mask).sum(1) / mask.sum(1).clamp(min=1.0) if self.encoder is None
                         else self.encoder(x, mask))
        if self.cfg.profile_len:
            if profile is None:  # a caller with only recent items: they are the whole known history
                profile, profile_weight = history, (history != PAD).float()
            w = (profile_weight * (profile != PAD)).unsqueeze(-1)  # (B, P, 1)
            parts.append((self.item_emb(profile) * w).sum(1) / w.sum(1).clamp(min=1e-6))  # (B, E) weighted mean
        parts += [emb(features[:, j]) for j, emb in enumerate(self.feat_embs)]
        return F.normalize(self.mlp(torch.cat(parts, 1)), dim=1)  # (B, D)


class TwoTower(nn.Module):
    def __init__(self, cfg: TwoTowerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        item_emb = nn.Embedding(cfg.n_items, cfg.emb_dim, padding_idx=PAD, sparse=cfg.sparse_ids)
        nn.init.normal_(item_emb.weight, std=0.05)
        self.item_tower = ItemTower(cfg, item_emb)
        self.user_tower = UserTower(cfg, item_emb)
        t = torch.tensor(float(cfg.temperature)).log()
        self.log_temp = nn.Parameter(t) if cfg.learn_temperature else nn.Buffer(t)

    @property
    def temperature(self) -> torch.Tensor:
        return self.log_temp.exp().clamp(min=0.01)


def sampled_softmax_loss(
    u: torch.Tensor,  # (B, D) user vectors
    v_pos: torch.Tensor,  # (B, D) vectors of each row's positive item
    pos_ids: torch.Tensor,  # (B,) item indices of the positives
    log_q_pos: torch.Tensor,  # (B,) log P(item sampled as an in-batch candidate)
    v_neg: torch.Tensor,  # (M, D) uniformly sampled catalog items
    neg_ids: torch.Tensor,  # (M,)
    log_q_neg: torch.Tensor,  # (M,)
    temperature: torch.Tensor | float,
) -> torch.Tensor:
    """Sampled softmax over in-batch positives + uniform negatives (mixed negative sampling).

    Each candidate column's logit is corrected by subtracting its log sampling probability (log-Q),
    so popular items are not over-penalised for appearing often as negatives; a candidate equal to
    the row's positive (an accidental hit) is masked out, except on the diagonal.
    """
    cand = torch.cat([v_pos, v_neg])  # (B+M, D)
    cand_ids = torch.cat([pos_ids, neg_ids])  # (B+M,)
    logits = u @ cand.T / temperature - torch.cat([log_q_pos, log_q_neg])[None]  # (B, B+M)
    B = u.shape[0]
    hit = pos_ids[:, None] == cand_ids[None]  # (B, B+M)
    hit[:, :B] &= ~torch.eye(B, dtype=torch.bool, device=u.device)
    logits = logits.masked_fill(hit, float("-inf"))
    return F.cross_entropy(logits, torch.arange(B, device=u.device))
