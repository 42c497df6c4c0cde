"""Shared fixtures: tiny synthetic Fashion-MNIST files so no test needs the real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.fashion_mnist import write_idx


def synthetic_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 28, 28) uint8 images: the class sets a stripe pattern and a bright patch's position,
    a random 'style' sets a blob (so k-means finds styles within a class)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    yy, xx = np.mgrid[0:28, 0:28]
    images = np.empty((n, 28, 28), np.uint8)
    for i, c in enumerate(labels):
        stripes = ((xx + yy * (c % 3)) // (2 + c // 3)) % 2 * 120
        cx, cy = rng.choice([7, 20], 2)
        blob = 120 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 30)
        patch = np.zeros((28, 28))
        top, left = 3 + 14 * (c // 5), 1 + 5 * (c % 5)
        patch[top : top + 8, left : left + 5] = 200
        images[i] = np.clip(stripes * 0.5 + blob + patch + rng.normal(0, 10, (28, 28)), 0, 255)
    return images, labels


def write_fake_fashion_mnist(root: Path, n_train: int = 600, n_test: int = 200, seed: int = 0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    xtr, ytr = synthetic_images(n_train, seed)
    xte, yte = synthetic_images(n_test, seed + 1)
    write_idx(root / "train-images-idx3-ubyte.gz", xtr)
    write_idx(root / "train-labels-idx1-ubyte.gz", ytr)
    write_idx(root / "t10k-images-idx3-ubyte.gz", xte)
    write_idx(root / "t10k-labels-idx1-ubyte.gz", yte)
    return root


NO_CHECKSUMS = {
    "train-images-idx3-ubyte.gz": None,
    "train-labels-idx1-ubyte.gz": None,
    "t10k-images-idx3-ubyte.gz": None,
    "t10k-labels-idx1-ubyte.gz": None,
}


@pytest.fixture(scope="session")
def fake_fmnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_fashion_mnist(tmp_path_factory.mktemp("fmnist"))


@pytest.fixture(scope="session")
def fake_fmnist(fake_fmnist_dir: Path):
    from pipelines.fashion_mnist import load_fashion_mnist

    return load_fashion_mnist(fake_fmnist_dir, checksums=NO_CHECKSUMS)


REAL_FMNIST = Path("/usr/share/datasets/fashion-mnist")


def build_tiny_shop(out: Path, fm, *, n_items: int = 400, n_users: int = 120, days: int = 20, seed: int = 5,
                    **funnels) -> Path:
    """A validated fashion-shop dataset directory on synthetic images (seconds); ``funnels``: the
    config's funnel parameters (pipelines/fashion_funnels.py), off unless given."""
    from pipelines.fashion_shop import generate
    from pipelines.fashion_world import FashionShopConfig
    from pipelines.validate import validate, write_validated

    cfg = FashionShopConfig(seed=seed, n_users=n_users, n_items=n_items, days=days, truth_users=50, **funnels)
    raw = generate(cfg, fm, out)
    write_validated(validate(raw["items"], raw["users"], raw["events"], image_root=out), out)
    return out


@pytest.fixture(scope="session")
def tiny_shop(fake_fmnist, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_shop(tmp_path_factory.mktemp("tiny_shop"), fake_fmnist)


@pytest.fixture(scope="session")
def tiny_models(tiny_shop: Path, tmp_path_factory: pytest.TempPathFactory):
    """Every model trained for a few seconds on the tiny shop and exported, as the nightly job would."""
    from pipelines.assemble import TrainedModels
    from pipelines.splits import split_events, write_splits
    from pipelines.tables import read_table
    from recsys.baselines import evaluate_with_baselines
    from recsys.config import RankerTrainConfig, RecTrainConfig
    from recsys.data import load_rec_data
    from recsys.export import export_towers
    from recsys.ranker import train_evaluate_export
    from recsys.train import load_two_tower, train_two_tower
    from vision.config import TrainConfig
    from vision.embed import embed_catalog
    from vision.evaluate import evaluate
    from vision.export import export_image_model
    from vision.train import train

    root = tmp_path_factory.mktemp("tiny_models")
    if not (tiny_shop / "splits" / "temporal-user" / "test.parquet").is_file():
        write_splits(split_events(read_table(tiny_shop / "events.parquet"), "temporal-user"),
                     tiny_shop / "splits" / "temporal-user")
    best = train(TrainConfig(data_dir=str(tiny_shop), run_dir=str(root / "vision"), model="resnet_fm_tiny", epochs=1,
                             batch_size=32, lr=1.0, device="cpu"))
    evaluate(best, tiny_shop, root / "vision" / "eval")  # eval/metrics.json: `bundle build` reads it
    embed_catalog(best, tiny_shop, root / "vision" / "embed")
    export_image_model(best, root / "vision" / "image_model.onnx")
    img = root / "vision" / "embed" / "image_vectors.npy"
    data = load_rec_data(tiny_shop, image_vectors=img)
    cfg = RecTrainConfig(data_dir=str(tiny_shop), run_dir=str(root / "tt"), image_vectors=str(img), epochs=2,
                         batch_size=128, n_negatives=64, emb_dim=16, hidden=32, out_dim=16, eval_users=None,
                         device="cpu")
    tt, _, _ = load_two_tower(train_two_tower(cfg, data))
    evaluate_with_baselines(root / "tt" / "best.pt", tiny_shop, image_vectors=img, baselines=False)  # test_metrics.json
    export_towers(tt, data, root / "tt" / "export")
    lift = train_evaluate_export(tt, data,
                                 RankerTrainConfig(candidates=50, epochs=2, device="cpu"), root / "ranker")
    return TrainedModels(towers_dir=root / "tt" / "export", ranker=root / "ranker" / "ranker.onnx",
                         image_model=root / "vision" / "image_model.onnx", image_vectors=img,
                         metrics={"ranker": lift}, configs={})
