"""CPU training speed of the CNN and the two-tower, old checkout against new, alternating in one run
(issue 17: making the GPU loops device-resident must not slow the CPU recipes).

    git worktree add /tmp/vitrine-old <commit>
    .venv/bin/python bench/train_speed.py --old /tmp/vitrine-old --rounds 3

Each measurement runs a checkout's own code in a fresh subprocess on the same data: the CPU CNN
recipe's model (resnet_fm_s, batch 256) for two epochs over 8,000 fashion-shop photos, and the
two-tower (batch 1,024) for two epochs on MovieLens-100K's random split; the figure is the second
epoch's images/s or pairs/s (the first pays warm-up).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

CHILD = r"""
import json, logging, sys, tempfile
import torch
torch.set_num_threads(int(sys.argv[3]))
which, data = sys.argv[1], sys.argv[2]
run = tempfile.mkdtemp()
if which == "cnn":
    from vision.config import TrainConfig
    from vision.train import train
    import yaml
    train(TrainConfig(data_dir=data, run_dir=run, model="resnet_fm_s", epochs=2, batch_size=256, lr=0.2,
                      max_items=8000, device="cpu", eval_batch_size=512))
    h = yaml.safe_load(open(run + "/history.yaml"))
    print(json.dumps({"rate": h[-1]["img_per_s"]}))
else:
    from recsys.config import RecTrainConfig
    from recsys.train import train_two_tower
    import yaml
    train_two_tower(RecTrainConfig(data_dir=data, run_dir=run, split="random-user", epochs=2, batch_size=1024,
                                   n_negatives=1024, eval_users=943, device="cpu"))
    h = yaml.safe_load(open(run + "/history.yaml"))
    print(json.dumps({"rate": h[-1]["pairs_per_s"]}))
"""


def measure(repo: Path, which: str, data: Path, threads: int) -> float:
    env = os.environ | {"PYTHONPATH": str(repo), "TQDM_DISABLE": "1"}
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(CHILD)
    r = subprocess.run([sys.executable, f.name, which, str(data.resolve()), str(threads)], cwd=repo, env=env,
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])["rate"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", type=Path, required=True, help="a checkout of the code before the change")
    ap.add_argument("--new", type=Path, default=Path("."))
    ap.add_argument("--shop", type=Path, default=Path("data/fashion-shop"))
    ap.add_argument("--movielens", type=Path, default=Path("data/movielens-100k"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", choices=["cnn", "two_tower"], default=None)
    a = ap.parse_args()
    threads = os.cpu_count() or 1
    res: dict[tuple[str, str], list[float]] = {}
    for _ in range(a.rounds):
        for which, data in (("cnn", a.shop), ("two_tower", a.movielens)):
            if a.only not in (None, which):
                continue
            for name, repo in (("old", a.old), ("new", a.new)):
                res.setdefault((which, name), []).append(measure(repo.resolve(), which, data, threads))
    print(f"{datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, {threads} cores, CPU only; "
          f"`{' '.join(sys.argv)}`; median of {a.rounds} alternating rounds")
    print("| loop | old | new | new / old |\n| --- | --- | --- | --- |")
    for which, unit in (("cnn", "images/s"), ("two_tower", "pairs/s")):
        if (which, "old") not in res:
            continue
        rounds = {k: [round(v) for v in res[(which, k)]] for k in ("old", "new")}
        print(f"{which} rounds: old {rounds['old']}, new {rounds['new']}")
        old, new = np.median(res[(which, "old")]), np.median(res[(which, "new")])
        print(f"| {which} ({unit}) | {old:,.0f} | {new:,.0f} | {new / old:.2f} |")


if __name__ == "__main__":
    main()
