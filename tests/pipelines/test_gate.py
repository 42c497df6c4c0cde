"""The paired gate's parts (pipelines/gate.py) on the tiny bundle: the holdout's shoppers carry no
test item in their state, a bundle against itself differs by exactly nothing, a missing live bundle
falls back to the manifest rule, and the console and the report show the paired result."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bundle.runs import gate_table
from bundle.versions import bundles_dir, current_version, read_manifest
from pipelines.gate import _interval, _ndcg, manifest_rule, paired_gate, sample_holdout
from pipelines.nightly import NightlyConfig, quality_gate
from pipelines.splits import split_events, write_splits
from tests.serving.conftest import READ, make_client
from tests.serving.conftest import tiny_artifacts as tiny_artifacts  # noqa: F401  (the session fixture)


@pytest.fixture(scope="module")
def split_dir(tiny_shop: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("split")
    write_splits(split_events(pd.read_parquet(tiny_shop / "events.parquet"), "temporal-user"), out)
    return out


def test_the_holdout_state_holds_nothing_of_the_test_period(tiny_shop: Path, split_dir: Path) -> None:
    h = sample_holdout(tiny_shop, split_dir, 30, seed=0)
    test = pd.read_parquet(split_dir / "test.parquet")
    assert len(h.relevant) == len(h.exclude) == len(h.users) == min(30, test["user_id"].nunique())
    assert h.events["ts"].max() <= test["ts"].max() and set(h.events["user_id"]) <= set(h.users["user_id"])
    for u, ex, rel in zip(h.users["user_id"], h.exclude, h.relevant, strict=True):
        before = h.events[h.events["user_id"] == u]
        assert set(ex) == set(before["item_id"])  # masked: what they touched before, nothing after
        assert set(rel) == set(test[test["user_id"] == u]["item_id"])
    assert sample_holdout(tiny_shop, split_dir, 30, seed=0).users.equals(h.users)  # seeded


def test_per_shopper_ndcg_and_the_interval_by_hand() -> None:
    pages = [["a", "b", "c"], ["x", "y", "z"], ["q", "a", "b"]]
    got = _ndcg(pages, [["b"], ["w"], ["q", "b"]], k=3)
    ideal2 = 1 + 1 / np.log2(3)
    np.testing.assert_allclose(got, [1 / np.log2(3), 0.0, (1 + 1 / np.log2(4)) / ideal2])
    assert _interval(np.zeros(50), np.mean, 0.95, 200, 0) == (0.0, 0.0)  # no spread: the value itself
    lo, hi = _interval(np.random.default_rng(0).normal(1.0, 0.1, 400), np.mean, 0.95, 500, 0)
    assert lo < 1.0 < hi and hi - lo < 0.05


def test_a_bundle_against_itself_passes_with_a_zero_difference(tiny_artifacts: Path, tiny_shop: Path,
                                                               split_dir: Path) -> None:
    path = bundles_dir(tiny_artifacts) / current_version(tiny_artifacts)
    g = paired_gate(path, read_manifest(path), path, tiny_shop, split_dir, margin=0.05, k=10, shoppers=40,
                    confidence=0.95, resamples=300, seed=0, candidates=50)
    assert g["passed"] and g["method"] == "paired" and g["difference"] == 0.0 and g["ci"] == [0.0, 0.0]
    assert g["candidate"] == g["live"] > 0 and all(not x["refused"] and x["difference"] == 0
                                                  for x in g["guards"].values())
    test_shoppers = pd.read_parquet(split_dir / "test.parquet")["user_id"].nunique()
    assert "on tonight's holdout" in g["reason"] and g["shoppers"] == min(40, test_shoppers)


def test_without_a_live_bundle_to_score_the_manifest_rule_decides(tiny_artifacts: Path, tiny_shop: Path,
                                                                  split_dir: Path, tmp_path: Path) -> None:
    art = tmp_path / "artifacts"
    shutil.copytree(tiny_artifacts, art)
    live = bundles_dir(art) / current_version(art)
    manifest = read_manifest(live)
    base = 0.2
    manifest["metrics"]["headline"] = {"ranker_ndcg@10": base}  # what the manifest rule reads
    (live / "manifest.json").write_text(json.dumps(manifest))
    (live / "user_tower.onnx").write_bytes(b"broken")  # the live bundle no longer loads
    cfg = NightlyConfig(gate_shoppers=20, gate_resamples=100)
    g = quality_gate(art, {"ranker_ndcg@10": base * 0.5}, cfg, {"index_recall": {}}, candidate=live,
                     manifest=read_manifest(live), data=tiny_shop, split_dir=split_dir)
    assert g["method"] == "manifest" and not g["passed"] and "not scored on tonight's holdout" in g["reason"]
    assert g == manifest_rule(art, {"ranker_ndcg@10": base * 0.5}, "ranker_ndcg@10", 0.05, why=g["fallback_reason"])


def test_the_console_and_the_report_show_the_paired_result(tiny_artifacts: Path, tmp_path: Path) -> None:
    gate = {"method": "paired", "metric": "ndcg@10", "shoppers": 500, "candidate": 0.05, "live": 0.06,
            "difference": -0.01, "ci": [-0.02, -0.004], "floor": -0.003, "passed": False, "baseline": "v1",
            "reason": "ndcg@10 on tonight's holdout (500 shoppers): ... below", "confidence": 0.95,
            "guards": {"coverage": {"candidate": 0.1, "live": 0.12, "difference": -0.02, "ci": [-0.03, -0.01],
                                    "margin": 0.06, "refused": False}}}
    rows = gate_table(gate)
    assert rows[0]["refused"] and rows[0]["interval"] == [-0.02, -0.004] and rows[1]["what"] == "coverage"
    art = tmp_path / "artifacts"
    shutil.copytree(tiny_artifacts, art)
    (art / "runs").mkdir()
    (art / "runs" / "20260103T000000Z.json").write_text(json.dumps(
        {"status": "refused by the gate", "version": "v2", "headline": {"ranker_ndcg@10": 0.05}, "gate": gate}))
    with make_client(art) as c:
        t = c.get("/v1/analytics/tonight", headers=READ).json()
        assert t["gate"][0]["interval"] == [-0.02, -0.004] and t["gate"][0]["refused"] is True
        page = c.get("/merch", headers=READ).text
        assert "on tonight&#39;s holdout" in page and "-0.02 … -0.004" in page
    from pipelines.report import write_report

    metrics = {"headline": {"ranker_ndcg@10": 0.05}, "two_tower": {"coverage": 0.1, "gini": 0.9, "novelty": 9.0}}
    md = write_report(art, "v2", metrics, tmp_path, gate=gate).read_text()
    assert "## Tonight's gate (paired): refused" in md and "-0.02 … -0.004" in md
    assert "-0.02 … -0.004" in md.replace("| ", "") and "on tonight's holdout" in md
    assert "-0.02 … -0.004" in (art / "reports" / "v2.html").read_text()
