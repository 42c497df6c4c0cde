"""The nightly job's steps as plain functions: inputs in, the step's own output directory, a
JSON-able result. Each writes only under ``out`` and later steps get that path handed on.

``pipelines/nightly.py`` decides when each runs (fingerprints, resume); these only do the work, by
calling the same library functions as the `vitrine` sub-commands. Torch-side modules are imported
inside the training steps: the nightly module (and the `vitrine` CLI that loads it) must import
on a serving-only install, which has no torch.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

from bundle.versions import BundleError, bundles_dir, current_version
from pipelines.assemble import TrainedModels, assemble_bundle
from pipelines.errors import EXIT_DATA, NightlyError
from pipelines.settings import get_settings
from pipelines.splits import split_events, write_splits
from pipelines.tables import read_dataset, read_table
from pipelines.validate import DataValidationError, check_threshold, validate
from recsys.config import RankerTrainConfig, RecTrainConfig
from recsys.data import load_rec_data
from vision.config import TrainConfig

log = logging.getLogger(__name__)


def validate_step(data: Path, out: Path) -> dict:
    """Re-validate the canonical tables (a nightly job must not train on a broken export)."""
    tables = read_dataset(data)
    v = validate(tables["items"], tables["users"], tables["events"], image_root=data, pixel_cache=data / "cache")
    counts = {r.table: {"rows": r.n_rows, "bad": r.n_bad} for r in v.reports.values()}
    try:
        check_threshold(v, get_settings().max_bad_share)
    except DataValidationError as e:
        raise NightlyError(f"data validation failed: {e}", EXIT_DATA) from e
    return counts


def split_step(data: Path, kind: str, out: Path) -> dict:
    """``out/{train,valid,test}.parquet``: the split the two-tower and the ranker read (never DATA/splits,
    which a person may rewrite or delete between runs)."""
    parts = split_events(read_table(data / "events.parquet"), kind)
    write_splits(parts, out)
    return {k: len(v) for k, v in parts.items()}


def vision_step(data: Path, out: Path, recipe: TrainConfig) -> dict:
    """Train (resuming in ``out``), evaluate, embed the catalog with calibrated predictions, export."""
    from vision.embed import embed_catalog, suspected_mislabeled
    from vision.evaluate import evaluate
    from vision.export import export_image_model
    from vision.train import set_threads, train

    set_threads()
    best = train(replace(recipe, data_dir=str(data), run_dir=str(out)))
    metrics = evaluate(best, data, out / "eval", part="test")  # temperature fitted on validation
    temperature = metrics["temperature"]
    pred = embed_catalog(best, data, out / "embed", temperature=temperature)
    sus = suspected_mislabeled(pred)
    sus.to_csv(out / "embed" / "suspected_mislabeled.csv", index=False)
    parity = export_image_model(best, out / "image_model.onnx", temperature=temperature)["max_abs_diff"]
    return {"eval": {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "ece": metrics["ece"],
                     "temperature": temperature}, "parity": parity, "suspected_mislabeled": len(sus)}


class RecDataCache:
    """Recommender inputs, loaded at most once per run (25 s on fashion-shop) and only if needed."""

    def __init__(self, data: Path, split: str, split_dir: Path, image_vectors: Path, valid_users: int,
                 profile: dict | None = None) -> None:
        self.data, self.split, self.split_dir, self.profile = data, split, split_dir, profile or {}
        self.image_vectors, self.valid_users = image_vectors, valid_users
        self._data = None

    def get(self):
        if self._data is None:
            self._data = load_rec_data(self.data, split=self.split, split_dir=self.split_dir,
                                       image_vectors=self.image_vectors, max_eval_users=self.valid_users,
                                       **self.profile)
        return self._data


def tuned_path(artifacts: Path) -> Path:
    """Where `vitrine recsys tune` leaves the two-tower's searched parameters for the nightly job."""
    return artifacts / "tuning" / "two_tower.json"


def tuned_two_tower(artifacts: Path) -> dict:
    """The last search's winning parameters ({} when no search was run); every night uses them until
    the next search replaces the file."""
    p = tuned_path(artifacts)
    return dict(json.loads(p.read_text())["params"]) if p.is_file() else {}


def previous_two_tower(artifacts: Path) -> Path | None:
    """The two-tower checkpoint behind the bundle in CURRENT, for a warm start (None if gone)."""
    cur = current_version(artifacts)
    if cur is None:
        return None
    try:
        src = json.loads((bundles_dir(artifacts) / cur / "manifest.json").read_text())["models"]["sources"]["two_tower"]
    except (OSError, KeyError, json.JSONDecodeError, BundleError):
        return None
    ck = Path(src) / "best.pt"
    return ck if ck.is_file() else None


def two_tower_step(rec: RecDataCache, out: Path, recipe: RecTrainConfig, init_from: Path | None = None) -> dict:
    from recsys.evaluate import evaluate_ranking, two_tower_scores
    from recsys.export import export_towers
    from recsys.train import load_two_tower, train_two_tower

    d = rec.get()
    eval_users = min(rec.valid_users, recipe.eval_users or rec.valid_users)
    cfg = replace(recipe, data_dir=str(rec.data), run_dir=str(out), split=rec.split,
                  image_vectors=str(rec.image_vectors), eval_users=eval_users,
                  init_from=str(init_from) if init_from else None)
    model, _, _ = load_two_tower(train_two_tower(cfg, d))
    test = evaluate_ranking(two_tower_scores(model, d, d.test), d.test, d, ks=(10, 20, 100))
    parity = export_towers(model, d, out / "export")["max_abs_diff"]
    return {"test": test, "parity": parity, "warm_start": str(init_from) if init_from else None}


def ranker_step(rec: RecDataCache, tt_dir: Path, out: Path, recipe: RankerTrainConfig) -> dict:
    from recsys.ranker import train_evaluate_export
    from recsys.train import load_two_tower

    tt, _, _ = load_two_tower(tt_dir / "best.pt")
    r = train_evaluate_export(tt, rec.get(), recipe, out)
    info = r.pop("train")
    return {"lift": r, "parity": r.pop("onnx_parity"), "train": {k: v for k, v in info.items() if k != "history"}}


def bundle_step(artifacts: Path, data: Path, models: TrainedModels, target_recall: float) -> dict:
    """Assemble (not promote) the bundle; the version is remembered so a re-run does not rebuild it."""
    from serving.smoke import check_servable

    # the service's own load + smoke check before the rename: a bundle it would refuse is never published
    path = assemble_bundle(artifacts, data, models, target_recall=target_recall, smoke=check_servable)
    m = json.loads((path / "manifest.json").read_text())
    return {"version": path.name, "index_recall": {k: v["recall_at_k"] for k, v in m["indexes"].items()}}
