"""Put trained artifacts together into a servable bundle (docs/architecture.md, "The artifact bundle").

Everything serving needs that is not a model is derived here, from the whole dataset as of now:
the catalog in row order, each known user's state (recent items, everything seen, purchases),
per-item statistics for the ranker, the recall channels' tables (fitted on every event, with the
configuration the ranker was trained with), and the two indexes (tower vectors, image
embeddings; none for a catalog without photos), built and tuned to a recall target with the recall
and QPS recorded in the manifest. Then ``bundle.versions.write_bundle`` copies, checksums, verifies,
smoke-tests and renames. No torch: user vectors for index tuning come from ``user_tower.onnx`` through ONNX Runtime.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bundle.index import VectorIndex
from bundle.index_tuner import tune_kinds
from bundle.photo_predictions import PhotoPredictions
from bundle.versions import write_bundle
from common.onnx_runtime import make_session, run
from pipelines.settings import get_settings
from pipelines.tables import fingerprint
from recsys.channels import ChannelConfig, Channels, binary_matrix, fit_channels
from recsys.features import FeatureSpec, stored_profiles
from recsys.rank_features import ItemStats
from recsys.repeat_sources import bundle_models
from recsys.shopper_state import user_states

log = logging.getLogger(__name__)

@dataclass
class TrainedModels:
    """What the training steps produced (paths), plus their metrics and configs for the manifest."""

    towers_dir: Path  # user_tower.onnx, item_tower.onnx, item_vectors.npy, features.json
    ranker: Path  # ranker.onnx
    image_model: Path | None  # image_model.onnx; None: a catalog without photos
    image_vectors: Path | None  # (N, E) in items.parquet order (vision embed output)
    metrics: dict
    configs: dict


def bundle_metrics(*, vision: dict, two_tower: dict, ranker: dict, parity: dict[str, float | None],
                   validation: dict | None = None) -> dict:
    """A bundle's manifest metrics, in the one shape the quality gate, warm start and the reports read
    (the nightly job and `vitrine bundle build` both call this).

    ``vision``: the CNN's test metrics (accuracy, macro_f1, ece, temperature); ``two_tower``: its
    full-catalog test metrics (ndcg@10, recall@20, ...); ``ranker``: the lift record (tower vs ranker
    on the same test candidates); ``parity``: max |ONNX - torch| per exported model."""
    headline = {"ranker_ndcg@10": ranker["ranker"]["ndcg@10"], "tower_ndcg@10": two_tower["ndcg@10"],
                "tower_recall@20": two_tower["recall@20"], "image_accuracy": vision["accuracy"]}
    vision = {k: vision[k] for k in ("accuracy", "macro_f1", "ece", "temperature") if k in vision}
    ranker = {k: v for k, v in ranker.items() if k not in ("train", "onnx_parity")}
    return {"headline": headline, "vision": vision, "two_tower": two_tower, "ranker": ranker, "parity": parity,
            "validation": validation}


def metrics_from_runs(towers_dir: Path, ranker: Path, image_model: Path) -> dict:
    """:func:`bundle_metrics` from what the `vitrine` commands wrote beside their models: the ranker's
    ``lift.json``, the two-tower run's ``test_metrics.json`` (`recsys evaluate`) and the CNN run's
    ``eval/metrics.json`` (`vision evaluate`). A missing file is a ValueError naming the command."""
    wants = {"ranker": (ranker.parent / "lift.json", "vitrine recsys ranker"),
             "two_tower": (towers_dir.parent / "test_metrics.json", "vitrine recsys evaluate"),
             "vision": (image_model.parent / "eval" / "metrics.json", "vitrine vision evaluate")}
    got = {}
    for name, (path, command) in wants.items():
        if not path.is_file():
            raise ValueError(f"{path}: no such file; run `{command}` first (the quality gate compares bundles "
                             "on these metrics)")
        got[name] = json.loads(path.read_text())
    return bundle_metrics(vision=got["vision"], two_tower=got["two_tower"]["models"]["two-tower"],
                          ranker=got["ranker"],
                          parity={"image_model": None, "towers": None, "ranker": got["ranker"].get("onnx_parity")})


def catalog(data_dir: Path) -> pd.DataFrame:
    """Items sorted by item_id: row r is catalog row r (the recsys index space)."""
    return pd.read_parquet(data_dir / "items.parquet").sort_values("item_id").reset_index(drop=True)


def user_tower_vectors(path: Path, spec: FeatureSpec, states: pd.DataFrame, n: int, seed: int) -> np.ndarray:
    """User vectors for a sample of users with history: realistic queries to tune the item index on."""
    if spec.item_vocab.hash_buckets:
        raise ValueError("hashed item ids: catalog rows are not vocabulary indices")
    active = states[states["history"].map(len) > 0]
    sample = active.sample(min(n, len(active)), random_state=seed)
    feed = spec.user_tower_feed(spec.user_vocab.encode(sample["user_id"]),
                                spec.encode_user_features(sample["user_id"].to_numpy(), sample),
                                [np.asarray(h) for h in sample["history"]], stored_profiles(sample))
    return run(make_session(path, device="cpu"), feed)[0]


def bundle_channels(ranker: Path, events: pd.DataFrame, spec: FeatureSpec, stats: ItemStats) -> Channels | None:
    """The recall channels the ranker was trained with (its ``channels`` metadata), fitted on every
    event as of now; None for a ranker trained on the tower's list alone."""
    meta = make_session(ranker, device="cpu").get_modelmeta().custom_metadata_map
    if "channels" not in meta:
        return None
    X = binary_matrix(events["user_id"].astype(str).to_numpy(), spec.item_vocab.encode_rows(events["item_id"]),
                      len(stats.category))
    return fit_channels(X, stats.category, spec.category_vocab.size, ChannelConfig(**json.loads(meta["channels"])))


def build_index(vectors: np.ndarray, queries: np.ndarray, *, target_recall: float = 0.95, k: int = 100,
                kind: str = "auto", seed: int = 0, budget_s: float = 600.0) -> VectorIndex:
    """The `vitrine index build` step: ``auto`` measures the candidate kinds on ``queries`` and keeps the
    fastest at the recall target (``bundle/index_tuner.py``); a named kind is only tuned."""
    if kind == "auto":
        return tune_kinds(vectors, queries, target_recall=target_recall, k=k, seed=seed, budget_s=budget_s)
    vi = VectorIndex.build(vectors, kind, seed=seed)
    vi.tune(queries, target_recall=target_recall, k=min(k, len(vectors)))
    return vi


def build_index_file(vectors: Path, out: Path, queries: Path | None = None, *, target_recall: float = 0.95,
                     k: int = 100, kind: str = "auto") -> VectorIndex:
    """`vitrine index build`: an index over a (N, D) ``.npy`` tuned on ``queries`` (default: 500 of the
    vectors), saved to ``out`` with its settings in ``OUT.json``. Bad shapes are a ValueError."""
    x = np.load(vectors).astype(np.float32)
    if x.ndim != 2 or not len(x):
        raise ValueError(f"{vectors}: expected a non-empty (N, D) array, got shape {x.shape}")
    q = np.load(queries).astype(np.float32) if queries else x[np.random.default_rng(0).choice(
        len(x), min(500, len(x)), replace=False)]
    if q.ndim != 2 or q.shape[1] != x.shape[1]:
        raise ValueError(f"queries have shape {q.shape}, vectors {x.shape}: dimensions differ")
    vi = build_index(x, q, target_recall=target_recall, k=k, kind=kind)
    vi.save(out)
    out.with_name(out.name + ".json").write_text(json.dumps(vi.info.to_dict(), indent=2) + "\n")
    return vi


def bundle_from_runs(artifacts: Path, data_dir: Path, *, towers_dir: Path, ranker: Path, image_model: Path,
                     image_vectors: Path, target_recall: float = 0.95) -> Path:
    """`vitrine bundle build`: a bundle from the files the `vitrine` model commands wrote, with the same
    manifest metrics as a nightly bundle (:func:`metrics_from_runs`). Missing inputs are a ValueError."""
    for p in (towers_dir / "features.json", ranker, image_model, image_vectors):
        if not p.is_file():
            raise ValueError(f"{p}: no such file")
    models = TrainedModels(towers_dir, ranker, image_model, image_vectors,
                           metrics_from_runs(towers_dir, ranker, image_model),
                           configs={"sources": {"vision": str(image_model.parent), "two_tower": str(towers_dir.parent),
                                                "ranker": str(ranker.parent)}})  # warm start reads two_tower
    return assemble_bundle(artifacts, data_dir, models, target_recall=target_recall)


def assemble_bundle(artifacts: Path, data_dir: Path, models: TrainedModels, *, target_recall: float = 0.95,
                    version: str | None = None, smoke=None, seed: int = 0) -> Path:
    """Write a new bundle version under ``artifacts/bundles`` (not promoted; see bundle.versions.promote).
    ``models.image_model`` None: a catalog without photos (no image model, image index or vectors)."""
    spec = FeatureSpec.load(models.towers_dir / "features.json")
    items = catalog(data_dir)
    events = pd.read_parquet(data_dir / "events.parquet")
    users = pd.read_parquet(data_dir / "users.parquet")
    states = user_states(events, users, spec)
    item_vec = np.load(models.towers_dir / "item_vectors.npy").astype(np.float32)
    image = None
    if models.image_model is not None:
        order = pd.read_parquet(data_dir / "items.parquet", columns=["item_id"])["item_id"]
        image = np.load(models.image_vectors)[pd.Index(order).get_indexer(items["item_id"])].astype(np.float32)
    if len(item_vec) != len(items) or (image is not None and len(image) != len(items)):
        raise ValueError(f"catalog has {len(items)} items but item vectors {len(item_vec)}, image vectors "
                         f"{None if image is None else len(image)}")
    stats = ItemStats.compute(items, spec.encode_items(items)["category"], events,
                              spec.item_vocab.encode_rows(events["item_id"]), image)
    channels = bundle_channels(models.ranker, events, spec, stats)
    rng = np.random.default_rng(seed)
    user_q = user_tower_vectors(models.towers_dir / "user_tower.onnx", spec, states, 500, seed)
    indexes = {"items": build_index(item_vec, user_q, target_recall=target_recall, seed=seed)}
    if image is not None:
        indexes["images"] = build_index(image, image[rng.choice(len(image), min(500, len(image)), replace=False)],
                                        target_recall=target_recall, seed=seed)
    with tempfile.TemporaryDirectory(prefix="vitrine-bundle-") as tmp:
        t = Path(tmp)
        items.to_parquet(t / "items.parquet", index=False)
        states.to_parquet(t / "users.parquet", index=False)
        stats.save(t / "item_stats.npz")
        indexes["items"].save(t / "index.faiss")
        files = {"items.parquet": t / "items.parquet", "users.parquet": t / "users.parquet",
                 "item_stats.npz": t / "item_stats.npz", "index.faiss": t / "index.faiss",
                 "item_vectors.npy": models.towers_dir / "item_vectors.npy",
                 "features.json": models.towers_dir / "features.json",
                 "user_tower.onnx": models.towers_dir / "user_tower.onnx",
                 "item_tower.onnx": models.towers_dir / "item_tower.onnx", "ranker.onnx": models.ranker}
        preds = models.image_vectors.parent / "image_predictions.parquet" if image is not None else None
        if preds is not None and preds.is_file():  # the CNN's verdict per photo: the console's "photos to check"
            names = json.loads(make_session(models.image_model).get_modelmeta().custom_metadata_map["class_names"])
            PhotoPredictions.from_table(pd.read_parquet(preds), items["item_id"], names).save(
                t / "image_predictions.npz")
            files["image_predictions.npz"] = t / "image_predictions.npz"
        if image is not None:
            np.save(t / "image_vectors.npy", image)
            indexes["images"].save(t / "image_index.faiss")
            files |= {"image_vectors.npy": t / "image_vectors.npy", "image_index.faiss": t / "image_index.faiss",
                      "image_model.onnx": models.image_model}
        if channels is not None:
            channels.save(t / "channels.npz")
            files["channels.npz"] = t / "channels.npz"
        fit = models.ranker.parent / "placements.json"  # the placements' models (recsys/placements.py)
        if fit.is_file():
            looks = image if image is not None else item_vec  # look-alikes lend their complements
            bundle_models(fit, events, items, looks).save(t / "placements.npz")
            files["placements.npz"] = t / "placements.npz"
        info = {"dataset": {"dir": str(data_dir.resolve()), "fingerprint": fingerprint(data_dir),
                            "items": len(items), "users": len(states), "events": len(events)},
                "image_root": str(data_dir.resolve()), "metrics": models.metrics, "models": models.configs,
                "indexes": {k: v.info.to_dict() for k, v in indexes.items()}}
        path = write_bundle(artifacts, files, json.loads(json.dumps(info, default=str)), version=version, smoke=smoke,
                            key=get_settings().bundle_key)  # signed when the replicas share a key
    log.info("bundle %s: %s", path.name, ", ".join(f"{k} index {v.info.kind} recall@{v.info.k} {v.info.recall_at_k:.3f}"
                                                  for k, v in indexes.items()))
    return path
