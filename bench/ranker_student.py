"""Smaller rankers against the live one (issue 32, groundwork): the same ranker step the nightly job
runs (pipelines/train_steps.py ``ranker_step``, the demo run's data, split, two-tower and recipe)
with a smaller DCN-v2, then the ranker call's time per candidate (in-process, one intra-op thread,
variants alternated) and the served NDCG@10 of a copy of the bundle with that ranker against the
live bundle, paired on the nightly gate's seeded holdout (pipelines/gate.py ``paired_gate``).

    .venv/bin/python bench/ranker_student.py --artifacts artifacts --data data/fashion-shop
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from ranker_int8 import feed, served_against_live, time_per_candidate  # noqa: E402

from bundle.versions import bundles_dir, current_version  # noqa: E402
from common.onnx_runtime import make_session  # noqa: E402
from common.recipes import from_mapping, plain  # noqa: E402
from pipelines import train_steps as ts  # noqa: E402
from pipelines.nightly import NightlyConfig  # noqa: E402
from recsys.config import RankerHparams, RecTrainConfig  # noqa: E402

# the DCN-v2 the bundles shipped until issue 32 (the teacher) and smaller ones
STUDENTS = {"2 cross (rank 32) + MLP 64-32, retrained here": {"cross_layers": 2, "cross_rank": 32, "hidden": (64, 32)},
            "1 cross (rank 16) + MLP 32": {"cross_layers": 1, "cross_rank": 16, "hidden": (32,)},
            "2 cross (rank 8) + MLP 32-16": {"cross_layers": 2, "cross_rank": 8, "hidden": (32, 16)},
            "MLP 32 only": {"cross_layers": 0, "hidden": (32,)}}


def macs(hp: RankerHparams, d0: int = 88) -> int:
    """Multiply-adds per candidate (x0 = 16 dense + 64 u*v + 8 category = 88 wide)."""
    cross = hp.cross_layers * (2 * d0 * hp.cross_rank if hp.cross_rank else d0 * d0)
    dims = (d0, *hp.hidden)
    return cross + sum(a * b for a, b in zip(dims, dims[1:], strict=False)) + d0 + dims[-1]


def _live_model(live: Path) -> RankerHparams:
    """The live ranker's architecture, from its ONNX metadata (``model_config``)."""
    meta = make_session(live / "ranker.onnx", threads=1, device="cpu").get_modelmeta().custom_metadata_map
    c = json.loads(meta["model_config"])
    return RankerHparams(**{k: tuple(v) if k == "hidden" else v for k, v in c.items()
                            if k in RankerHparams.__dataclass_fields__})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    ap.add_argument("--data", type=Path, default=Path("data/fashion-shop"))
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--only", help="train only this variant (a name of STUDENTS)")
    ap.add_argument("--keep", type=Path, help="copy each trained ranker.onnx here (<variant>.onnx)")
    a = ap.parse_args()
    version = current_version(a.artifacts)
    live = bundles_dir(a.artifacts) / version
    run = json.loads(sorted((a.artifacts / "runs").glob("*.json"))[-1].read_text())
    cfg = from_mapping(NightlyConfig, run["config"], "the last run's config")
    work = a.artifacts / "work"
    split, vision, tt_dir = (next(work.glob(f"{s}-*")) for s in ("split", "vision", "two_tower"))
    tt = from_mapping(RecTrainConfig, plain(cfg.two_tower) | ts.tuned_two_tower(a.artifacts), "two-tower")
    rec = ts.RecDataCache(a.data, cfg.split, split, vision / "embed" / "image_vectors.npy", cfg.valid_users,
                          {"profile_len": tt.profile_len, "half_life_days": tt.half_life_days})
    rows, rng = 13 * 250, np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        paths, info = {"the live bundle's: " + json.dumps(plain(_live_model(live))): live / "ranker.onnx"}, {}
        hps = {next(iter(paths)): _live_model(live)}
        for name, hp in STUDENTS.items():
            if a.only and name != a.only:
                continue
            out = Path(tmp) / "".join(c if c.isalnum() else "_" for c in name)
            out.mkdir()
            t = time.perf_counter()
            recipe = replace(cfg.ranker, model=RankerHparams(**(plain(cfg.ranker.model) | hp)))
            info[name] = ts.ranker_step(rec, tt_dir, out, recipe) | {"seconds": time.perf_counter() - t}
            paths[name], hps[name] = out / "ranker.onnx", recipe.model
            if a.keep:
                a.keep.mkdir(parents=True, exist_ok=True)
                shutil.copy(out / "ranker.onnx", a.keep / f"{out.name}.onnx")
        sessions = {k: make_session(p, threads=1, device="cpu") for k, p in paths.items()}
        x = feed(next(iter(sessions.values())), rows, rng)
        us = time_per_candidate(sessions, x, a.repeats)
        teacher = next(iter(paths))
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {datetime.now(UTC):%Y-%m-%d}; bundle {version}; "
              f"ranker recipe {json.dumps(plain(cfg.ranker))} (model varied); {rows:,} rows per call, "
              f"best of 3 x {a.repeats}; served NDCG@10 paired on the gate's holdout (2,000 shoppers)")
        print("| ranker | multiply-adds | µs per candidate | speed-up | offline NDCG@10 (test lists) | "
              "served NDCG@10 | difference (95 % CI) |\n|---|---|---|---|---|---|---|")
        for k, p in paths.items():
            off = info[k]["lift"]["ranker"]["ndcg@10"] if k in info else float("nan")
            head = f"| {k} | {macs(hps[k]):,} | {us[k]:.3f} | {us[teacher] / us[k]:.2f}x | {off:.4f} |"
            print(f"{head} (live) | — |" if k == teacher else
                  f"{head} {served_against_live(live, p, Path(tmp), a.data, split)}")
        print("student training s: " + ", ".join(f"{k} {v['seconds']:.0f}" for k, v in info.items()))


if __name__ == "__main__":
    main()
