"""Assembling a bundle from trained artifacts: contents, user states, indexes, and the CLI around it."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from bundle.index import VectorIndex, exact_search
from bundle.versions import current_version, verify_bundle
from pipelines.assemble import assemble_bundle
from pipelines.cli import app
from recsys.features import FeatureSpec
from recsys.shopper_state import user_states

runner = CliRunner()


def test_user_states_follow_the_events() -> None:
    items = pd.DataFrame({"item_id": ["a", "b", "c"], "category": ["x", "x", "y"], "price": [1.0, 2.0, 3.0]})
    users = pd.DataFrame({"user_id": ["u1", "u2"], "region": ["n", "s"]})
    spec = FeatureSpec.fit(items, users, history_len=2)
    ts = pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"], utc=True)
    ev = pd.DataFrame({"user_id": ["u1", "u1", "u1", "u1"], "item_id": ["a", "b", "a", "c"],
                       "event": ["view", "purchase", "view", "view"], "ts": ts})
    st = user_states(ev, users, spec).set_index("user_id")
    assert st.loc["u1", "history"].tolist() == [2, 0]  # c then a: most recent first, cut at history_len
    assert st.loc["u1", "seen"].tolist() == [2, 0, 1] and st.loc["u1", "purchased"].tolist() == [1]
    assert len(st.loc["u2", "history"]) == 0 and st.loc["u2", "region"] == "s"


def test_assembled_bundle_is_complete_verified_and_searchable(tiny_shop: Path, tiny_models, tmp_path: Path) -> None:
    path = assemble_bundle(tmp_path / "artifacts", tiny_shop, tiny_models, version="v1")
    m = verify_bundle(path)
    for name in ("user_tower.onnx", "item_tower.onnx", "ranker.onnx", "image_model.onnx", "items.parquet",
                 "users.parquet", "item_vectors.npy", "image_vectors.npy", "index.faiss", "image_index.faiss",
                 "features.json", "item_stats.npz"):
        assert name in m["files"], name
    assert len(m["dataset"]["fingerprint"]) == 64 and m["dataset"]["items"] == 400
    for key in ("items", "images"):
        info = m["indexes"][key]
        assert info["kind"] == "flat" and info["recall_at_k"] == 1.0 and info["qps_single"] > 0
    items = pd.read_parquet(path / "items.parquet")
    assert items["item_id"].is_monotonic_increasing  # row = catalog row
    vecs = np.load(path / "item_vectors.npy")
    vi = VectorIndex.load(path / "index.faiss", m["indexes"]["items"], vecs)
    q = vecs[:5]
    np.testing.assert_array_equal(vi.search(q, 10)[1], exact_search(vecs, q, 10)[1])
    # image vectors were reordered from items.parquet order to catalog rows
    raw = np.load(tiny_models.image_vectors)
    order = pd.read_parquet(tiny_shop / "items.parquet")["item_id"]
    row = int(np.flatnonzero(order.to_numpy() == items["item_id"].iloc[7])[0])
    np.testing.assert_array_equal(np.load(path / "image_vectors.npy")[7], raw[row])
    assert "ranker" in m["metrics"]


def test_index_and_bundle_commands(tiny_shop: Path, tiny_models, tmp_path: Path) -> None:
    vec = tiny_models.towers_dir / "item_vectors.npy"
    out = tmp_path / "i.faiss"
    r = runner.invoke(app, ["index", "build", "--vectors", str(vec), "--out", str(out), "--kind", "ivf"])
    assert r.exit_code == 0, r.output
    info = json.loads((tmp_path / "i.faiss.json").read_text())
    assert info["kind"] == "ivf" and info["recall_at_k"] >= 0.95
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros(3, np.float32))
    r = runner.invoke(app, ["index", "build", "--vectors", str(bad), "--out", str(tmp_path / "b.faiss")])
    assert r.exit_code == 1 and "expected a non-empty (N, D) array" in r.output
    art = tmp_path / "art"
    args = ["bundle", "build", "--towers", str(tiny_models.towers_dir), "--ranker", str(tiny_models.ranker),
            "--image-model", str(tiny_models.image_model), "--image-vectors", str(tiny_models.image_vectors),
            "--data", str(tiny_shop), "--artifacts", str(art)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert current_version(art) is not None
    r = runner.invoke(app, args[:5] + [str(tmp_path / "missing.onnx")] + args[6:])
    assert r.exit_code == 1 and "missing.onnx: no such file" in r.output


def test_a_hand_built_bundle_has_the_nightly_metrics_and_sources(tiny_shop: Path, tiny_models, tmp_path: Path) -> None:
    """`bundle build` and the nightly job write one manifest shape: the next night's gate compares
    against a hand-built bundle, and warm start finds its two-tower."""
    from pipelines.assemble import bundle_metrics
    from pipelines.nightly import NightlyConfig, quality_gate
    from pipelines.train_steps import previous_two_tower

    art = tmp_path / "art"
    r = runner.invoke(app, ["bundle", "build", "--towers", str(tiny_models.towers_dir), "--ranker",
                            str(tiny_models.ranker), "--image-model", str(tiny_models.image_model),
                            "--image-vectors", str(tiny_models.image_vectors), "--data", str(tiny_shop),
                            "--artifacts", str(art)])
    assert r.exit_code == 0, r.output
    m = verify_bundle(art / "bundles" / current_version(art))["metrics"]
    nightly_shape = bundle_metrics(vision={"accuracy": 0.5}, two_tower={"ndcg@10": 0.1, "recall@20": 0.2},
                                   ranker={"ranker": {"ndcg@10": 0.1}}, parity={})
    assert set(m) == set(nightly_shape) and set(m["headline"]) == set(nightly_shape["headline"])
    assert all(isinstance(v, float) for v in m["headline"].values())
    lift = json.loads((tiny_models.ranker.parent / "lift.json").read_text())
    assert m["headline"]["ranker_ndcg@10"] == lift["ranker"]["ndcg@10"]
    worse = m["headline"] | {"ranker_ndcg@10": m["headline"]["ranker_ndcg@10"] * 0.5}
    gate = quality_gate(art, worse, NightlyConfig(), {"index_recall": {}})
    assert gate["passed"] is False and gate["current"] == m["headline"]["ranker_ndcg@10"]
    assert previous_two_tower(art) == tiny_models.towers_dir.parent / "best.pt"


def test_bundle_build_names_the_command_for_missing_metrics(tiny_shop: Path, tiny_models, tmp_path: Path) -> None:
    import shutil

    towers = tmp_path / "tt" / "export"
    shutil.copytree(tiny_models.towers_dir, towers)  # the run without its test_metrics.json
    r = runner.invoke(app, ["bundle", "build", "--towers", str(towers), "--ranker", str(tiny_models.ranker),
                            "--image-model", str(tiny_models.image_model), "--image-vectors",
                            str(tiny_models.image_vectors), "--data", str(tiny_shop),
                            "--artifacts", str(tmp_path / "a")])
    assert r.exit_code == 1 and "test_metrics.json" in r.output and "vitrine recsys evaluate" in r.output
