"""Put trained artifacts together into a servable bundle (docs/architecture.md, "The artifact bundle").

Everything serving needs that is not a model is derived here, from the whole dataset as of now:
the catalog in row order, each known user's state (recent items, everything seen, purchases),
per-item statistics for the ranker, and the two indexes (tower vectors, image embeddings), built
and tuned to a recall target with the recall and QPS recorded in the manifest. Then
``serving.bundle.write_bundle`` copies, checksums, verifies, smoke-tests and renames. No torch:
user vectors for index tuning come from ``user_tower.onnx`` through ONNX Runtime.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common.onnx_runtime import make_session, run
from pipelines.tables import fingerprint
from recsys.features import FeatureSpec
from recsys.rank_features import ItemStats
from serving.bundle import write_bundle
from serving.index import VectorIndex

log = logging.getLogger(__name__)

MAX_SEEN = 500  # distinct items kept per user: enough for category shares and exclusion


@dataclass
class TrainedModels:
    """What the training steps produced (paths), plus their metrics and configs for the manifest."""

    towers_dir: Path  # user_tower.onnx, item_tower.onnx, item_vectors.npy, features.json
    ranker: Path  # ranker.onnx
    image_model: Path  # image_model.onnx
    image_vectors: Path  # (N, E) in items.parquet order (vision embed output)
    metrics: dict
    configs: dict


def catalog(data_dir: Path) -> pd.DataFrame:
    """Items sorted by item_id: row r is catalog row r (the recsys index space)."""
    return pd.read_parquet(data_dir / "items.parquet").sort_values("item_id").reset_index(drop=True)


def user_states(events: pd.DataFrame, users: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """One row per known user: feature columns + ``history`` (last L rows, most recent first),
    ``seen`` (distinct rows, most recent MAX_SEEN) and ``purchased`` (distinct rows)."""
    ev = events.assign(row=spec.item_vocab.encode_rows(events["item_id"]))
    ev = ev[ev["row"] >= 0].sort_values(["user_id", "ts"], ascending=[True, False], kind="stable")
    g = ev.groupby("user_id", sort=True)["row"]
    hist = g.apply(lambda r: r.to_numpy()[: spec.history_len].astype(np.int32))
    seen = g.apply(lambda r: pd.unique(r.to_numpy())[:MAX_SEEN].astype(np.int32))
    bought = ev[ev["event"] == "purchase"].groupby("user_id")["row"].apply(lambda r: np.unique(r.to_numpy()))
    out = users.set_index("user_id").reindex(users["user_id"])
    out = out[[c for c in spec.user_features]]
    empty = np.zeros(0, np.int32)
    out["history"] = [hist.get(u, empty) for u in out.index]
    out["seen"] = [seen.get(u, empty) for u in out.index]
    out["purchased"] = [bought.get(u, empty).astype(np.int32) for u in out.index]
    return out.reset_index()


def user_tower_vectors(path: Path, spec: FeatureSpec, states: pd.DataFrame, n: int, seed: int) -> np.ndarray:
    """User vectors for a sample of users with history: realistic queries to tune the item index on."""
    if spec.item_vocab.hash_buckets:
        raise ValueError("hashed item ids: catalog rows are not vocabulary indices")
    active = states[states["history"].map(len) > 0]
    sample = active.sample(min(n, len(active)), random_state=seed)
    feed = spec.user_tower_feed(spec.user_vocab.encode(sample["user_id"]),
                                spec.encode_user_features(sample["user_id"].to_numpy(), sample),
                                [np.asarray(h) for h in sample["history"]])
    return run(make_session(path, device="cpu"), feed)[0]


def build_index(vectors: np.ndarray, queries: np.ndarray, *, target_recall: float = 0.95, k: int = 100,
                kind: str = "auto", seed: int = 0) -> VectorIndex:
    """The `vitrine index build` step: kind by size, nprobe tuned on ``queries`` against exact search."""
    vi = VectorIndex.build(vectors, kind, seed=seed)
    vi.tune(queries, target_recall=target_recall, k=min(k, len(vectors)))
    return vi


def assemble_bundle(artifacts: Path, data_dir: Path, models: TrainedModels, *, target_recall: float = 0.95,
                    version: str | None = None, smoke=None, seed: int = 0) -> Path:
    """Write a new bundle version under ``artifacts/bundles`` (not promoted; see serving.bundle.promote)."""
    spec = FeatureSpec.load(models.towers_dir / "features.json")
    items = catalog(data_dir)
    events = pd.read_parquet(data_dir / "events.parquet")
    users = pd.read_parquet(data_dir / "users.parquet")
    states = user_states(events, users, spec)
    order = pd.read_parquet(data_dir / "items.parquet", columns=["item_id"])["item_id"]
    image = np.load(models.image_vectors)[pd.Index(order).get_indexer(items["item_id"])].astype(np.float32)
    item_vec = np.load(models.towers_dir / "item_vectors.npy").astype(np.float32)
    if len(item_vec) != len(items) or len(image) != len(items):
        raise ValueError(f"catalog has {len(items)} items but item vectors {len(item_vec)}, image vectors {len(image)}")
    stats = ItemStats.compute(items, spec.encode_items(items)["category"], events,
                              spec.item_vocab.encode_rows(events["item_id"]), image)
    rng = np.random.default_rng(seed)
    user_q = user_tower_vectors(models.towers_dir / "user_tower.onnx", spec, states, 500, seed)
    item_index = build_index(item_vec, user_q, target_recall=target_recall, seed=seed)
    image_index = build_index(image, image[rng.choice(len(image), min(500, len(image)), replace=False)],
                              target_recall=target_recall, seed=seed)
    with tempfile.TemporaryDirectory(prefix="vitrine-bundle-") as tmp:
        t = Path(tmp)
        items.to_parquet(t / "items.parquet", index=False)
        states.to_parquet(t / "users.parquet", index=False)
        np.save(t / "image_vectors.npy", image)
        stats.save(t / "item_stats.npz")
        item_index.save(t / "index.faiss")
        image_index.save(t / "image_index.faiss")
        files = {"items.parquet": t / "items.parquet", "users.parquet": t / "users.parquet",
                 "image_vectors.npy": t / "image_vectors.npy", "item_stats.npz": t / "item_stats.npz",
                 "index.faiss": t / "index.faiss", "image_index.faiss": t / "image_index.faiss",
                 "item_vectors.npy": models.towers_dir / "item_vectors.npy",
                 "features.json": models.towers_dir / "features.json",
                 "user_tower.onnx": models.towers_dir / "user_tower.onnx",
                 "item_tower.onnx": models.towers_dir / "item_tower.onnx",
                 "ranker.onnx": models.ranker, "image_model.onnx": models.image_model}
        info = {"dataset": {"dir": str(data_dir.resolve()), "fingerprint": fingerprint(data_dir),
                            "items": len(items), "users": len(states), "events": len(events)},
                "image_root": str(data_dir.resolve()), "metrics": models.metrics, "models": models.configs,
                "indexes": {"items": item_index.info.to_dict(), "images": image_index.info.to_dict()}}
        path = write_bundle(artifacts, files, json.loads(json.dumps(info, default=str)), version=version, smoke=smoke)
    log.info("bundle %s: item index %s recall@%d %.3f, image index %s recall@%d %.3f", path.name,
             item_index.info.kind, item_index.info.k, item_index.info.recall_at_k, image_index.info.kind,
             image_index.info.k, image_index.info.recall_at_k)
    return path
