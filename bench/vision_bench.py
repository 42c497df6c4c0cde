"""Product-image CNN benchmark, in two phases so the timed training runs alone on the machine.

    .venv/bin/python bench/vision_bench.py train  --data data/fashion-shop --run runs/bench-vision-cpu
    .venv/bin/python bench/vision_bench.py report --data data/fashion-shop --run runs/bench-vision-cpu

``train`` times the CPU recipe (vision/configs/cpu.yaml) from nothing, end to end, and writes
``timing.json`` into the run. ``report`` prints test accuracy on the official Fashion-MNIST test
split (never used for early stopping), and in one run compares PyTorch eager, ONNX Runtime fp32 and
ONNX Runtime INT8: latency at batch 1, throughput at batch 256, INT8 accuracy drop.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import time
from pathlib import Path


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.machine()}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}"


def phase_train(a: argparse.Namespace) -> None:
    from vision.config import TrainConfig
    from vision.train import set_threads, train

    if a.run.exists():
        shutil.rmtree(a.run)
    set_threads()
    cfg = TrainConfig.from_yaml(a.config, data_dir=str(a.data), run_dir=str(a.run))
    t0 = time.perf_counter()
    train(cfg)
    wall = time.perf_counter() - t0
    (a.run / "timing.json").write_text(json.dumps({"train_wall_s": wall, "machine": machine(),
                                                   "config": str(a.config)}, indent=2))
    print(f"trained {a.config} in {wall / 60:.1f} min on {machine()}")


def _latency_ms(fn, x, reps: int) -> float:
    for _ in range(5):
        fn(x)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return 1e3 * float(sorted(times)[len(times) // 2])  # median


def phase_report(a: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from common.onnx_runtime import make_session
    from vision.data import load_image_set, to_tensor
    from vision.evaluate import evaluate
    from vision.export import export_image_model, quantize_int8
    from vision.preprocess import PreprocessSpec
    from vision.train import load_model

    torch.set_num_threads(os.cpu_count() or 1)
    timing = json.loads((a.run / "timing.json").read_text())
    m = evaluate(a.run / "best.pt", a.data, a.run / "eval")
    fp32 = a.run / "image_model.onnx"
    exp = export_image_model(a.run / "best.pt", fp32, temperature=m["temperature"])
    spec = PreprocessSpec()
    data = load_image_set(a.data, spec)
    xtr, _ = data.subset("train")
    xte, yte = data.subset("test")
    int8 = quantize_int8(fp32, a.run / "image_model.int8.onnx", to_tensor(xtr[:512], spec).numpy())
    x = to_tensor(xte, spec).numpy()
    model, _ = load_model(a.run / "best.pt")
    model.eval()

    def torch_run(b: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(b))[0].numpy()

    runners = {"PyTorch eager fp32": torch_run}
    for name, path in (("ONNX Runtime fp32", fp32), ("ONNX Runtime INT8", int8)):
        sess = make_session(path, threads=os.cpu_count() or 1)
        runners[name] = lambda b, s=sess: s.run(["logits"], {"image": b})[0]
    rows = []
    for name, fn in runners.items():
        acc = float(np.mean(np.concatenate([fn(x[i : i + 1000]).argmax(1) for i in range(0, len(x), 1000)]) == yte))
        lat = _latency_ms(fn, x[:1], 300)
        thr = 256 / (_latency_ms(fn, x[:256], 20) / 1e3)
        rows.append((name, acc, lat, thr))
    base = rows[0]
    print(f"\nmachine: {machine()}")
    print(f"CPU recipe {timing['config']}: trained in {timing['train_wall_s'] / 60:.1f} min (wall, incl. decoding)")
    print(f"test accuracy (official 10k test split): {m['accuracy']:.4f}; macro F1 {m['macro_f1']:.4f}; "
          f"ECE {m['ece']:.4f} -> {m['calibrated']['ece']:.4f} after temperature {m['temperature']:.3f}")
    print(f"ONNX export max |onnx - torch| on random inputs: {exp['max_abs_diff']:.2e}")
    print("| runtime | test acc | batch-1 latency (ms) | vs eager | batch-256 throughput (img/s) | vs eager |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, acc, lat, thr in rows:
        print(f"| {name} | {acc:.4f} | {lat:.3f} | {base[2] / lat:.2f}x | {thr:,.0f} | {thr / base[3]:.2f}x |")
    print(f"INT8 accuracy drop vs ONNX fp32: {100 * (rows[1][1] - rows[2][1]):.2f} points")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ap = argparse.ArgumentParser()
    ap.add_argument("phase", choices=["train", "report"])
    ap.add_argument("--data", type=Path, default=Path("data/fashion-shop"))
    ap.add_argument("--run", type=Path, default=Path("runs/bench-vision-cpu"))
    ap.add_argument("--config", type=Path, default=Path("vision/configs/cpu.yaml"))
    a = ap.parse_args()
    {"train": phase_train, "report": phase_report}[a.phase](a)
