"""Training, resume, evaluation, embedding and export on the tiny synthetic shop (seconds each)."""

import json
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
import torch

from common.onnx_runtime import make_session as session
from vision.config import TrainConfig
from vision.embed import embed_catalog, suspected_mislabeled
from vision.evaluate import evaluate
from vision.export import export_image_model, quantize_int8
from vision.train import load_model, train


def _cfg(data: Path, run: Path, **kw) -> TrainConfig:
    base = dict(data_dir=str(data), run_dir=str(run), model="resnet_fm_tiny", epochs=3, batch_size=32,
                lr=1.0, warmup_epochs=0.5, ema_decay=0.9, erase_p=0.25, device="cpu", patience=10)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def trained(tiny_shop: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("run")
    train(_cfg(tiny_shop, run, epochs=10, lr=1.0))
    return run


def test_training_reduces_loss_and_writes_the_run(trained: Path) -> None:
    hist = __import__("yaml").safe_load((trained / "history.yaml").read_text())
    assert len(hist) == 10
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] - 0.1
    assert hist[-1]["valid_acc"] > 0.3  # 10 classes: chance is 0.1
    resolved = __import__("yaml").safe_load((trained / "config.yaml").read_text())
    assert resolved["model"]["arch"] == "resnet_fm_tiny" and resolved["preprocess"]["size"] == 28
    model, ck = load_model(trained / "best.pt")
    assert list(ck["model_config"]["class_names"]) == sorted(ck["model_config"]["class_names"])


def test_resume_after_interruption_continues_the_same_run(tiny_shop: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)  # bitwise-stable kernels for the comparison
    straight = tmp_path / "straight"
    train(_cfg(tiny_shop, straight))

    class CrashError(Exception):
        pass

    def crash_after_first(rec: dict) -> None:
        if rec["epoch"] == 1:
            raise CrashError

    resumed = tmp_path / "resumed"
    with pytest.raises(CrashError):
        train(_cfg(tiny_shop, resumed), on_epoch_end=crash_after_first)
    assert torch.load(resumed / "last.pt", weights_only=True)["epoch"] == 0
    train(_cfg(tiny_shop, resumed))
    a = torch.load(straight / "last.pt", weights_only=True)
    b = torch.load(resumed / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-5, atol=1e-6)
    assert [h["train_loss"] for h in a["history"]] == pytest.approx([h["train_loss"] for h in b["history"]])


def test_evaluate_writes_metrics_confusion_and_fits_temperature(trained: Path, tiny_shop: Path) -> None:
    m = evaluate(trained / "best.pt", tiny_shop, trained / "eval")
    assert 0 < m["accuracy"] <= 1 and m["temperature"] > 0
    cm = np.asarray(m["confusion"])
    assert cm.sum() == m["n"] and np.trace(cm) / cm.sum() == pytest.approx(m["accuracy"])
    assert m["calibrated"]["nll"] <= m["nll"] + 0.05  # fitted on valid, checked on test
    assert (trained / "eval" / "confusion.png").stat().st_size > 0
    assert json.loads((trained / "eval" / "metrics.json").read_text())["part"] == "test"


def test_export_parity_metadata_and_dynamic_batch(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "image_model.onnx"
    r = export_image_model(trained / "best.pt", out, temperature=1.7)
    assert r["max_abs_diff"] < 1e-4
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["preprocess"])["size"] == 28 and float(meta["temperature"]) == 1.7
    assert len(json.loads(meta["class_names"])) == 10
    sess = session(out)
    x = np.random.default_rng(1).standard_normal((5, 1, 28, 28)).astype(np.float32)
    logits, emb = sess.run(None, {"image": x})
    assert logits.shape == (5, 10) and emb.shape[0] == 5
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)


def test_int8_model_agrees_with_fp32(trained: Path, tiny_shop: Path, tmp_path: Path) -> None:
    from vision.data import load_image_set, to_tensor
    from vision.preprocess import PreprocessSpec

    fp32 = tmp_path / "m.onnx"
    export_image_model(trained / "best.pt", fp32)
    data = load_image_set(tiny_shop, PreprocessSpec())
    x = to_tensor(data.pixels, PreprocessSpec()).numpy()
    q = quantize_int8(fp32, tmp_path / "m.int8.onnx", x[:128])
    a = session(fp32).run(["logits"], {"image": x})[0]
    b = session(q).run(["logits"], {"image": x})[0]
    # The tiny model's logits sit close together, so compare values, not only the argmax.
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.95
    assert (a.argmax(1) == b.argmax(1)).mean() > 0.6
    assert q.stat().st_size < fp32.stat().st_size


def test_embed_catalog_is_item_aligned(trained: Path, tiny_shop: Path, tmp_path: Path) -> None:
    pred = embed_catalog(trained / "best.pt", tiny_shop, tmp_path)
    items = pd.read_parquet(tiny_shop / "items.parquet")
    vec = np.load(tmp_path / "image_vectors.npy")
    assert pred["item_id"].tolist() == items["item_id"].tolist() and len(vec) == len(items)
    np.testing.assert_allclose(np.linalg.norm(vec, axis=1), 1.0, rtol=1e-5)
    assert pred["p_category"].between(0, 1).all()


def test_suspected_mislabeled_ranks_confident_disagreements() -> None:
    p = pd.DataFrame({
        "item_id": ["a", "b", "c", "d", "e"],
        "category": ["Bag", "Bag", "Coat", "Coat", "Dress"],
        "has_image": [True, True, True, True, False],
        "predicted": ["Sneaker", "Bag", "Dress", "Shirt", None],
        "confidence": [0.97, 0.99, 0.99, 0.6, np.nan],
        "p_category": [0.01, 0.99, 0.002, 0.3, np.nan],
    })
    assert suspected_mislabeled(p)["item_id"].tolist() == ["c", "a"]
