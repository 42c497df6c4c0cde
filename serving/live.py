"""Live catalog changes (admin add / patch / hide): an append-only JSON-lines log per bundle
version, replayed when that version is loaded again, so changes survive a restart until the next
bundle supersedes them (a new version starts with an empty log).

    artifacts/live/<version>/changes.jsonl   one JSON object per change, fsync'ed
    artifacts/live/<version>/images/         uploaded product images
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from serving.errors import RequestError
from serving.loaded_bundle import LoadedBundle
from vision.preprocess import preprocess

log = logging.getLogger(__name__)


class ChangeLog:
    def __init__(self, artifacts: Path, version: str) -> None:
        self.root = artifacts / "live" / version
        self.path = self.root / "changes.jsonl"
        self.images = self.root / "images"

    def append(self, change: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(change, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def save_image(self, item_id: str, data: bytes, suffix: str) -> Path:
        self.images.mkdir(parents=True, exist_ok=True)
        p = self.images / f"{item_id}{suffix}"
        p.write_bytes(data)
        return p

    def entries(self) -> list[dict]:
        if not self.path.is_file():
            return []
        out = []
        for n, line in enumerate(self.path.read_text().splitlines(), 1):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a torn last line from a crash: everything before it stands
                log.warning("%s line %d: unreadable change, skipped", self.path, n)
        return out


def add_item(b: LoadedBundle, item_id: str, title: str, category: str | None, price: float, in_stock: bool,
             image_path: Path, pixels: np.ndarray | None = None) -> tuple[int, str]:
    """Classify and embed the image, embed the item with the item tower, insert it. Returns (row, predicted).
    ``pixels``: the photo already preprocessed (the upload route has it); else it is read from ``image_path``."""
    b.require_images()
    if pixels is None:
        pixels = preprocess(image_path.read_bytes(), b.preprocess_spec)
    probs, emb = b.classify(pixels)
    predicted = b.class_names[int(probs.argmax())]
    row = b.add_item(item_id, title, category or predicted, price, in_stock, emb, str(image_path), predicted)
    return row, predicted


def apply(b: LoadedBundle, change: dict) -> None:
    op = change["op"]
    if op == "add":
        add_item(b, change["item_id"], change["title"], change.get("category"), change["price"],
                 change["in_stock"], Path(change["image_path"]))
    elif op in ("patch", "hide"):
        row = b.row_of.get(change["item_id"])
        if row is None:
            raise KeyError(change["item_id"])
        if op == "patch":
            b.patch_item(row, in_stock=change.get("in_stock"), price=change.get("price"))
        else:
            b.hide_item(row)
    else:
        raise ValueError(f"unknown change {op!r}")


def replay(b: LoadedBundle, changes: ChangeLog) -> int:
    """Apply the version's logged changes in order; a change that no longer applies is logged and skipped."""
    n = 0
    for c in changes.entries():
        try:
            apply(b, c)
            n += 1
        except (KeyError, ValueError, OSError, RequestError) as e:
            log.warning("live change %s skipped: %s", c, e)
    if n:
        log.info("replayed %d live changes onto bundle %s", n, b.version)
    return n
