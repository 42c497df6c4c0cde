"""The whole flow on a tiny dataset: nightly publishes, the service answers from the new bundle,
appended days give a second version, a regressed ranker is refused, a killed run resumes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from bundle.versions import bundles_dir, current_version, list_bundles, verify_bundle
from pipelines.errors import EXIT_GATE, NightlyError
from pipelines.nightly import NightlyConfig, run_nightly
from pipelines.tables import read_dataset
from serving.app import create_app
from serving.merch_store import MerchStore
from serving.settings import ServingSettings
from tests.conftest import build_tiny_shop

TINY = {"vision": {"model": "resnet_fm_tiny", "epochs": 1, "batch_size": 32, "lr": 1.0, "device": "cpu"},
        "two_tower": {"epochs": 2, "batch_size": 128, "n_negatives": 64, "emb_dim": 16, "hidden": 32,
                      "out_dim": 16, "device": "cpu"},
        "ranker": {"candidates": 50, "epochs": 2, "device": "cpu"}, "valid_users": 1000}


def _ask(artifacts: Path) -> dict:
    with TestClient(create_app(ServingSettings(artifacts_dir=artifacts, candidates=50))) as c:
        return c.post("/v1/recommendations", json={"recent_item_ids": [], "k": 3}).json()


def test_nightly_publishes_appends_and_refuses_a_regression(fake_fmnist, tmp_path: Path, monkeypatch) -> None:
    from pipelines.fashion_shop import append_days
    from pipelines.validate import validate, write_validated

    # 600 shoppers: enough test shoppers for the paired gate's interval to see a regression
    shop = build_tiny_shop(tmp_path / "shop", fake_fmnist, days=20, n_users=600)
    art = tmp_path / "artifacts"
    first = run_nightly(shop, art, NightlyConfig(**TINY))
    assert first["status"] == "published" and current_version(art) == first["version"]
    first_tt = next((art / "work").glob("two_tower-*"))
    assert _ask(art)["bundle_version"] == first["version"]
    assert Path(first["report"]).is_file() and "mislabeled" in Path(first["report"]).read_text()
    html = Path(first["report"]).with_suffix(".html").read_text()  # self-contained: no fetch, no CDN
    assert "Plotly.newPlot" in html and "<script src=" not in html and '<img alt="confusion matrix" src="data:' in html
    assert set(first["guards"]) == {"coverage", "gini", "novelty"} and first["live_headline"] == {}
    assert "image_predictions.npz" in verify_bundle(bundles_dir(art) / first["version"])["files"]

    raw = append_days(shop, 4, fake_fmnist)
    write_validated(validate(raw["items"], raw["users"], raw["events"], image_root=shop), shop)
    # what a shopper did online today enters tonight's dataset (pipelines/log_import.py)
    with TestClient(create_app(ServingSettings(artifacts_dir=art, candidates=50))) as c:
        shopper = str(raw["events"]["user_id"].iloc[0])
        page = c.post("/v1/recommendations", json={"user_id": shopper, "k": 3}).json()
        bought = page["items"][0]["item_id"]
        assert c.post("/v1/events", json={"events": [{"event_id": "p1", "type": "purchase", "user_id": shopper,
                      "item_id": bought, "rec_id": page["rec_id"], "position": 1}]}).json()["accepted"] == 1
    second = run_nightly(shop, art, NightlyConfig(**(TINY | {"gate_margin": 0.99})))
    assert second["online_events"]["added"] == 1
    ev = read_dataset(shop)["events"]
    assert ((ev["user_id"] == shopper) & (ev["item_id"] == bought) & (ev["event"] == "purchase")).sum() >= 1
    assert second["status"] == "published" and second["version"] != first["version"]
    status = {s["step"]: s["status"] for s in second["steps"]}
    assert status["vision"] == "fresh, skipped" and status["two_tower"] == "ran"  # same images, new events
    warm = [json.loads(p.read_text()).get("warm_start") for p in (art / "work").glob("two_tower-*/done.json")]
    assert sorted(map(str, warm)) == sorted(["None", str(Path(first_tt) / "best.pt")])
    assert _ask(art)["bundle_version"] == second["version"]
    assert second["headline"]["ranker_ndcg@10"] > 0
    assert second["live_headline"] == first["headline"]  # the console's "tonight" compares the two

    # rollout: experiment: tonight's bundle (the same models, a new bundle for the new recipe) starts
    # as the challenger of the live one instead of replacing it (pipelines/canary.py)
    canary = run_nightly(shop, art, NightlyConfig(**(TINY | {"gate_margin": 0.99, "rollout": "experiment"})))
    assert canary["status"] == "canary" and canary["canary"]["control"] == second["version"]
    assert canary["canary"]["challenger"] == canary["version"] != second["version"]
    assert current_version(art) == second["version"]  # CURRENT waits for the shoppers' verdict
    [exp] = [e for e in MerchStore(art).experiments(fresh=True) if e.canary]
    assert exp.status == "running" and [v.bundle for v in exp.variants] == [second["version"], canary["version"]]

    import recsys.ranker as rk

    real = rk.train_ranker

    def sabotaged(*a, **k):  # a ranker that reverses the tower's order
        model, info = real(*a, **k)
        with __import__("torch").no_grad():
            model.skip.fill_(-5.0)
            model.head.weight.zero_()
        return model, info

    monkeypatch.setattr(rk, "train_ranker", sabotaged)
    bad = NightlyConfig(**(TINY | {"ranker": TINY["ranker"] | {"epochs": 3}, "gate_margin": 0.2}))
    with pytest.raises(NightlyError) as e:
        run_nightly(shop, art, bad)
    assert e.value.code == EXIT_GATE and "ndcg@10 on tonight's holdout" in str(e.value) and "CI" in str(e.value)
    assert current_version(art) == second["version"]  # CURRENT unchanged
    assert len(list_bundles(art)) == 4  # the refused bundle exists, verified, never promoted
    runs = sorted((art / "runs").glob("*.json"))
    assert json.loads(runs[-1].read_text())["status"] == "refused by the gate"
    [undecided] = json.loads(runs[-1].read_text())["canary_decisions"]  # nobody shopped: still running
    assert undecided["status"] == "running" and undecided["experiment_id"] == exp.experiment_id


def test_a_killed_run_resumes_and_publishes_one_complete_bundle(fake_fmnist, tmp_path: Path) -> None:
    shop = build_tiny_shop(tmp_path / "shop", fake_fmnist, days=20)
    art = tmp_path / "artifacts"
    cfg = tmp_path / "nightly.yaml"
    slow = TINY | {"two_tower": TINY["two_tower"] | {"epochs": 30, "patience": 30}}
    cfg.write_text(yaml.safe_dump(slow))
    cmd = [sys.executable, "-m", "pipelines.cli", "nightly", "--data", str(shop), "--artifacts", str(art),
           "--config", str(cfg)]
    root = Path(__file__).parents[2]
    p = subprocess.Popen(cmd, cwd=root, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not list((art / "work").glob("two_tower-*/last.pt")) and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    assert p.poll() is None, p.stderr.read().decode()[-2000:]
    os.killpg(p.pid, signal.SIGKILL)  # mid-training, no chance to clean up
    p.wait()
    assert current_version(art) is None and list_bundles(art) == []
    assert (art / "nightly.lock").read_text().strip()  # the dead run's pid, never cleared
    r = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "stale lock" in r.stderr and "resuming" in r.stderr
    assert len(list_bundles(art)) == 1 and current_version(art) == list_bundles(art)[0]
    assert not any(p.name.startswith(".tmp-") for p in (art / "bundles").iterdir())
