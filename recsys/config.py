"""The recommender's recipes: the two-tower's training run, the recall channels and the ranker's
training run, as frozen dataclasses (torch-free: the nightly job checks them when its config loads,
before anything trains; common/recipes.py). A model's hyperparameters are declared once, in
``TowerHparams`` / ``RankerHparams``: the training recipe and the model's own config (saved in
every checkpoint) both inherit them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from common.recipes import STRICT, load_recipe
from recsys.features import PROFILE_LEN


@dataclass(frozen=True)
class TowerHparams:
    """The two-tower model's hyperparameters (recsys/model.py ``TwoTowerConfig`` adds the sizes)."""

    __pydantic_config__ = STRICT

    sequence_encoder: str = "mean"  # mean | gru | attention over the recent history | none (profile only)
    user_id_dropout: float | None = None  # None: id_dropout; higher keeps the id from memorising
    emb_dim: int = 64
    hidden: int = 256
    out_dim: int = 64
    temperature: float = 0.05
    learn_temperature: bool = False
    id_dropout: float = 0.1


@dataclass(frozen=True)
class RecTrainConfig(TowerHparams):
    """One two-tower training run: the data, the model's hyperparameters (``TowerHparams``), the
    optimisation and its budget."""

    data_dir: str = "data/fashion-shop"
    run_dir: str = "runs/two-tower"
    split: str = "temporal-user"
    image_vectors: str | None = None  # item-aligned CNN embeddings (vitrine vision embed)
    epochs: int = 20
    batch_size: int = 1024
    n_negatives: int = 1024  # uniform catalog negatives per step
    full_softmax_items: int = 5000  # catalogs up to this size: softmax over every item instead of sampling
    lr: float = 3e-3
    weight_decay: float = 0.0
    # id tables get sparse gradients + SparseAdam on the CPU (a step touches only the batch's rows);
    # dense + fused AdamW on CUDA, where a sparse update waits for the GPU every step (its row count
    # is read on the host) and a dense update of a few million rows costs microseconds; dense under DDP
    sparse_ids: bool = True
    history_len: int = 20
    # Long-term profile (when this run loads its own data; data passed in brings its FeatureSpec's).
    profile_len: int = PROFILE_LEN  # 0: no profile
    half_life_days: float = 0.0
    profile_dropout: float = 0.2  # share of profile items hidden per training example (denoising)
    patience: int = 3
    eval_users: int | None = 5000  # validation users sampled for early stopping
    init_from: str | None = None  # warm start: a previous two-tower checkpoint (rows matched by id)
    seed: int = 0
    device: str = "auto"
    max_steps: int | None = None  # cap on steps per epoch (benchmarks, smoke runs); None: the whole epoch

    @classmethod
    def from_yaml(cls, path: Path | None, **overrides) -> RecTrainConfig:
        return load_recipe(cls, path, **overrides)


@dataclass(frozen=True)
class ChannelConfig:
    """The recall channels beside the two-tower (recsys/channels.py): how many candidates each adds
    and how its tables are fitted."""

    __pydantic_config__ = STRICT

    item2item: int = 100  # candidates from the item-to-item channel per request (0 = off)
    category_popular: int = 50  # candidates from the popular-in-your-categories channel (0 = off)
    neighbours: int = 200  # targets kept per source item
    method: str = "auto"  # ease | itemknn | auto (EASE up to ease_max_items items, ItemKNN beyond)
    ease_max_items: int = 5000  # EASE inverts an (n, n) matrix: O(n^3) time, 8 n^2 bytes
    ease_lambda: float = 250.0
    per_category: int = 200  # most popular items kept per category
    recent_items: int = 5  # the item-to-item score from only the shopper's latest items is a feature too

    @property
    def extra(self) -> int:
        """Candidates the extra channels may add to the tower's list."""
        return self.item2item + self.category_popular


@dataclass(frozen=True)
class RankerHparams:
    """The DCN-v2 ranker's hyperparameters (recsys/ranker.py ``RankerConfig`` adds the sizes)."""

    __pydantic_config__ = STRICT

    cat_dim: int = 8
    # One low-rank cross layer and an MLP 32 (5.8k multiply-adds per candidate): 2.2-2.6x faster per
    # candidate than the 2-cross / MLP 64-32 form (19k) that shipped before issue 32, served NDCG@10
    # -0.5 % on MovieLens' random split and +63 % on fashion-shop's gate holdout (docs/models.md,
    # bench/ranker_student.py, bench/served_path.py)
    cross_layers: int = 1
    cross_rank: int = 16  # low-rank cross weights W = U·V (DCN-v2's cheap form); 0 = full d0 x d0
    hidden: tuple[int, ...] = (32,)
    dropout: float = 0.1
    # x0 = [dense, u ⊙ v, category] (84 wide); True adds u and v themselves (212 wide). With hidden
    # (128, 64) and u, v in x0 the ranker needs 3.4x the multiply-adds per candidate for no held-out
    # gain on fashion-shop (it keeps more lift on MovieLens; docs/models.md)
    raw_vectors: bool = False


@dataclass(frozen=True)
class RankerTrainConfig:
    __pydantic_config__ = STRICT

    candidates: int = 200
    epochs: int = 20
    patience: int = 5
    users_per_batch: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-5
    # validation-period users kept for early stopping: on MovieLens (943 users) a 10 % holdout stopped
    # at a noise peak after 2 epochs (test NDCG@10 0.339); 20 % and patience 5 gave 0.343-0.346 (3 seeds)
    holdout_share: float = 0.2
    seed: int = 0
    device: str = "auto"
    model: RankerHparams = field(default_factory=RankerHparams)
    channels: ChannelConfig | None = field(default_factory=ChannelConfig)  # None: the tower's list only
