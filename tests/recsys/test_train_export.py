"""Two-tower training, evaluation harness and export on a small planted-preference shop."""

from pathlib import Path

import numpy as np
import onnx
import pytest

from common.onnx_runtime import make_session as session
from recsys.baselines import BASELINES
from recsys.config import RecTrainConfig
from recsys.data import load_rec_data
from recsys.evaluate import evaluate_ranking, two_tower_scores
from recsys.export import export_towers
from recsys.train import load_two_tower, train_two_tower
from tests.conftest import build_tiny_shop


@pytest.fixture(scope="module")
def planted(fake_fmnist, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shoppers with strong category and style preferences (the generator's model)."""
    from pipelines.splits import split_events, write_splits
    from pipelines.tables import read_table

    out = build_tiny_shop(tmp_path_factory.mktemp("planted"), fake_fmnist, n_items=300, n_users=500, days=40,
                          seed=11)
    write_splits(split_events(read_table(out / "events.parquet")), out / "splits" / "temporal-user")
    return out


@pytest.fixture(scope="module")
def trained(planted: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    run = tmp_path_factory.mktemp("tt")
    cfg = RecTrainConfig(data_dir=str(planted), run_dir=str(run), epochs=6, batch_size=256, n_negatives=128,
                         lr=5e-3, emb_dim=32, hidden=64, out_dim=32, eval_users=None, device="cpu")
    return train_two_tower(cfg), planted


def test_two_tower_beats_popularity_on_planted_preferences(trained: tuple[Path, Path]) -> None:
    best, data_dir = trained
    d = load_rec_data(data_dir)
    model, _, _ = load_two_tower(best)
    tt = evaluate_ranking(two_tower_scores(model, d, d.test), d.test, d)
    pop = evaluate_ranking(BASELINES["popularity"](d, d.test), d.test, d)
    assert tt["recall@20"] > 1.2 * pop["recall@20"], (tt["recall@20"], pop["recall@20"])
    assert tt["ndcg@10"] > pop["ndcg@10"]


def test_recommendations_never_include_seen_items(trained: tuple[Path, Path]) -> None:
    from recsys.evaluate import rank_users

    best, data_dir = trained
    d = load_rec_data(data_dir)
    model, _, _ = load_two_tower(best)
    top = rank_users(two_tower_scores(model, d, d.test), d.test, 50)
    for u in range(len(top)):
        assert not set(top[u]) & set(d.test.exclude[u].tolist())


def test_export_parity_and_item_vectors(trained: tuple[Path, Path], tmp_path: Path) -> None:
    best, data_dir = trained
    d = load_rec_data(data_dir)
    model, spec, _ = load_two_tower(best)
    r = export_towers(model, d, tmp_path)
    assert r["max_abs_diff"] < 1e-4
    for name in ("user_tower.onnx", "item_tower.onnx"):
        onnx.checker.check_model(str(tmp_path / name))
    vecs = np.load(tmp_path / "item_vectors.npy")
    assert vecs.shape == (d.n_items, model.cfg.out_dim)
    # the ONNX item tower reproduces the saved catalog vectors (dynamic batch of 37)
    sess = session(tmp_path / "item_tower.onnx")
    rows = np.arange(37)
    got = sess.run(None, {k: v[rows] for k, v in d.item_inputs.items()})[0]
    np.testing.assert_allclose(got, vecs[rows], atol=1e-5)


def test_anonymous_session_from_history_alone(trained: tuple[Path, Path]) -> None:
    """An unknown user who viewed items of one category gets that category back."""
    import torch

    best, data_dir = trained
    d = load_rec_data(data_dir)
    model, spec, _ = load_two_tower(best)
    cat = d.items["category"].to_numpy()
    target = cat[np.argmax(d.item_counts)]
    viewed = d.items.loc[cat == target, "item_id"].iloc[:5].tolist()
    with torch.no_grad():
        u = model.eval().user_tower(torch.tensor([1]), torch.ones((1, len(spec.user_features)), dtype=torch.long),
                                    torch.from_numpy(spec.encode_history([viewed])))
    from recsys.evaluate import item_vectors

    top = np.argsort(-(item_vectors(model, d) @ u.numpy()[0]))[:20]
    assert (cat[top] == target).mean() > 0.5


def test_resume_after_interruption_continues_the_same_run(planted: Path, tmp_path: Path) -> None:
    import torch

    torch.set_num_threads(1)
    d = load_rec_data(planted)

    def cfg(run: Path) -> RecTrainConfig:
        return RecTrainConfig(data_dir=str(planted), run_dir=str(run), epochs=3, batch_size=256, n_negatives=64,
                              emb_dim=16, hidden=32, out_dim=16, eval_users=None, device="cpu", patience=10)

    train_two_tower(cfg(tmp_path / "straight"), data=d)

    class CrashError(Exception):
        pass

    def crash(rec: dict) -> None:
        if rec["epoch"] == 1:
            raise CrashError

    with pytest.raises(CrashError):
        train_two_tower(cfg(tmp_path / "resumed"), data=d, on_epoch_end=crash)
    train_two_tower(cfg(tmp_path / "resumed"), data=d)
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_torchrun_two_processes(planted: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    import yaml

    run = tmp_path / "ddp"
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump({"data_dir": str(planted), "run_dir": str(run), "epochs": 2, "batch_size": 128,
                                    "n_negatives": 64, "emb_dim": 16, "hidden": 32, "out_dim": 16,
                                    "eval_users": None, "device": "cpu"}))
    torchrun = Path(sys.executable).with_name("torchrun")
    subprocess.run([str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "recsys.train", str(path)],
                   check=True, cwd=Path(__file__).parents[2], timeout=300)
    assert yaml.safe_load((run / "config.yaml").read_text())["world_size"] == 2
    assert len(yaml.safe_load((run / "history.yaml").read_text())) == 2


def test_warm_start_copies_rows_by_id_and_keeps_new_ids_fresh(tmp_path) -> None:
    import pandas as pd
    import torch

    from common.torch_runtime import save_checkpoint
    from recsys.features import FeatureSpec
    from recsys.model import TwoTower, TwoTowerConfig
    from recsys.train import warm_start

    def spec(items: list[str], users: list[str]) -> FeatureSpec:
        it = pd.DataFrame({"item_id": items, "category": ["a"] * len(items), "price": [1.0] * len(items)})
        return FeatureSpec.fit(it, pd.DataFrame({"user_id": users, "region": ["n"] * len(users)}))

    def model(s: FeatureSpec) -> TwoTower:
        return TwoTower(TwoTowerConfig(n_items=s.item_vocab.size, n_users=s.user_vocab.size,
                                       n_categories=s.category_vocab.size, n_price=s.n_price_buckets,
                                       user_feature_sizes=(3,), emb_dim=8, hidden=16, out_dim=8))

    old_spec, new_spec = spec(["i1", "i2", "i3"], ["u1", "u2"]), spec(["i0", "i2", "i3", "i9"], ["u2", "u3"])
    torch.manual_seed(0)
    old = model(old_spec)
    save_checkpoint(tmp_path / "old.pt", model=old.state_dict(), model_config=old.cfg.to_dict(),
                    feature_spec=old_spec.to_json())
    new = model(new_spec)
    fresh_i0 = new.item_tower.item_emb.weight[2].clone()
    report = warm_start(new, new_spec, tmp_path / "old.pt")
    W_old, W_new = old.item_tower.item_emb.weight, new.item_tower.item_emb.weight
    for iid in ("i2", "i3"):  # same id -> same row content, wherever it sits now
        o, n = old_spec.item_vocab.encode([iid])[0], new_spec.item_vocab.encode([iid])[0]
        assert torch.equal(W_new[n], W_old[o])
    assert torch.equal(W_new[2], fresh_i0)  # i0 is new: untouched
    u2o, u2n = old_spec.user_vocab.encode(["u2"])[0], new_spec.user_vocab.encode(["u2"])[0]
    assert torch.equal(new.user_tower.user_emb.weight[u2n], old.user_tower.user_emb.weight[u2o])
    assert torch.equal(new.item_tower.mlp[0].weight, old.item_tower.mlp[0].weight)
    assert report["item_tower.item_emb.weight"] == "4/6 rows"  # pad, oov, i2, i3


@pytest.mark.parametrize("encoder", ["mean", "gru", "attention", "none"])
def test_every_sequence_encoder_exports_with_parity(encoder: str, planted: Path, tmp_path: Path) -> None:
    """The long-term profile and each short-term encoder survive ONNX export (dynamic batch, ≤ 1e-4)."""
    import torch

    from recsys.model import TwoTower, TwoTowerConfig

    d = load_rec_data(planted, profile_len=16)
    torch.manual_seed(0)
    model = TwoTower(TwoTowerConfig(n_items=d.spec.item_vocab.size, n_users=d.spec.user_vocab.size,
                                    n_categories=d.spec.category_vocab.size, n_price=d.spec.n_price_buckets,
                                    user_feature_sizes=tuple(v.size for v in d.spec.user_features.values()),
                                    history_len=d.spec.history_len, profile_len=16, sequence_encoder=encoder,
                                    emb_dim=16, hidden=32, out_dim=16))
    r = export_towers(model, d, tmp_path)
    assert r["max_abs_diff"] < 1e-4
    names = {i.name for i in session(tmp_path / "user_tower.onnx").get_inputs()}
    assert {"profile", "profile_weight"} <= names
    # a profile changes the answer: the graph really reads it
    eu = d.test
    feed = {"user": eu.user[:4], "features": eu.features[:4], "history": eu.history[:4], "profile": eu.profile[:4],
            "profile_weight": eu.profile_w[:4]}
    from common.onnx_runtime import run

    a = run(session(tmp_path / "user_tower.onnx"), feed)[0]
    b = run(session(tmp_path / "user_tower.onnx"), feed | {"profile_weight": np.zeros_like(eu.profile_w[:4])})[0]
    assert np.abs(a - b).max() > 1e-3
