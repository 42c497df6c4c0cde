"""Classification metrics and temperature scaling, numpy only (analytics reuse them without torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """(K, K) counts, rows = true class, columns = predicted."""
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, n_bins: int = 15) -> float:
    """Σ_b |B|/N · |accuracy(B) − confidence(B)| over equal-width confidence bins."""
    conf = probs.max(1)
    correct = probs.argmax(1) == y_true
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def nll(probs: np.ndarray, y_true: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(y_true)), y_true], 1e-12, None)).mean())


def fit_temperature(logits: np.ndarray, y_true: np.ndarray, lo: float = 0.05, hi: float = 20.0) -> float:
    """Temperature minimising validation NLL (golden-section search on log T; NLL is unimodal in T)."""
    a, b = np.log(lo), np.log(hi)
    g = (np.sqrt(5) - 1) / 2
    f = lambda t: nll(softmax(logits, float(np.exp(t))), y_true)  # noqa: E731
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(60):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return float(np.exp((a + b) / 2))


def classification_report(y_true: np.ndarray, probs: np.ndarray, class_names: tuple[str, ...]) -> dict:
    k = len(class_names)
    pred = probs.argmax(1)
    cm = confusion_matrix(y_true, pred, k)
    tp = np.diag(cm).astype(float)
    precision = np.divide(tp, cm.sum(0), out=np.zeros(k), where=cm.sum(0) > 0)
    recall = np.divide(tp, cm.sum(1), out=np.zeros(k), where=cm.sum(1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0)
    return {
        "n": int(len(y_true)),
        "accuracy": float((pred == y_true).mean()),
        "macro_f1": float(f1.mean()),
        "ece": expected_calibration_error(probs, y_true),
        "nll": nll(probs, y_true),
        "per_class": {c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                          "support": int(cm[i].sum())} for i, c in enumerate(class_names)},
        "confusion": cm.tolist(),
    }


def confusion_png(cm: np.ndarray, class_names: tuple[str, ...], path: Path, cell: int = 44) -> None:
    """Row-normalised confusion matrix as a heat map with counts (Pillow only)."""
    k = len(class_names)
    label_w = 8 * max(len(c) for c in class_names) + 12
    img = Image.new("RGB", (label_w + k * cell + 10, label_w + k * cell + 10), "white")
    draw = ImageDraw.Draw(img)
    rows = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    for i in range(k):
        draw.text((4, label_w + i * cell + cell // 2 - 6), class_names[i], fill="black")
        col = Image.new("RGB", (label_w, 14), "white")
        ImageDraw.Draw(col).text((2, 1), class_names[i], fill="black")
        img.paste(col.rotate(90, expand=True), (label_w + i * cell + cell // 2 - 7, 4))
        for j in range(k):
            v = rows[i, j]
            shade = int(255 * (1 - v))
            x0, y0 = label_w + j * cell, label_w + i * cell
            draw.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=(shade, shade, 255), outline="#ccc")
            draw.text((x0 + 4, y0 + cell // 2 - 6), str(int(cm[i, j])), fill="white" if v > 0.5 else "black")
    img.save(path)
