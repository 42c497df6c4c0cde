"""`vitrine recsys ...`: train, evaluate (with baselines), export the two-tower; train the ranker.

Torch-side modules are imported inside each command (see ``pipelines/cli/vision.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli.common import (
    Artifacts,
    DataDir,
    ImageVectors,
    Split,
    TwoTowerCheckpoint,
    artifacts_dir,
    console,
    fail,
    run_or_fail,
)

app = typer.Typer(help="Two-tower recommender: train, evaluate (with baselines), export; the ranker.",
                  no_args_is_help=True)
COLUMNS = ("ndcg@10", "recall@20", "recall@100", "mrr@10", "hit@10", "coverage", "novelty", "gini")


@app.command("train")
def train(
    data: DataDir = Path("data/fashion-shop"),
    run: Annotated[Path, typer.Option(help="Run directory (resumes when it holds last.pt).")] = Path("runs/two-tower"),
    config: Annotated[Path | None, typer.Option(help="YAML with RecTrainConfig fields.")] = None,
    split: Split = "temporal-user",
    image_vectors: Annotated[Path | None, typer.Option(help="image_vectors.npy from `vision embed`.")] = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda")] = None,
) -> None:
    """Train (or resume) the two-tower model; early stopping on validation NDCG@10."""
    from recsys.config import RecTrainConfig
    from recsys.train import train_two_tower

    best = run_or_fail(lambda: train_two_tower(RecTrainConfig.from_yaml(
        config, data_dir=str(data), run_dir=str(run), split=split, epochs=epochs, batch_size=batch_size,
        device=device, image_vectors=str(image_vectors) if image_vectors else None)), ValueError, FileNotFoundError)
    console.print(f"best checkpoint: {best}")


@app.command("evaluate")
def evaluate(
    checkpoint: TwoTowerCheckpoint,
    data: DataDir = Path("data/fashion-shop"),
    split: Split = "temporal-user",
    image_vectors: ImageVectors = None,
    baselines: Annotated[bool, typer.Option(help="Also rank with popularity, per-category, ItemKNN, EASE.")] = True,
) -> None:
    """Full-catalog test metrics (train+valid masked) for the model and the baselines, one table
    (also CHECKPOINT_DIR/test_metrics.json, which `bundle build` reads)."""
    from recsys.baselines import evaluate_with_baselines

    try:
        r = evaluate_with_baselines(checkpoint, data, split=split, image_vectors=image_vectors, baselines=baselines)
    except FileNotFoundError as e:
        raise fail(str(e)) from e
    console.print("model".ljust(24) + "".join(c.rjust(11) for c in COLUMNS))
    for name, m in r["models"].items():
        console.print(name.ljust(24) + "".join(f"{m[c]:11.4f}" for c in COLUMNS))
    seg_cols = ("ndcg@10", "recall@20", "recall@100")
    console.print("\ntwo-tower by segment".ljust(34) + "users".rjust(8) + "".join(c.rjust(11) for c in seg_cols))
    for name, m in r["two-tower segments"].items():
        console.print(name.ljust(33) + f"{m['users']:8d}" + "".join(f"{m[c]:11.4f}" for c in seg_cols))


@app.command("tune")
def tune(
    data: DataDir = Path("data/fashion-shop"),
    split: Split = "temporal-user",
    image_vectors: ImageVectors = None,
    config: Annotated[Path | None, typer.Option(help="YAML with the RecTrainConfig fields the search starts from.")]
    = None,
    artifacts: Artifacts = None,
    trials: Annotated[int, typer.Option(help="Most trials.")] = 20,
    timeout: Annotated[float, typer.Option(help="Most seconds for the whole search.")] = 1800.0,
    epochs: Annotated[int, typer.Option(help="Most epochs per trial.")] = 10,
    valid_users: Annotated[int, typer.Option(help="Validation users each trial is judged on.")] = 5000,
) -> None:
    """Search the two-tower's hyperparameters on the validation split (Optuna, pruned), and leave the
    winner in ARTIFACTS/tuning/two_tower.json, which every nightly run uses until the next search."""
    from pipelines.train_steps import tuned_path
    from recsys.config import RecTrainConfig
    from recsys.data import load_rec_data
    from recsys.tune import TuneBudget, tune_two_tower

    if trials < 1 or timeout <= 0 or epochs < 1:
        raise fail("--trials and --epochs must be at least 1, --timeout positive", 2)
    target = tuned_path(artifacts_dir(artifacts))
    base = run_or_fail(lambda: RecTrainConfig.from_yaml(config, data_dir=str(data), split=split, eval_users=None),
                       ValueError, OSError)
    d = run_or_fail(lambda: load_rec_data(data, split=split, image_vectors=image_vectors, max_eval_users=valid_users,
                                          profile_len=base.profile_len, half_life_days=base.half_life_days),
                    FileNotFoundError)
    r = tune_two_tower(d, base, target.parent / "work", TuneBudget(n_trials=trials, timeout_s=timeout, epochs=epochs))
    target.write_text(json.dumps(r, indent=2, default=str) + "\n")
    console.print(f"best of {len(r['trials'])} trials: validation NDCG@10 {r['valid_ndcg@10']:.4f} with "
                  f"{r['params']} -> {target} (the nightly job uses it from now on)")


@app.command("export")
def export(
    checkpoint: TwoTowerCheckpoint,
    data: DataDir = Path("data/fashion-shop"),
    out: Annotated[Path | None, typer.Option(help="Default: CHECKPOINT_DIR/export.")] = None,
    image_vectors: ImageVectors = None,
) -> None:
    """user_tower.onnx + item_tower.onnx (dynamic batch, parity ≤ 1e-4), item_vectors.npy, features.json."""
    from common.torch_runtime import ParityError
    from recsys.export import export_towers
    from recsys.train import load_with_data

    model, d = load_with_data(checkpoint, data, image_vectors=image_vectors)
    try:
        r = export_towers(model, d, out or checkpoint.parent / "export")
    except ParityError as e:
        raise fail(str(e)) from e
    console.print(f"exported; max |onnx - torch| {r['max_abs_diff']:.2e}; item vectors {r['item_vectors']}")


@app.command("ranker")
def ranker(
    checkpoint: Annotated[Path, typer.Option(help="Two-tower checkpoint (RUN/best.pt) whose candidates to rank.")],
    data: DataDir = Path("data/fashion-shop"),
    split: Split = "temporal-user",
    image_vectors: ImageVectors = None,
    out: Annotated[Path | None, typer.Option(help="Default: CHECKPOINT_DIR/ranker.")] = None,
    candidates: int = 200,
    valid_users: Annotated[int, typer.Option(help="Validation-period users to learn from.")] = 20_000,
    channels: Annotated[bool, typer.Option(help="Add the item-to-item and popular-in-category channels' "
                                                "candidates (recsys/channels.py) to the tower's.")] = True,
) -> None:
    """Train the DCN-v2 ranker on validation-period lists (the tower's candidates and the recall channels'),
    report test NDCG@10 of each channel's own list and of the ranker's order, export ranker.onnx with a
    parity check."""
    from common.torch_runtime import ParityError
    from recsys.config import RankerTrainConfig
    from recsys.ranker import train_evaluate_export
    from recsys.train import load_with_data

    out = out or checkpoint.parent / "ranker"
    tt, d = load_with_data(checkpoint, data, split=split, image_vectors=image_vectors, max_eval_users=valid_users)
    try:
        cfg = RankerTrainConfig(candidates=candidates, **({} if channels else {"channels": None}))
        lift = train_evaluate_export(tt, d, cfg, out)
    except (ValueError, ParityError) as e:
        raise fail(str(e)) from e
    alone = ", ".join(f"{k} {v['ndcg@10']:.4f}" for k, v in lift["channels"].items() if k != "tower")
    console.print(f"test NDCG@10: tower's top {candidates} {lift['tower']['ndcg@10']:.4f}"
                  f"{'; ' + alone if alone else ''} -> ranker over {lift['union_size']} candidates "
                  f"{lift['ranker']['ndcg@10']:.4f} (x{lift['ndcg@10_lift']:.3f} the tower); {out / 'ranker.onnx'} "
                  f"parity {lift['onnx_parity']:.1e}")
