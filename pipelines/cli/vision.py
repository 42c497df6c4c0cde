"""`vitrine vision ...`: train, evaluate, embed and export the product-image CNN.

The torch-side modules are imported inside each command: the `vitrine` CLI must start (for
`serve`, `bundle`, `data`) on a serving-only install, which has no torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli.common import Checkpoint, DataDir, console, fail, run_or_fail
from vision.suspects import MIN_CONFIDENCE

app = typer.Typer(help="Product-image CNN: train, evaluate, embed, export.", no_args_is_help=True)


@app.command("train")
def train(
    data: DataDir = Path("data/fashion-shop"),
    run: Annotated[Path, typer.Option(help="Run directory (resumes when it holds last.pt).")] = Path("runs/vision"),
    config: Annotated[Path | None, typer.Option(help="YAML recipe, e.g. vision/configs/cpu.yaml "
                                                     "(default: gpu.yaml with CUDA, else cpu.yaml).")] = None,
    model: Annotated[str | None, typer.Option(help="Registered architecture.")] = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda")] = None,
    max_items: Annotated[int | None, typer.Option(help="Subsample the catalog (smoke runs).")] = None,
) -> None:
    """Train (or resume) the image CNN. Under torchrun, use `python -m vision.train CONFIG`."""
    from vision.config import TrainConfig
    from vision.train import default_recipe, set_threads
    from vision.train import train as train_cnn

    if not (data / "items.parquet").is_file():
        raise fail(f"{data / 'items.parquet'}: no such file (build a dataset first)")
    set_threads()
    best = run_or_fail(lambda: train_cnn(TrainConfig.from_yaml(
        config or default_recipe(), data_dir=str(data), run_dir=str(run), model=model, epochs=epochs,
        batch_size=batch_size, device=device, max_items=max_items)), ValueError, KeyError)
    console.print(f"best checkpoint: {best}")


@app.command("evaluate")
def evaluate(
    checkpoint: Checkpoint,
    data: DataDir = Path("data/fashion-shop"),
    out: Annotated[Path | None, typer.Option(help="Default: CHECKPOINT_DIR/eval.")] = None,
    part: Annotated[str, typer.Option(help="test | valid")] = "test",
) -> None:
    """Accuracy, per-class P/R/F1, confusion matrix (CSV + PNG), ECE before/after temperature scaling."""
    from vision.evaluate import evaluate as evaluate_cnn

    m = evaluate_cnn(checkpoint, data, out or checkpoint.parent / "eval", part=part)
    console.print(f"{part}: accuracy {m['accuracy']:.4f}, macro F1 {m['macro_f1']:.4f}, ECE {m['ece']:.4f} -> "
                  f"{m['calibrated']['ece']:.4f} at T={m['temperature']:.3f}")


@app.command("embed")
def embed(
    checkpoint: Checkpoint,
    data: DataDir = Path("data/fashion-shop"),
    out: Annotated[Path | None, typer.Option(help="Default: CHECKPOINT_DIR/embed.")] = None,
    min_confidence: float = MIN_CONFIDENCE,
) -> None:
    """Image embeddings + predictions for the whole catalog, and the suspected-mislabeled list."""
    from vision.embed import embed_catalog, suspected_mislabeled
    from vision.evaluate import fitted_temperature

    out = out or checkpoint.parent / "embed"
    pred = embed_catalog(checkpoint, data, out, temperature=fitted_temperature(checkpoint))
    sus = suspected_mislabeled(pred, min_confidence=min_confidence)
    sus.to_csv(out / "suspected_mislabeled.csv", index=False)
    console.print(f"{len(pred):,} items embedded -> {out}; {len(sus)} suspected mislabeled "
                  f"({out / 'suspected_mislabeled.csv'})")


@app.command("export")
def export(
    checkpoint: Checkpoint,
    out: Annotated[Path, typer.Option(help="ONNX file to write.")] = Path("runs/vision/image_model.onnx"),
    int8: Annotated[bool, typer.Option(help="Also write an INT8 model (needs --data for calibration).")] = False,
    data: DataDir = Path("data/fashion-shop"),
) -> None:
    """ONNX with dynamic batch + metadata, onnx.checker, parity vs PyTorch (fails above 1e-4)."""
    from common.torch_runtime import ParityError
    from vision.evaluate import fitted_temperature
    from vision.export import export_image_model, quantize_with_catalog

    try:
        r = export_image_model(checkpoint, out, temperature=fitted_temperature(checkpoint))
    except ParityError as e:
        raise fail(str(e)) from e
    console.print(f"{out}: max |onnx - torch| {r['max_abs_diff']:.2e}")
    if int8:
        console.print(f"{quantize_with_catalog(out, data)}: INT8 (calibrated on 512 training images)")
