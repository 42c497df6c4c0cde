"""Evaluate a checkpoint: accuracy, per-class P/R/F1, confusion matrix, calibration (ECE, NLL) before
and after temperature scaling fitted on the validation split (never on test)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from common.torch_runtime import pick_device
from vision.data import load_image_set, to_tensor
from vision.metrics import classification_report, confusion_png, fit_temperature, softmax
from vision.preprocess import PreprocessSpec
from vision.train import load_model, predict

log = logging.getLogger(__name__)


def fitted_temperature(checkpoint: Path) -> float:
    """The temperature `evaluate` fitted beside ``checkpoint`` (``eval/metrics.json``), else 1."""
    metrics = checkpoint.parent / "eval" / "metrics.json"
    return float(json.loads(metrics.read_text())["temperature"]) if metrics.is_file() else 1.0


def evaluate(checkpoint: Path, data_dir: Path, out_dir: Path, *, part: str = "test",
             max_items: int | None = None, seed: int = 0) -> dict:
    """Write metrics.json, confusion.csv and confusion.png to ``out_dir``; return the metrics."""
    device = pick_device()
    model, ck = load_model(checkpoint, device)
    model.to(device).to(memory_format=torch.channels_last)
    spec = PreprocessSpec.from_dict(ck["preprocess"])
    data = load_image_set(data_dir, spec, seed=seed, max_items=max_items)
    names = tuple(ck["model_config"]["class_names"]) or data.class_names
    if names != data.class_names:
        raise ValueError(f"checkpoint classes {names} differ from the catalog's {data.class_names}")
    logits = {}
    for p in ("valid", part):
        x, y = data.subset(p)
        logits[p] = (predict(model, to_tensor(x, spec), device)[0].numpy(), y)
    t = fit_temperature(*logits["valid"])
    lo, y = logits[part]
    raw = classification_report(y, softmax(lo), names)
    cal = classification_report(y, softmax(lo, t), names)
    metrics = {"checkpoint": str(checkpoint), "part": part, "temperature": t, **raw,
               "calibrated": {"ece": cal["ece"], "nll": cal["nll"]}}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    cm = np.asarray(raw["confusion"])
    header = "true\\pred," + ",".join(names)
    rows = [f"{n}," + ",".join(map(str, r)) for n, r in zip(names, cm, strict=True)]
    (out_dir / "confusion.csv").write_text("\n".join([header, *rows]) + "\n")
    confusion_png(cm, names, out_dir / "confusion.png")
    log.info("%s accuracy %.4f, ECE %.4f -> %.4f at T=%.3f", part, raw["accuracy"], raw["ece"], cal["ece"], t)
    return metrics
