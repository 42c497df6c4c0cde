"""A generated N-item bundle from a real one: the 1M-item catalog the worker-memory benchmark loads.

    .venv/bin/python bench/big_bundle.py --bundle BUNDLE --items 1000000 --out bench/out/big

The real bundle's items keep their rows (its shoppers' histories stay valid); every further product
copies a random real item's category, created_at and photo, jitters its price (x lognormal 0.2) and
its CNN embedding (+ N(0, 0.05^2) per dim, renormalised) and has a never-seen id, so the item tower
(the bundle's ONNX) embeds it from features alone, as it would a product added tomorrow. Its
ranker statistics and item-to-item neighbours are the source item's. Both indexes are the kind
``tune_kinds`` keeps on this catalog (IVF-Flat, bench/index_tuner_bench.py --bundle), tuned to
recall@100 0.95 on real shoppers' user-tower vectors (items) and held-out photos (images).
The users, feature spec and models are the real bundle's.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bundle.index import VectorIndex  # noqa: E402
from bundle.versions import promote, verify_bundle, write_bundle  # noqa: E402
from common.onnx_runtime import make_session, run  # noqa: E402
from recsys.channels import Channels  # noqa: E402
from recsys.features import OOV, FeatureSpec  # noqa: E402
from recsys.rank_features import ItemStats  # noqa: E402

log = logging.getLogger("big_bundle")


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def jittered_items(bundle: Path, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` generated products: ``base`` (the real row each copies), ``price``, ``image`` (unit CNN
    embeddings) and ``vectors`` (item-tower outputs for a never-seen id)."""
    spec = FeatureSpec.load(bundle / "features.json")
    items = pd.read_parquet(bundle / "items.parquet", columns=["category", "price"])
    image = np.load(bundle / "image_vectors.npy")
    base = rng.integers(0, len(items), n)
    sess = make_session(bundle / "item_tower.onnx", device="cpu")
    cat = spec.category_vocab.encode(items["category"])[base]
    price = items["price"].to_numpy()[base] * rng.lognormal(0, 0.2, n)
    buckets = spec.price_bucket(price)
    out = np.zeros((n, sess.get_outputs()[0].shape[1]), np.float32)
    img_out = np.zeros((n, image.shape[1]), np.float32)
    for s in range(0, n, 16384):
        sl = slice(s, min(s + 16384, n))
        noise = rng.standard_normal((sl.stop - s, image.shape[1])).astype(np.float32)
        img_out[sl] = unit(image[base[sl]] + 0.05 * noise)
        feed = {"item": np.full(sl.stop - s, OOV, np.int64), "category": cat[sl], "price": buckets[sl],
                "image": img_out[sl]}
        out[sl] = run(sess, feed)[0]
    return {"base": base, "price": price, "image": img_out, "vectors": out}


def grow(bundle: Path, n_items: int, out: Path, seed: int = 0) -> Path:
    """Publish (and promote) an ``n_items`` bundle under ``out`` generated from ``bundle``."""
    from pipelines.assemble import user_tower_vectors

    verify_bundle(bundle)
    rng = np.random.default_rng(seed)
    items = pd.read_parquet(bundle / "items.parquet")
    n0 = len(items)
    new = jittered_items(bundle, n_items - n0, rng)
    b = new["base"]
    copies = items.iloc[b].reset_index(drop=True)
    copies["item_id"] = [f"g{i:07d}" for i in range(len(b))]
    copies["price"] = np.round(new["price"], 2)
    copies["in_stock"] = True
    big_items = pd.concat([items, copies], ignore_index=True)
    item_vec = np.concatenate([np.load(bundle / "item_vectors.npy"), new["vectors"]])
    image = np.concatenate([np.load(bundle / "image_vectors.npy"), new["image"]])
    rows = np.concatenate([np.arange(n0), b])  # the real row each catalog row copies
    st = ItemStats.load(bundle / "item_stats.npz")
    stats = ItemStats(category=st.category[rows], log_price=np.log1p(big_items["price"].to_numpy(np.float32)),
                      popularity=st.popularity[rows], recent=st.recent[rows], age_days=st.age_days[rows], image=image)
    ch = Channels.load(bundle / "channels.npz")
    channels = Channels(ch.neighbours[rows], ch.weights[rows], ch.category_top, ch.popularity[rows], ch.config)
    spec = FeatureSpec.load(bundle / "features.json")
    users = pd.read_parquet(bundle / "users.parquet")
    user_q = user_tower_vectors(bundle / "user_tower.onnx", spec, users, 500, seed)
    held = rng.choice(len(image), 500, replace=False)
    indexes = {}
    for name, x, q in (("items", item_vec, user_q), ("images", image, image[held])):
        vi = VectorIndex.build(x, "ivfflat", seed=seed)
        vi.tune(q, target_recall=0.95, k=100)
        indexes[name] = vi
        log.info("%s index: %s", name, vi.info.to_dict())
    manifest = json.loads((bundle / "manifest.json").read_text())
    with tempfile.TemporaryDirectory(prefix="vitrine-big-", dir=out.parent if out.parent.exists() else None) as tmp:
        t = Path(tmp)
        big_items.to_parquet(t / "items.parquet", index=False)
        np.save(t / "item_vectors.npy", item_vec)
        np.save(t / "image_vectors.npy", image)
        stats.save(t / "item_stats.npz")
        channels.save(t / "channels.npz")
        indexes["items"].save(t / "index.faiss")
        indexes["images"].save(t / "image_index.faiss")
        files = {p.name: p for p in t.iterdir()}
        files |= {name: bundle / name for name in ("users.parquet", "features.json", "user_tower.onnx",
                                                   "item_tower.onnx", "ranker.onnx", "image_model.onnx")}
        info = {k: manifest[k] for k in ("dataset", "image_root", "metrics", "models") if k in manifest}
        info["dataset"] = info.get("dataset", {}) | {"items": n_items, "generated_from": manifest["version"]}
        info["indexes"] = {k: v.info.to_dict() for k, v in indexes.items()}
        path = write_bundle(out, files, info)
    promote(out, path.name)
    return path


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path, default=Path("bench/out/big"), help="artifacts directory to publish into")
    a = ap.parse_args()
    n0 = len(pd.read_parquet(a.bundle / "items.parquet", columns=["item_id"]))
    if a.items <= n0:
        ap.error(f"--items must exceed the bundle's {n0:,} items")
    if a.out.exists():
        shutil.rmtree(a.out)
    a.out.mkdir(parents=True)
    path = grow(a.bundle, a.items, a.out)
    size = sum(p.stat().st_size for p in path.iterdir()) / 2**30
    print(f"published {path} ({a.items:,} items, {size:.2f} GiB) and made it CURRENT under {a.out}")


if __name__ == "__main__":
    main()
