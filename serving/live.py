"""Live catalog changes (admin add / patch / hide): an append-only log per bundle version
(common/state_logs.py: a file on one host, a Redis stream across replicas), replayed when that
version is loaded again, so changes survive a restart until the next bundle supersedes them (a new
version starts with an empty log).

    live/<version>/changes                  one JSON object per change, durable before it is applied
    artifacts/live/<version>/images/        uploaded product images (also in Redis when it is the store)
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from common.jsonlines import fsync_dir
from common.state_logs import START, FileLogs, StateLogs
from serving.errors import RequestError
from serving.loaded_bundle import LoadedBundle
from vision.preprocess import preprocess

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")


class ChangeLog:
    def __init__(self, artifacts: Path, version: str, state: StateLogs | None = None) -> None:
        self.state, self.name, self.version = state or FileLogs(artifacts), f"live/{version}/changes", version
        self.path = FileLogs(artifacts).path(self.name)  # the log itself when the store is files
        self.images = artifacts / "live" / version / "images"

    def append(self, change: dict) -> None:
        """Durably logged before it is applied (raises StateUnavailableError when the store does not answer)."""
        self.state.append(self.name, change)

    def save_image(self, item_id: str, data: bytes, suffix: str) -> Path:
        """Store an uploaded photo under a name derived from the item id's hash (an id is free text:
        ``../x`` must not leave the folder) with an image suffix only (``.html`` must not be served as
        a page); fsync'ed with its folder, since the change log will point at it. A shared store keeps a
        copy, so a replica without this disk can apply the change."""
        suffix = suffix.lower() if suffix.lower() in IMAGE_SUFFIXES else ".img"
        name = f"{hashlib.sha256(item_id.encode()).hexdigest()[:32]}{suffix}"
        self.state.put_blob(f"live/{self.version}/images/{name}", data)
        return self._write_image(name, data)

    def _write_image(self, name: str, data: bytes) -> Path:
        self.images.mkdir(parents=True, exist_ok=True)
        p = self.images / name
        with p.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(self.images)
        return p

    def image(self, change: dict) -> Path:
        """The photo of an ``add`` change on this host: fetched from the shared store when it was
        uploaded through another replica. Only the file name is taken from the record."""
        name = Path(change["image_path"]).name
        p = self.images / name
        if not p.exists() and name and (data := self.state.get_blob(f"live/{self.version}/images/{name}")):
            self._write_image(name, data)
        return p

    def entries(self) -> list[dict]:
        return self.read_from(START)[0]

    def read_from(self, cursor: str) -> tuple[list[dict], str]:
        """Complete changes after ``cursor``, and the cursor after the last of them."""
        return self.state.read_from(self.name, cursor)


def add_item(b: LoadedBundle, item_id: str, title: str, category: str | None, price: float, in_stock: bool,
             image_path: Path, pixels: np.ndarray | None = None) -> tuple[int, str]:
    """Classify and embed the image, embed the item with the item tower, insert it. Returns (row, predicted).
    ``pixels``: the photo already preprocessed (the upload route has it); else it is read from ``image_path``."""
    model = b.require_images()
    if pixels is None:
        pixels = preprocess(image_path.read_bytes(), model.preprocess_spec)
    probs, emb = model.classify(pixels)
    predicted = model.class_names[int(probs.argmax())]
    row = b.add_item(item_id, title, category or predicted, price, in_stock, emb, str(image_path), predicted)
    return row, predicted


def apply(b: LoadedBundle, change: dict, changes: ChangeLog) -> None:
    op = change["op"]
    if op == "add":
        if change["item_id"] in b.catalog.row_of:  # already here (this process added it, or a replay)
            return
        add_item(b, change["item_id"], change["title"], change.get("category"), change["price"],
                 change["in_stock"], changes.image(change))
    elif op in ("patch", "hide"):
        row = b.catalog.row_of.get(change["item_id"])
        if row is None:
            raise KeyError(change["item_id"])
        if op == "patch":
            b.patch_item(row, in_stock=change.get("in_stock"), price=change.get("price"))
        else:
            b.hide_item(row)
    else:
        raise ValueError(f"unknown change {op!r}")


def replay(b: LoadedBundle, changes: ChangeLog) -> int:
    """Apply the version's logged changes in order; a change that no longer applies is logged and
    skipped. Remembers how far the log was read (``b.changes_offset``) for :func:`catch_up`."""
    b.changes_offset = START
    n = catch_up(b, changes)
    if n:
        log.info("replayed %d live changes onto bundle %s", n, b.version)
    return n


def catch_up(b: LoadedBundle, changes: ChangeLog) -> int:
    """Apply the changes other processes logged since the last read: every worker and replica on one
    artifacts directory converges on the same catalog within one poll (``changes_poll_s``). A change
    this process made itself comes back too; re-applying it is a no-op (a duplicate add is skipped)."""
    entries, offset = changes.read_from(b.changes_offset)
    b.changes_offset = offset
    return _apply_all(b, entries, changes)


def _apply_all(b: LoadedBundle, entries: list[dict], changes: ChangeLog) -> int:
    n = 0
    for c in entries:
        try:
            apply(b, c, changes)
            n += 1
        except (KeyError, ValueError, OSError, RequestError) as e:
            log.debug("live change %s not applied: %s", c.get("op"), e)
    return n


def apply_labels(b: LoadedBundle, decisions: list[dict]) -> int:
    """Accepted label decisions (serving/merch_store.py) this bundle has not applied yet, in the order
    they were made: the product takes the category the merchandiser accepted. ``decisions`` is the
    whole log; the first ``b.labels_applied`` are already in."""
    n = 0
    for d in decisions[b.labels_applied:]:
        row = b.catalog.row_of.get(d.get("item_id"))
        if d.get("decision") == "accept" and row is not None and d.get("category") in b.catalog.category_names:
            b.relabel_item(row, d["category"])
            n += 1
    b.labels_applied = len(decisions)
    return n
