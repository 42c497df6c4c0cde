"""Every GPU figure of docs/benchmarks.md in one run on one GPU (issue 17), each beside the same
code's figure on that machine's CPU, printed as one table.

Two steps, because the GPU machine has no network and only the working tree travels to it:

    # here: pack what the run reads (fashion-shop's decoded photos and the two-tower's split), ~45 MB
    .venv/bin/python bench/gpu_bench.py pack --data data/fashion-shop --out .gpu
    # on the GPU host, from the repository root (python3 holds torch there):
    python3 bench/gpu_bench.py run --pack .gpu --out OUT

Figures: the CNN's GPU recipe (vision/configs/gpu.yaml, 40 epochs) — wall time, images/s, test
accuracy on the official Fashion-MNIST test split; the two-tower's pairs/s and validation NDCG@10
per epoch at batch 1,024 and at larger batches (lr scaled by the square root of the batch ratio);
ONNX Runtime's and FAISS's GPU support as installed there. `run --smoke` is the same code on tiny
settings (the test suite runs it on the CPU).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import shutil
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a bare checkout, no install

log = logging.getLogger("gpu_bench")
SHOP_FILES = ("items.parquet", "users.parquet", "splits/temporal-user/train.parquet",
              "splits/temporal-user/valid.parquet", "splits/temporal-user/test.parquet")


def pack(data: Path, out: Path) -> None:
    """The decoded catalog photos (uint8, compressed) with labels and split, and the two-tower's tables."""
    from vision.data import load_image_set
    from vision.preprocess import PreprocessSpec

    out.mkdir(parents=True, exist_ok=True)
    s = load_image_set(data, PreprocessSpec())
    np.savez_compressed(out / "images.npz", pixels=s.pixels, labels=s.labels, split=s.split.astype("U5"),
                        classes=np.array(s.class_names))
    for f in SHOP_FILES:
        (out / "shop" / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data / f, out / "shop" / f)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"packed {len(s.pixels):,} images and the temporal-user split into {out} ({size / 2**20:.1f} MiB)")


def load_images(path: Path):
    from vision.data import ImageSet

    z = np.load(path)
    return ImageSet(z["pixels"], z["labels"], np.arange(len(z["labels"])).astype(str), z["split"],
                    tuple(str(c) for c in z["classes"]))


def small_eval(images, n: int = 1000):
    """The same training images with 1,000 validation and test images: the CPU phase times training
    steps, not evaluation."""
    from dataclasses import replace

    keep = np.ones(len(images.labels), bool)
    for part in ("valid", "test"):
        keep[np.flatnonzero(images.split == part)[n:]] = False
    return replace(images, pixels=images.pixels[keep], labels=images.labels[keep], item_ids=images.item_ids[keep],
                   split=images.split[keep])


def timed(fn, *a, **k) -> tuple[object, float]:
    import torch

    t0 = time.perf_counter()
    r = fn(*a, **k)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return r, time.perf_counter() - t0


def cnn(images, device: str, out: Path, smoke: bool, **over) -> dict:
    """The GPU recipe from nothing; test accuracy of best.pt on the test split (never seen in training)."""
    import torch
    import yaml

    from vision.config import TrainConfig
    from vision.preprocess import PreprocessSpec, normalize
    from vision.train import load_model, predict, train

    recipe = Path(__file__).resolve().parents[1] / "vision/configs/gpu.yaml"
    run = out / f"cnn-{device}-{over.get('max_steps', 'all')}"
    shutil.rmtree(run, ignore_errors=True)
    extra = {"epochs": 1, "model": "resnet_fm_tiny"} if smoke else {}
    cfg = TrainConfig.from_yaml(recipe, run_dir=str(run), device=device, **(over | extra))
    best, wall = timed(train, cfg, data=images)
    hist = yaml.safe_load((run / "history.yaml").read_text())
    steady = [h["img_per_s"] for h in hist[1:]] or [hist[0]["img_per_s"]]  # epoch 1 pays the warm-up
    model, _ = load_model(best)
    model = model.to(device)
    xte, yte = images.subset("test")
    x = torch.from_numpy(normalize(xte, PreprocessSpec()))
    acc = (predict(model, x, torch.device(device))[0].argmax(1).numpy() == yte).mean()
    return {"epochs": len(hist), "wall_s": wall, "img_per_s": float(np.median(steady)), "test_acc": float(acc),
            "train_s": sum(h["epoch_s"] for h in hist), "batch_size": cfg.batch_size, "compile": cfg.compile}


def two_tower(data, device: str, out: Path, batch: int, epochs: int, smoke: bool, max_steps: int | None = None
              ) -> dict:
    """A run at one batch size; lr scaled by sqrt(batch / 1024) from the default recipe's."""
    from recsys.config import RecTrainConfig
    from recsys.train import train_two_tower

    base = RecTrainConfig()
    run = out / f"tt-{device}-{batch}"
    shutil.rmtree(run, ignore_errors=True)
    hist: list[dict] = []
    cfg = RecTrainConfig(run_dir=str(run), device=device, batch_size=batch, epochs=epochs, patience=epochs,
                         lr=base.lr * math.sqrt(batch / base.batch_size), max_steps=max_steps,
                         **({"emb_dim": 16, "hidden": 32, "out_dim": 16} if smoke else {}))
    train_two_tower(cfg, data=data, on_epoch_end=hist.append)
    return {"batch": batch, "lr": cfg.lr, "pairs_per_s": [h["pairs_per_s"] for h in hist],
            "valid_ndcg@10": [h["valid_ndcg@10"] for h in hist]}


def machine() -> dict:
    import torch

    info = {"host": platform.node(), "cpu_cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
            "cuda": torch.version.cuda}
    try:
        import onnxruntime as ort

        info["onnxruntime"] = f"{ort.__version__} {ort.get_available_providers()}"
    except ImportError:
        info["onnxruntime"] = "not installed"
    try:
        import faiss

        info["faiss"] = f"{faiss.__version__}, {faiss.get_num_gpus()} GPU(s)"
    except ImportError:
        info["faiss"] = "not installed"
    return info


def run(a: argparse.Namespace) -> None:
    import torch

    from recsys.data import load_rec_data

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    a.out.mkdir(parents=True, exist_ok=True)
    work = a.work or a.out / "work"
    gpu = "cuda" if torch.cuda.is_available() else "cpu"
    res: dict = {"machine": machine(), "command": " ".join(sys.argv)}
    save = lambda: (a.out / "gpu_bench.json").write_text(json.dumps(res, indent=2))  # noqa: E731
    save()
    print(json.dumps(res["machine"]), flush=True)
    images = load_images(a.pack / "images.npz")
    steps = 3 if a.smoke else None
    phases = [("cnn_gpu", lambda: cnn(images, gpu, work, a.smoke, max_steps=steps)),
              ("cnn_cpu", lambda: cnn(small_eval(images), "cpu", work, a.smoke, epochs=2,
                                      max_steps=3 if a.smoke else 20))]
    if a.compile and not a.smoke:
        phases.insert(1, ("cnn_gpu_compiled", lambda: cnn(images, gpu, work, a.smoke, compile=True)))
    for name, fn in phases:
        if name in a.skip:
            continue
        try:
            res[name] = fn()
        except Exception:  # one phase failing must not cost the others' figures
            res[name] = {"error": traceback.format_exc()[-2000:]}
        print(name, json.dumps(res[name]), flush=True)
        save()
    skip_tt = {"tt_gpu", "tt_cpu"} <= set(a.skip)
    data = None if skip_tt else load_rec_data(a.pack / "shop", split="temporal-user", max_eval_users=5000,
                                              profile_len=0)
    epochs = 1 if a.smoke else a.tt_epochs
    batches = [] if "tt_gpu" in a.skip else [64, 256] if a.smoke else a.batches
    for b in batches:
        try:
            res[f"tt_gpu_{b}"] = two_tower(data, gpu, work, b, epochs, a.smoke, max_steps=steps)
        except Exception:
            res[f"tt_gpu_{b}"] = {"error": traceback.format_exc()[-2000:]}
        print(f"tt_gpu_{b}", json.dumps(res[f"tt_gpu_{b}"]), flush=True)
        save()
    try:
        if "tt_cpu" in a.skip:
            raise RuntimeError("skipped (--skip tt_cpu)")
        res["tt_cpu_1024"] = two_tower(data, "cpu", work, 1024, 1, a.smoke, max_steps=3 if a.smoke else 60)
    except Exception:
        res["tt_cpu_1024"] = {"error": traceback.format_exc()[-2000:]}
    save()
    print(table(res))
    (a.out / "gpu_bench.md").write_text(table(res) + "\n")


def table(res: dict) -> str:
    m = res["machine"]
    rows = [f"{m['gpu']}, CUDA {m['cuda']}, torch {m['torch']}, Python {m['python']}, {m['cpu_cores']} CPU cores; "
            f"ONNX Runtime {m['onnxruntime']}; FAISS {m['faiss']}; {m['date']}; `{res['command']}`", "",
            "| figure | GPU | same code on that host's CPU | target |", "| --- | --- | --- | --- |"]
    g, c = res.get("cnn_gpu", {}), res.get("cnn_cpu", {})
    if "img_per_s" in g:
        rows.append(f"| CNN recipe (gpu.yaml): images/s (median epoch after the first) | {g['img_per_s']:,.0f} | "
                    f"{c.get('img_per_s', float('nan')):,.0f} | ≥ 50,000 |")
        rows.append(f"| CNN recipe: {g['epochs']} epochs, training wall time | {g['wall_s']:.1f} s "
                    f"(train loop {g['train_s']:.1f} s) | — | ≤ 60 s |")
        rows.append(f"| CNN recipe: test accuracy (official test split) | {g['test_acc']:.4f} | — | ≥ 0.960 |")
    gc = res.get("cnn_gpu_compiled", {})
    if "img_per_s" in gc:
        rows.append(f"| CNN recipe with torch.compile: images/s, wall, test accuracy | {gc['img_per_s']:,.0f}, "
                    f"{gc['wall_s']:.1f} s, {gc['test_acc']:.4f} | — | |")
    tts = {k: v for k, v in res.items() if k.startswith("tt_gpu_") and "pairs_per_s" in v}
    cpu = res.get("tt_cpu_1024", {})
    for v in tts.values():
        pps = float(np.median(v["pairs_per_s"][1:] or v["pairs_per_s"]))
        nd = ", ".join(f"{x:.4f}" for x in v["valid_ndcg@10"])
        cpu_s = f"{np.median(cpu['pairs_per_s']):,.0f}" if v["batch"] == 1024 and "pairs_per_s" in cpu else "—"
        rows.append(f"| two-tower batch {v['batch']:,} (lr {v['lr']:.4f}): pairs/s; valid NDCG@10 by epoch | "
                    f"{pps:,.0f}; {nd} | {cpu_s} | ≥ 2,000,000 at the best batch, NDCG per epoch as batch 1,024 |")
    for k, v in res.items():
        if isinstance(v, dict) and "error" in v:
            rows.append(f"| {k} | failed: {v['error'].strip().splitlines()[-1]} | | |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--data", type=Path, default=Path("data/fashion-shop"))
    p.add_argument("--out", type=Path, default=Path(".gpu"))
    r = sub.add_parser("run")
    r.add_argument("--pack", type=Path, default=Path(".gpu"))
    r.add_argument("--out", type=Path, default=Path("runs/gpu-bench"), help="gpu_bench.json and gpu_bench.md")
    r.add_argument("--work", type=Path, default=None, help="training runs (default: OUT/work)")
    r.add_argument("--batches", type=int, nargs="+", default=[1024, 8192, 32768])
    r.add_argument("--tt-epochs", type=int, default=4)
    r.add_argument("--compile", action="store_true", help="also time the CNN recipe under torch.compile")
    r.add_argument("--skip", nargs="*", default=[], help="phases to leave out: cnn_gpu cnn_cpu tt_gpu tt_cpu")
    r.add_argument("--smoke", action="store_true", help="tiny settings: the same code in seconds (tests, CPU)")
    a = ap.parse_args()
    pack(a.data, a.out) if a.cmd == "pack" else run(a)


if __name__ == "__main__":
    main()
