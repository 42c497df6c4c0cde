"""The image CNN's training recipe (torch-free: the nightly job checks it when its config loads)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from common.recipes import STRICT, load_recipe


@dataclass(frozen=True)
class TrainConfig:
    __pydantic_config__ = STRICT

    data_dir: str = "data/fashion-shop"
    run_dir: str = "runs/vision"
    model: str = "resnet_fm_s"  # a registered factory of vision/model.py
    epochs: int = 12
    batch_size: int = 256
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.1  # at batch_size 256; scaled linearly with the global batch
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    ema_decay: float = 0.998  # 0 disables
    patience: int = 4  # epochs without a better validation accuracy
    pad: int = 2
    flip: bool = True
    erase_p: float = 0.25
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    max_items: int | None = None  # subsample the catalog (tests)
    eval_batch_size: int = 1024
    model_overrides: dict = field(default_factory=dict)  # VisionConfig fields over the factory's
    max_steps: int | None = None  # cap on steps per epoch (benchmarks, smoke runs); None: the whole epoch
    compile: bool = False  # torch.compile the training step's model (CUDA; pays a warm-up of tens of seconds)

    @classmethod
    def from_yaml(cls, path: Path | None, **overrides) -> TrainConfig:
        return load_recipe(cls, path, **overrides)
