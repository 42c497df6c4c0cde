"""Runs inside bench/.venv-recbole: train one RecBole model on Vitrine's split, print JSON.

    python run_model.py MODEL DATA_PATH DATASET_NAME [SEED]
"""

import functools
import json
import sys
import time

import torch

torch.load = functools.partial(torch.load, weights_only=False)  # RecBole reloads its own checkpoints

from recbole.quick_start import run_recbole  # noqa: E402

model, data_path, dataset = sys.argv[1], sys.argv[2], sys.argv[3]
seed = int(sys.argv[4]) if len(sys.argv) > 4 else 2020
config = {
    "data_path": data_path,
    "benchmark_filename": ["train", "valid", "test"],  # Vitrine's split files, as they are
    "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
    "eval_args": {"order": "TO", "mode": "full", "group_by": "user"},
    "metrics": ["Recall", "NDCG", "MRR", "Hit"],
    "topk": [10, 20],
    "valid_metric": "NDCG@10",
    "embedding_size": 64,
    "seed": seed,
    "reproducibility": True,
    "epochs": 300,
    "stopping_step": 10,
    "train_batch_size": 2048,
    "eval_batch_size": 4096,
    "show_progress": False,
    "checkpoint_dir": f"/tmp/recbole-saved-{model}-{seed}",
    "worker": 0,
}
t0 = time.perf_counter()
result = run_recbole(model=model, dataset=dataset, config_dict=config)
wall = time.perf_counter() - t0
test = {k: float(v) for k, v in result["test_result"].items()}
print("RESULT " + json.dumps({"model": model, "wall_s": wall, "test": test}))
