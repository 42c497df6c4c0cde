"""`vitrine vision ...` and `vitrine recsys ...` end to end on the tiny shop, through Typer's runner."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from pipelines.cli import app

runner = CliRunner()


def _ok(args: list[str]) -> str:
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output + repr(r.exception)
    return r.output


def test_vision_commands(tiny_shop: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({"model": "resnet_fm_tiny", "epochs": 2, "batch_size": 32, "lr": 1.0,
                                   "device": "cpu"}))
    run = tmp_path / "run"
    _ok(["vision", "train", "--data", str(tiny_shop), "--run", str(run), "--config", str(cfg)])
    out = _ok(["vision", "evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(tiny_shop)])
    assert "accuracy" in out and (run / "eval" / "confusion.png").is_file()
    _ok(["vision", "embed", "--checkpoint", str(run / "best.pt"), "--data", str(tiny_shop)])
    assert np.load(run / "embed" / "image_vectors.npy").shape[0] == 400
    _ok(["vision", "export", "--checkpoint", str(run / "best.pt"), "--out", str(run / "m.onnx")])
    assert (run / "m.onnx").is_file()


def test_vision_train_rejects_unknown_recipe_keys(tiny_shop: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("epochz: 3\n")
    r = runner.invoke(app, ["vision", "train", "--data", str(tiny_shop), "--run", str(tmp_path / "r"),
                            "--config", str(cfg)])
    assert r.exit_code == 1 and "epochz" in r.output


def test_recsys_commands(tiny_shop: Path, tmp_path: Path) -> None:
    _ok(["data", "split", str(tiny_shop)])
    cfg = tmp_path / "tt.yaml"
    cfg.write_text(yaml.safe_dump({"epochs": 2, "batch_size": 128, "n_negatives": 64, "emb_dim": 16,
                                   "hidden": 32, "out_dim": 16, "eval_users": None, "device": "cpu"}))
    run = tmp_path / "tt"
    _ok(["recsys", "train", "--data", str(tiny_shop), "--run", str(run), "--config", str(cfg)])
    out = _ok(["recsys", "evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(tiny_shop)])
    for name in ("two-tower", "popularity", "itemknn", "ease", "cold users", "new items"):
        assert name in out
    _ok(["recsys", "export", "--checkpoint", str(run / "best.pt"), "--data", str(tiny_shop)])
    assert (run / "export" / "user_tower.onnx").is_file() and (run / "export" / "features.json").is_file()


def test_recsys_train_without_split_names_the_fix(tiny_shop: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["recsys", "train", "--data", str(tiny_shop), "--run", str(tmp_path / "x"),
                            "--split", "random-user"])
    assert r.exit_code == 1 and "vitrine data split" in r.output


@pytest.fixture(autouse=True)
def _quiet_threads():
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_recsys_tune_leaves_parameters_the_nightly_job_uses(tiny_shop: Path, tmp_path: Path) -> None:
    import json

    import optuna

    from pipelines.train_steps import tuned_path, tuned_two_tower
    from recsys.tune import suggest

    _ok(["data", "split", str(tiny_shop)])
    cfg = tmp_path / "base.yaml"
    cfg.write_text(yaml.safe_dump({"batch_size": 128, "n_negatives": 64, "emb_dim": 16, "hidden": 32, "out_dim": 16,
                                   "device": "cpu", "profile_len": 16}))
    art = tmp_path / "art"
    out = _ok(["recsys", "tune", "--data", str(tiny_shop), "--config", str(cfg), "--artifacts", str(art),
               "--trials", "3", "--epochs", "2", "--valid-users", "50"])
    assert "validation NDCG@10" in out
    r = json.loads(tuned_path(art).read_text())
    assert len(r["trials"]) == 3
    assert suggest(optuna.trial.FixedTrial(r["params"])) == r["params"]  # every searched knob, inside the space
    done = [t["value"] for t in r["trials"] if t["state"] == "COMPLETE"]
    assert done and r["valid_ndcg@10"] == max(done)
    assert tuned_two_tower(art) == r["params"] and tuned_two_tower(tmp_path / "none") == {}
    assert not list((art / "tuning" / "work").glob("trial-*"))  # trial runs are cleaned up
    bad = runner.invoke(app, ["recsys", "tune", "--data", str(tiny_shop), "--trials", "0"])
    assert bad.exit_code == 2 and "--trials" in bad.output
