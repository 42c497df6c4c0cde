"""Does ONNX Runtime's dynamic INT8 quantisation make the ranker cheaper at the same served quality?
(issue 32, groundwork.) For each variant of the live bundle's ranker.onnx: the ranker call's time per
candidate in-process (rows of a 13-request batch x 250 candidates, one intra-op thread, variants
alternated) and the served NDCG@10 of a copy of the bundle with that ranker against the original,
paired on the nightly gate's seeded holdout (pipelines/gate.py ``paired_gate``: 2,000 test shoppers,
bootstrap interval of the difference).

    .venv/bin/python bench/ranker_int8.py --artifacts artifacts --data data/fashion-shop
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from onnxruntime.quantization import QuantType, quantize_dynamic

from bundle.versions import bundles_dir, current_version, read_manifest
from common.onnx_runtime import make_session
from pipelines.gate import paired_gate


def variants(src: Path, out: Path) -> dict[str, Path]:
    """fp32 (the export) and ONNX Runtime's dynamic INT8 quantisation: weights per tensor, per channel.
    (Restricting it to some of the Gemm nodes with ``nodes_to_quantize`` / ``op_types_to_quantize``
    quantised nothing with onnxruntime 1.32: the scores came out identical.)"""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"fp32": src}
    for name, kw in (("int8", {}), ("int8 per channel", {"per_channel": True})):
        p = out / f"{name.replace(' ', '_').replace(',', '')}.onnx"
        quantize_dynamic(str(src), str(p), weight_type=QuantType.QInt8, **kw)
        paths[name] = p
    return paths


def feed(sess, rows: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    for i in sess.get_inputs():
        shape = [rows if not isinstance(d, int) else d for d in i.shape]
        out[i.name] = (rng.integers(0, 5, shape).astype(np.int64) if "int64" in i.type
                       else rng.standard_normal(shape).astype(np.float32))
    return out


def time_per_candidate(sessions: dict, x: dict[str, np.ndarray], repeats: int) -> dict[str, float]:
    """Best of three alternated rounds (the machine's speed drifts): µs per row of ``x`` per session."""
    rows = len(next(iter(x.values())))
    us: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(3):
        for k, s in sessions.items():
            s.run(None, x)
            t = time.perf_counter()
            for _ in range(repeats):
                s.run(None, x)
            us[k].append((time.perf_counter() - t) / repeats / rows * 1e6)
    return {k: min(v) for k, v in us.items()}


def served_against_live(live: Path, ranker: Path, tmp: Path, data: Path, split: Path) -> str:
    """A copy of the live bundle with ``ranker`` against the live one on the gate's holdout, as table cells."""
    cand = tmp / "bundles" / live.name
    shutil.rmtree(cand, ignore_errors=True)
    shutil.copytree(live, cand)
    shutil.copy(ranker, cand / "ranker.onnx")
    g = paired_gate(cand, read_manifest(cand), live, data, split, margin=0.01, k=10, shoppers=2000,
                    confidence=0.95, resamples=2000, seed=0)
    return (f"{g['candidate']:.4f} vs {g['live']:.4f} | {g['difference'] / g['live']:+.1%} "
            f"({g['ci'][0] / g['live']:+.1%} .. {g['ci'][1] / g['live']:+.1%}) |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    ap.add_argument("--data", type=Path, default=Path("data/fashion-shop"))
    ap.add_argument("--rows", type=int, default=13 * 250)
    ap.add_argument("--repeats", type=int, default=200)
    a = ap.parse_args()
    version = current_version(a.artifacts)
    live = bundles_dir(a.artifacts) / version
    split = next((a.artifacts / "work").glob("split-*"))
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = variants(live / "ranker.onnx", Path(tmp) / "rankers")
        sessions = {k: make_session(p, threads=1, device="cpu") for k, p in paths.items()}
        x = feed(sessions["fp32"], a.rows, rng)
        us = time_per_candidate(sessions, x, a.repeats)
        ref = sessions["fp32"].run(None, x)[0]
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {datetime.now(UTC):%Y-%m-%d}; bundle {version}; "
              f"{a.rows:,} rows per call, best of 3 x {a.repeats} calls; served NDCG@10 paired on the gate's holdout")
        print("| ranker | µs per candidate | speed-up | score corr. with fp32 | served NDCG@10 | difference "
              "(95 % CI) |\n|---|---|---|---|---|---|")
        for k, p in paths.items():
            corr = np.corrcoef(ref.ravel(), sessions[k].run(None, x)[0].ravel())[0, 1]
            head = f"| {k} | {us[k]:.3f} | {us['fp32'] / us[k]:.2f}x | {corr:.4f} |"
            print(f"{head} (live) | — |" if k == "fp32" else
                  f"{head} {served_against_live(live, p, Path(tmp), a.data, split)}")


if __name__ == "__main__":
    main()
