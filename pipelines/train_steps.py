"""The nightly job's steps as plain functions: inputs in, an output directory, a JSON-able result.

``pipelines/nightly.py`` decides when each runs (fingerprints, resume); these only do the work, by
calling the same library functions as the `vitrine` sub-commands.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


def validate_step(data: Path, out: Path) -> dict:
    """Re-validate the canonical tables (a nightly job must not train on a broken export)."""
    from pipelines.nightly import EXIT_DATA, NightlyError
    from pipelines.settings import get_settings
    from pipelines.tables import read_dataset
    from pipelines.validate import DataValidationError, check_threshold, validate

    tables = read_dataset(data)
    v = validate(tables["items"], tables["users"], tables["events"], image_root=data)
    counts = {r.table: {"rows": r.n_rows, "bad": r.n_bad} for r in v.reports.values()}
    try:
        check_threshold(v, get_settings().max_bad_share)
    except DataValidationError as e:
        raise NightlyError(f"data validation failed: {e}", EXIT_DATA) from e
    return counts


def split_step(data: Path, kind: str) -> dict:
    from pipelines.splits import split_events, write_splits

    parts = split_events(pd.read_parquet(data / "events.parquet"), kind)
    write_splits(parts, data / "splits" / kind)
    return {k: len(v) for k, v in parts.items()}


def vision_step(data: Path, out: Path, overrides: dict) -> dict:
    """Train (resuming in ``out``), evaluate, embed the catalog with calibrated predictions, export."""
    from vision.embed import embed_catalog, suspected_mislabeled
    from vision.evaluate import evaluate
    from vision.export import export_image_model
    from vision.train import TrainConfig, set_threads, train

    set_threads()
    best = train(TrainConfig(**({"data_dir": str(data), "run_dir": str(out)} | overrides)))
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

    def __init__(self, data: Path, split: str, image_vectors: Path, valid_users: int) -> None:
        self.args = (data, split, image_vectors, valid_users)
        self._data = None

    def get(self):
        if self._data is None:
            from recsys.data import load_rec_data

            data, split, img, users = self.args
            self._data = load_rec_data(data, split=split, image_vectors=img, max_eval_users=users)
        return self._data


def previous_two_tower(artifacts: Path) -> Path | None:
    """The two-tower checkpoint behind the bundle in CURRENT, for a warm start (None if gone)."""
    from serving.bundle import BundleError, bundles_dir, current_version

    cur = current_version(artifacts)
    if cur is None:
        return None
    try:
        src = json.loads((bundles_dir(artifacts) / cur / "manifest.json").read_text())["models"]["sources"]["two_tower"]
    except (OSError, KeyError, json.JSONDecodeError, BundleError):
        return None
    ck = Path(src) / "best.pt"
    return ck if ck.is_file() else None


def two_tower_step(rec: RecDataCache, out: Path, overrides: dict, init_from: Path | None = None) -> dict:
    from recsys.evaluate import evaluate_ranking, two_tower_scores
    from recsys.export import export_towers
    from recsys.train import RecTrainConfig, load_two_tower, train_two_tower

    d = rec.get()
    data, split, img, users = rec.args
    cfg = RecTrainConfig(**({"data_dir": str(data), "run_dir": str(out), "split": split, "image_vectors": str(img),
                             "eval_users": min(users, 5000),
                             "init_from": str(init_from) if init_from else None} | overrides))
    model, _, _ = load_two_tower(train_two_tower(cfg, d))
    test = evaluate_ranking(two_tower_scores(model, d, d.test), d.test, d, ks=(10, 20, 100))
    parity = export_towers(model, d, out / "export")["max_abs_diff"]
    return {"test": test, "parity": parity, "warm_start": str(init_from) if init_from else None}


def ranker_step(rec: RecDataCache, tt_dir: Path, out: Path, overrides: dict) -> dict:
    from recsys.ranker import RankerTrainConfig, train_evaluate_export
    from recsys.train import load_two_tower

    data, split, _, _ = rec.args
    tt, _, _ = load_two_tower(tt_dir / "best.pt")
    r = train_evaluate_export(tt, rec.get(), data, split, RankerTrainConfig(**overrides), out)
    info = r.pop("train")
    return {"lift": r, "parity": r.pop("onnx_parity"), "train": {k: v for k, v in info.items() if k != "history"}}


def bundle_step(artifacts: Path, data: Path, vision_dir: Path, tt_dir: Path, rk_dir: Path, metrics: dict,
                cfg) -> dict:
    """Assemble (not promote) the bundle; the version is remembered so a re-run does not rebuild it."""
    from dataclasses import asdict

    from pipelines.assemble import TrainedModels, assemble_bundle

    models = TrainedModels(towers_dir=tt_dir / "export", ranker=rk_dir / "ranker.onnx",
                           image_model=vision_dir / "image_model.onnx",
                           image_vectors=vision_dir / "embed" / "image_vectors.npy", metrics=metrics,
                           configs={"nightly": asdict(cfg),
                                    "sources": {"vision": str(vision_dir), "two_tower": str(tt_dir),
                                                "ranker": str(rk_dir)}})
    path = assemble_bundle(artifacts, data, models, target_recall=cfg.target_recall)
    m = json.loads((path / "manifest.json").read_text())
    return {"version": path.name, "index_recall": {k: v["recall_at_k"] for k, v in m["indexes"].items()}}


def write_report(artifacts: Path, version: str, metrics: dict, vision_dir: Path) -> Path:
    """Merchandisers' page for the night: quality now and over past nights, what the model
    recommends and what it never does, and the product photos that look mislabeled."""
    reports = artifacts / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    history = []
    for p in sorted((artifacts / "runs").glob("*.json")):
        s = json.loads(p.read_text())
        if "headline" in s and s.get("version") != version:  # a re-run of tonight is tonight
            history.append({"run": p.stem, "version": s.get("version"), "status": s.get("status")} | s["headline"])
    h = metrics["headline"]
    history.append({"run": "tonight", "version": version, "status": "published"} | h)
    tt = metrics["two_tower"]
    sus_path = vision_dir / "embed" / "suspected_mislabeled.csv"
    sus = pd.read_csv(sus_path) if sus_path.is_file() else pd.DataFrame()
    lines = [f"# Vitrine nightly report — bundle {version}", "",
             "## Quality (test window: each shopper's latest events)", "",
             "| metric | value |", "| --- | --- |"]
    lines += [f"| {k} | {v:.4f} |" for k, v in h.items()]
    lines += ["", "## Over past nights", "", "| run | version | status | " + " | ".join(h) + " |",
              "| --- | --- | --- | " + " | ".join("---" for _ in h) + " |"]
    for r in history:
        lines.append(f"| {r['run']} | {r.get('version')} | {r.get('status')} | " +
                     " | ".join(f"{r.get(k, float('nan')):.4f}" for k in h) + " |")
    lines += ["", "## What gets recommended", "",
              f"- catalog coverage of the two-tower's top-10 lists for test shoppers: {tt.get('coverage', np.nan):.1%} "
              f"(so {1 - tt.get('coverage', np.nan):.1%} of the catalog is never recommended to them)",
              f"- Gini of recommendation counts: {tt.get('gini', np.nan):.3f} (0 = even, 1 = one item gets all)",
              f"- novelty (mean self-information of recommended items): {tt.get('novelty', np.nan):.2f} bits", "",
              f"## Product photos that look mislabeled ({len(sus)} items; the CNN is confident in another "
              "category)", ""]
    if len(sus):
        lines.append("| " + " | ".join(sus.columns[:6]) + " |")
        lines.append("| " + " | ".join("---" for _ in sus.columns[:6]) + " |")
        for _, r in sus.head(20).iterrows():
            lines.append("| " + " | ".join(str(r[c]) for c in sus.columns[:6]) + " |")
    (reports / f"{version}.json").write_text(json.dumps({"version": version, "metrics": metrics,
                                                         "history": history}, indent=2, default=str))
    path = reports / f"{version}.md"
    path.write_text("\n".join(lines) + "\n")
    return path
