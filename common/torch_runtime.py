"""Torch-side helpers shared by the two training packages (vision, recsys): device choice, DDP
set-up, atomic checkpoints with the early-stopping state every training loop keeps, and ONNX
export with its parity check (run through the same session code as serving, ``common.onnx_runtime``).
Recipes are read by the torch-free common/recipes.py."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import onnx
import torch
import torch.distributed as dist

from common.onnx_runtime import make_session, run

log = logging.getLogger(__name__)
C = TypeVar("C")


class ParityError(RuntimeError):
    """ONNX Runtime and PyTorch disagree beyond the tolerance."""


def pick_device(want: str = "auto") -> torch.device:
    """CUDA when present (this process's LOCAL_RANK under torchrun), else the CPU, said in the log."""
    if want != "cpu" and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if want == "cuda":
        log.warning("CUDA requested but not available: running on the CPU")
    elif want == "auto":
        log.info("no CUDA device: running on the CPU")
    return torch.device("cpu")


def init_distributed() -> tuple[bool, int, int]:
    """(ddp, rank, world) — joins the process group when launched by torchrun."""
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if ddp and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (ddp, dist.get_rank(), dist.get_world_size()) if ddp else (False, 0, 1)


def save_checkpoint(path: Path, **state) -> None:
    """Write then rename: a crash mid-write never leaves a torn checkpoint."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


@dataclass
class EarlyStopping:
    """What every training loop keeps between epochs (the CNN, the two-tower, the ranker): the best
    validation score so far, the epochs since, each epoch's record; stop after ``patience`` epochs
    without a better score. Saved in ``last.pt`` with the weights, so a resumed run stops where an
    uninterrupted one would have."""

    patience: int
    best: float = -math.inf
    bad: int = 0
    history: list[dict] = field(default_factory=list)

    def update(self, score: float, record: dict) -> bool:
        """Record an epoch; True when ``score`` is a new best."""
        self.history.append(record)
        if score > self.best:
            self.best, self.bad = score, 0
            return True
        self.bad += 1
        return False

    @property
    def stop(self) -> bool:
        return self.bad >= self.patience

    def state(self) -> dict:
        return {"best": self.best, "bad": self.bad, "history": self.history}


def save_last(run: Path, epoch: int, stopping: EarlyStopping, **state) -> None:
    """``run/last.pt``: everything to resume after ``epoch`` (0-based) exactly."""
    save_checkpoint(run / "last.pt", epoch=epoch, **stopping.state(), **state)


def resume(run: Path, patience: int, device: torch.device | str = "cpu") -> tuple[int, EarlyStopping, dict | None]:
    """(first epoch to run, early-stopping state, the ``last.pt`` checkpoint or None) of a run
    directory: a fresh run starts at epoch 0."""
    path = run / "last.pt"
    if not path.exists():
        return 0, EarlyStopping(patience), None
    ck = torch.load(path, map_location=device, weights_only=True)
    best = ck["best"] if "best" in ck else ck["best_acc"]  # the CNN's checkpoints before the shared helper
    bad = ck["bad"] if "bad" in ck else ck["bad_epochs"]
    return ck["epoch"] + 1, EarlyStopping(patience, best, bad, list(ck["history"])), ck


def export_onnx(model: torch.nn.Module, example: tuple[torch.Tensor, ...], path: Path, *,
                input_names: list[str], output_names: list[str], metadata: dict[str, str] | None = None) -> Path:
    """Export with the first dimension of every input dynamic ("batch"), then run onnx.checker."""
    model = model.eval()
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    dynamic = tuple({0: batch} for _ in example)  # positional: forward's own arg names may differ
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        prog = torch.onnx.export(model, example, input_names=input_names, output_names=output_names,
                                 dynamic_shapes=dynamic, dynamo=True, verbose=False)
    prog.save(str(path))
    m = onnx.load(str(path))
    for k, v in (metadata or {}).items():
        entry = m.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(m, str(path))
    onnx.checker.check_model(str(path), full_check=True)
    return path


def parity(path: Path, model: torch.nn.Module, inputs: dict[str, np.ndarray], tol: float = 1e-4) -> float:
    """Max |ORT - torch| over all outputs for these inputs; raises :class:`ParityError` above ``tol``
    times the outputs' scale (their largest magnitude, at least 1): float32 rounding grows with the
    values, and a ranker logit of 200 differs by 2e-4 between two correct kernels."""
    got = run(make_session(path), inputs)
    with torch.no_grad():
        want = model.eval()(*(torch.from_numpy(v) for v in inputs.values()))
    want = [w.numpy() for w in (want if isinstance(want, tuple) else (want,))]
    diff = max(float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True))
    scale = max(1.0, *(float(np.abs(w).max(initial=0.0)) for w in want))
    if not diff <= tol * scale:
        raise ParityError(f"{path.name}: ONNX Runtime differs from PyTorch by {diff:.2e} > {tol:.0e} x {scale:.3g}")
    return diff
