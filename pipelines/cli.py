"""The ``vitrine`` command. Each sub-command parses flags and calls plain functions; nothing else."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from pipelines.settings import get_settings

app = typer.Typer(help="Vitrine: recommendations and product vision.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
data_app = typer.Typer(help="Build, import, validate and split datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
vision_app = typer.Typer(help="Product-image CNN: train, evaluate, embed, export.", no_args_is_help=True)
app.add_typer(vision_app, name="vision")
bundle_app = typer.Typer(help="Artifact bundles: list, verify, promote, roll back.", no_args_is_help=True)
app.add_typer(bundle_app, name="bundle")
recsys_app = typer.Typer(help="Two-tower recommender: train, evaluate (with baselines), export.", no_args_is_help=True)
app.add_typer(recsys_app, name="recsys")
index_app = typer.Typer(help="FAISS indexes: build and tune.", no_args_is_help=True)
app.add_typer(index_app, name="index")
console = Console(stderr=True, width=160)
log = logging.getLogger("vitrine")


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    level = "DEBUG" if verbose else get_settings().log_level
    logging.basicConfig(level=level, format="%(message)s", datefmt="%X",
                        handlers=[RichHandler(console=console, show_path=False)], force=True)


def _fail(msg: str, code: int = 1) -> typer.Exit:
    console.print(f"[bold red]error:[/] {msg}")
    return typer.Exit(code)


def _share(max_bad_share: float | None) -> float:
    return get_settings().max_bad_share if max_bad_share is None else max_bad_share


def _ingest(items, users, events, out: Path, image_root: Path | None, max_bad_share: float | None, *,
            copy_images: bool = False) -> None:
    """Validate raw frames, write the canonical tables (or refuse), print a summary.

    ``copy_images``: the images live outside ``out`` (a custom import) and are copied under it.
    """
    from pipelines.custom import copy_images as copy_into
    from pipelines.validate import DataValidationError, validate, write_validated

    v = validate(items, users, events, image_root=image_root)
    if copy_images and image_root is not None:
        v.items = copy_into(v.items, image_root, out)
    try:
        write_validated(v, out, _share(max_bad_share))
    except DataValidationError as e:
        raise _fail(f"{e}\n  rejected rows with reasons: {out / 'rejected.csv'}") from e
    for r in v.reports.values():
        extra = f" — rejected {r.n_bad}: {r.reasons}" if r.n_bad else ""
        console.print(f"  {r.table:<7} {r.n_rows - r.n_bad:>10,} rows{extra}")
    if len(v.rejected):
        console.print(f"  rejected rows with reasons: {out / 'rejected.csv'}")


MaxBad = Annotated[float | None, typer.Option(help="Fail when a table's rejected share exceeds this.")]
FmnistDir = Annotated[Path | None, typer.Option(help="Folder with the Fashion-MNIST *-ubyte.gz files.")]


@data_app.command("fashion-shop")
def fashion_shop(
    out: Annotated[Path, typer.Option(help="Dataset directory to write.")] = Path("data/fashion-shop"),
    users: Annotated[int, typer.Option(help="Number of shoppers.")] = 30_000,
    items: Annotated[int, typer.Option(help="Catalog size (≤ 70,000 Fashion-MNIST images).")] = 70_000,
    days: Annotated[int, typer.Option(help="Days of simulated history.")] = 90,
    seed: int = 7,
    fashion_mnist_dir: FmnistDir = None,
    max_bad_share: MaxBad = None,
    append_days: Annotated[int, typer.Option(help="Add the next N days of events to the dataset in OUT "
                                                  "(the generation flags are then read from it).")] = 0,
) -> None:
    """Build the embedded fashion-shop dataset from the real Fashion-MNIST catalog."""
    from pipelines.fashion_mnist import FILES, FashionMNISTError, load_fashion_mnist
    from pipelines.fashion_shop import FashionShopConfig, generate
    from pipelines.fashion_shop import append_days as append

    if not 1 <= items <= 70_000 or users < 1 or days < 1:
        raise _fail("--items must be in 1..70000, --users and --days at least 1", 2)
    s = get_settings()
    t0 = time.perf_counter()
    try:
        fm = load_fashion_mnist(fashion_mnist_dir or s.fashion_mnist_dir, base_url=s.fashion_mnist_url,
                                checksums=None if s.fashion_mnist_verify else dict.fromkeys(FILES))
    except FashionMNISTError as e:
        raise _fail(str(e)) from e
    if append_days:
        if not (out / "dataset.json").is_file():
            raise _fail(f"{out / 'dataset.json'}: no fashion-shop dataset to append to (build one first)")
        raw = append(out, append_days, fm)
        _ingest(raw["items"], raw["users"], raw["events"], out, out, max_bad_share)
        console.print(f"appended {append_days} days ({raw['new_events']:,} events) to {out} in "
                      f"{time.perf_counter() - t0:.1f}s")
        return
    cfg = FashionShopConfig(seed=seed, n_users=users, n_items=items, days=days)
    raw = generate(cfg, fm, out)
    _ingest(raw["items"], raw["users"], raw["events"], out, out, max_bad_share)
    console.print(f"fashion-shop written to {out} in {time.perf_counter() - t0:.1f}s")


@data_app.command("movielens")
def movielens(
    source: Annotated[Path, typer.Option(help="Folder with u.data/u.item[/u.user] or ml-100k.* "
                                              "atomic files, or the recbole wheel.")],
    out: Annotated[Path, typer.Option(help="Dataset directory to write.")] = Path("data/movielens-100k"),
    max_bad_share: MaxBad = None,
) -> None:
    """Import MovieLens-100K (ratings become implicit events)."""
    from pipelines.movielens import read_movielens

    try:
        items, users, events = read_movielens(source)
    except (FileNotFoundError, ValueError) as e:
        raise _fail(str(e)) from e
    _ingest(items, users, events, out, None, max_bad_share)
    (out / "dataset.json").write_text(json.dumps({"dataset": "movielens-100k", "source": str(source)},
                                                 indent=2) + "\n")


@data_app.command("import")
def import_custom(
    items: Annotated[Path, typer.Option(help="Items CSV/Parquet.")],
    events: Annotated[Path, typer.Option(help="Events CSV/Parquet.")],
    out: Annotated[Path, typer.Option(help="Dataset directory to write.")],
    users: Annotated[Path | None, typer.Option(help="Users CSV/Parquet (default: from events).")] = None,
    images: Annotated[Path | None, typer.Option(help="Folder the items' image paths are relative to.")] = None,
    max_bad_share: MaxBad = None,
) -> None:
    """Import your own catalog through the same validation as the built-in datasets."""
    from pipelines.custom import read_any

    try:
        frames = [read_any(p) if p is not None else None for p in (items, users, events)]
    except (FileNotFoundError, ValueError) as e:
        raise _fail(str(e)) from e
    _ingest(*frames, out, images, max_bad_share, copy_images=True)
    (out / "dataset.json").write_text(json.dumps({"dataset": "custom", "items": str(items),
                                                 "events": str(events)}, indent=2) + "\n")


@data_app.command("validate")
def validate_dir(
    root: Annotated[Path, typer.Argument(help="Dataset directory with items/users/events.parquet.")],
    max_bad_share: MaxBad = None,
) -> None:
    """Re-check a dataset directory against the canonical schemas (read-only)."""
    from pipelines.tables import read_dataset
    from pipelines.validate import DataValidationError, check_threshold, validate

    try:
        t = read_dataset(root)
    except FileNotFoundError as e:
        raise _fail(str(e)) from e
    share = _share(max_bad_share)
    v = validate(t["items"], t["users"], t["events"], image_root=root)
    for r in v.reports.values():
        console.print(f"  {r.table:<7} {r.n_rows:>10,} rows, bad {r.n_bad} {r.reasons or ''}")
    try:
        check_threshold(v, share)
    except DataValidationError as e:
        raise _fail(str(e)) from e


@data_app.command("split")
def split(
    root: Annotated[Path, typer.Argument(help="Dataset directory.")],
    kind: Annotated[str, typer.Option(help="temporal-user | random-user | temporal-global")] = "temporal-user",
    seed: int = 0,
) -> None:
    """Write DIR/splits/KIND/{train,valid,test}.parquet."""
    from pipelines.splits import KINDS, split_events, write_splits
    from pipelines.tables import read_table

    if kind not in KINDS:
        raise _fail(f"unknown split kind {kind!r}; choose from {', '.join(KINDS)}", 2)
    events_path = root / "events.parquet"
    if not events_path.is_file():
        raise _fail(f"{events_path}: no such file (build or import a dataset first)")
    parts = split_events(read_table(events_path), kind, seed=seed)
    write_splits(parts, root / "splits" / kind)
    console.print("  " + ", ".join(f"{k}: {len(v):,}" for k, v in parts.items()) +
                  f" -> {root / 'splits' / kind}")


# ----------------------------------------------------------------------------- vision

Checkpoint = Annotated[Path, typer.Option(help="A vision checkpoint (RUN/best.pt).")]
DataDir = Annotated[Path, typer.Option("--data", help="Dataset directory.")]


def _temperature(checkpoint: Path) -> float:
    """The temperature fitted by `vision evaluate` next to the checkpoint, else 1."""
    metrics = checkpoint.parent / "eval" / "metrics.json"
    return json.loads(metrics.read_text())["temperature"] if metrics.is_file() else 1.0


@vision_app.command("train")
def vision_train(
    data: DataDir = Path("data/fashion-shop"),
    run: Annotated[Path, typer.Option(help="Run directory (resumes when it holds last.pt).")] = Path("runs/vision"),
    config: Annotated[Path | None, typer.Option(help="YAML recipe, e.g. vision/configs/cpu.yaml.")] = None,
    model: Annotated[str | None, typer.Option(help="Registered architecture.")] = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda")] = None,
    max_items: Annotated[int | None, typer.Option(help="Subsample the catalog (smoke runs).")] = None,
) -> None:
    """Train (or resume) the image CNN. Under torchrun, use `python -m vision.train CONFIG`."""
    from vision.train import TrainConfig, set_threads, train

    if not (data / "items.parquet").is_file():
        raise _fail(f"{data / 'items.parquet'}: no such file (build a dataset first)")
    if config is None:
        import torch

        config = Path(__file__).parents[1] / "vision" / "configs" / ("gpu.yaml" if torch.cuda.is_available()
                                                                     else "cpu.yaml")
    set_threads()
    try:
        cfg = TrainConfig.from_yaml(config, data_dir=str(data), run_dir=str(run), model=model, epochs=epochs,
                                    batch_size=batch_size, device=device, max_items=max_items)
        best = train(cfg)
    except (ValueError, KeyError) as e:
        raise _fail(str(e)) from e
    console.print(f"best checkpoint: {best}")


@vision_app.command("evaluate")
def vision_evaluate(
    checkpoint: Checkpoint,
    data: DataDir = Path("data/fashion-shop"),
    out: Annotated[Path | None, typer.Option(help="Default: CHECKPOINT_DIR/eval.")] = None,
    part: Annotated[str, typer.Option(help="test | valid")] = "test",
) -> None:
    """Accuracy, per-class P/R/F1, confusion matrix (CSV + PNG), ECE before/after temperature scaling."""
    from vision.evaluate import evaluate

    m = evaluate(checkpoint, data, out or checkpoint.parent / "eval", part=part)
    console.print(f"{part}: accuracy {m['accuracy']:.4f}, macro F1 {m['macro_f1']:.4f}, ECE {m['ece']:.4f} -> "
                  f"{m['calibrated']['ece']:.4f} at T={m['temperature']:.3f}")


@vision_app.command("embed")
def vision_embed(
    checkpoint: Checkpoint,
    data: DataDir = Path("data/fashion-shop"),
    out: Annotated[Path | None, typer.Option(help="Default: CHECKPOINT_DIR/embed.")] = None,
    min_confidence: float = 0.9,
) -> None:
    """Image embeddings + predictions for the whole catalog, and the suspected-mislabeled list."""
    from vision.embed import embed_catalog, suspected_mislabeled

    out = out or checkpoint.parent / "embed"
    pred = embed_catalog(checkpoint, data, out, temperature=_temperature(checkpoint))
    sus = suspected_mislabeled(pred, min_confidence=min_confidence)
    sus.to_csv(out / "suspected_mislabeled.csv", index=False)
    console.print(f"{len(pred):,} items embedded -> {out}; {len(sus)} suspected mislabeled "
                  f"({out / 'suspected_mislabeled.csv'})")


@vision_app.command("export")
def vision_export(
    checkpoint: Checkpoint,
    out: Annotated[Path, typer.Option(help="ONNX file to write.")] = Path("runs/vision/image_model.onnx"),
    int8: Annotated[bool, typer.Option(help="Also write an INT8 model (needs --data for calibration).")] = False,
    data: DataDir = Path("data/fashion-shop"),
) -> None:
    """ONNX with dynamic batch + metadata, onnx.checker, parity vs PyTorch (fails above 1e-4)."""
    from vision.export import ParityError, export_image_model, quantize_int8

    try:
        r = export_image_model(checkpoint, out, temperature=_temperature(checkpoint))
    except ParityError as e:
        raise _fail(str(e)) from e
    console.print(f"{out}: max |onnx - torch| {r['max_abs_diff']:.2e}")
    if int8:
        from vision.data import load_image_set, to_tensor
        from vision.preprocess import PreprocessSpec

        spec = PreprocessSpec()
        x, _ = load_image_set(data, spec).subset("train")
        q = quantize_int8(out, out.with_name(out.stem + ".int8.onnx"), to_tensor(x[:512], spec).numpy())
        console.print(f"{q}: INT8 (calibrated on 512 training images)")


# ----------------------------------------------------------------------------- recsys

Split = Annotated[str, typer.Option(help="Split under DATA/splits/.")]


@recsys_app.command("train")
def recsys_train(
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
    from recsys.train import RecTrainConfig, train_two_tower

    try:
        cfg = RecTrainConfig.from_yaml(config, data_dir=str(data), run_dir=str(run), split=split, epochs=epochs,
                                       batch_size=batch_size, device=device,
                                       image_vectors=str(image_vectors) if image_vectors else None)
        best = train_two_tower(cfg)
    except (ValueError, FileNotFoundError) as e:
        raise _fail(str(e)) from e
    console.print(f"best checkpoint: {best}")


@recsys_app.command("evaluate")
def recsys_evaluate(
    checkpoint: Annotated[Path, typer.Option(help="Two-tower checkpoint (RUN/best.pt).")],
    data: DataDir = Path("data/fashion-shop"),
    split: Split = "temporal-user",
    image_vectors: Annotated[Path | None, typer.Option(help="The image vectors the model was trained with.")] = None,
    baselines: Annotated[bool, typer.Option(help="Also rank with popularity, per-category, ItemKNN, EASE.")] = True,
) -> None:
    """Full-catalog test metrics (train+valid masked) for the model and the baselines, one table."""
    from recsys.baselines import BASELINES
    from recsys.data import load_rec_data
    from recsys.evaluate import evaluate_ranking, segment_metrics, two_tower_scores
    from recsys.train import load_two_tower

    d = load_rec_data(data, split=split, image_vectors=image_vectors)
    model, _, _ = load_two_tower(checkpoint)
    rows = {"two-tower": evaluate_ranking(two_tower_scores(model, d, d.test), d.test, d)}
    if baselines:
        rows |= {name: evaluate_ranking(fit(d, d.test), d.test, d) for name, fit in BASELINES.items()}
    segments = segment_metrics(two_tower_scores(model, d, d.test), d.test, d)
    (checkpoint.parent / "test_metrics.json").write_text(json.dumps({"models": rows, "two-tower segments": segments},
                                                                    indent=2) + "\n")
    cols = ["ndcg@10", "recall@20", "recall@100", "mrr@10", "hit@10", "coverage", "novelty", "gini"]
    console.print("model".ljust(24) + "".join(c.rjust(11) for c in cols))
    for name, m in rows.items():
        console.print(name.ljust(24) + "".join(f"{m[c]:11.4f}" for c in cols))
    console.print("\ntwo-tower by segment".ljust(34) + "users".rjust(8) + "".join(
        c.rjust(11) for c in ("ndcg@10", "recall@20", "recall@100")))
    for name, m in segments.items():
        console.print(name.ljust(33) + f"{m['users']:8d}" + "".join(
            f"{m[c]:11.4f}" for c in ("ndcg@10", "recall@20", "recall@100")))


@recsys_app.command("export")
def recsys_export(
    checkpoint: Annotated[Path, typer.Option(help="Two-tower checkpoint (RUN/best.pt).")],
    data: DataDir = Path("data/fashion-shop"),
    out: Annotated[Path | None, typer.Option(help="Default: CHECKPOINT_DIR/export.")] = None,
    image_vectors: Annotated[Path | None, typer.Option(help="The image vectors the model was trained with.")] = None,
) -> None:
    """user_tower.onnx + item_tower.onnx (dynamic batch, parity ≤ 1e-4), item_vectors.npy, features.json."""
    from recsys.data import load_rec_data
    from recsys.export import export_towers
    from recsys.train import load_two_tower
    from vision.export import ParityError

    d = load_rec_data(data, image_vectors=image_vectors)
    model, _, _ = load_two_tower(checkpoint)
    try:
        r = export_towers(model, d, out or checkpoint.parent / "export")
    except ParityError as e:
        raise _fail(str(e)) from e
    console.print(f"exported; max |onnx - torch| {r['max_abs_diff']:.2e}; item vectors {r['item_vectors']}")


@recsys_app.command("ranker")
def recsys_ranker(
    checkpoint: Annotated[Path, typer.Option(help="Two-tower checkpoint (RUN/best.pt) whose candidates to rank.")],
    data: DataDir = Path("data/fashion-shop"),
    split: Split = "temporal-user",
    image_vectors: Annotated[Path | None, typer.Option(help="The image vectors the model was trained with.")] = None,
    out: Annotated[Path | None, typer.Option(help="Default: CHECKPOINT_DIR/ranker.")] = None,
    candidates: int = 200,
    valid_users: Annotated[int, typer.Option(help="Validation-period users to learn from.")] = 20_000,
) -> None:
    """Train the DCN-v2 ranker on validation-period lists, report its NDCG@10 lift over the tower's order
    on the test period (same candidates), export ranker.onnx with a parity check."""
    from vision.runtime import ParityError

    from recsys.data import load_rec_data
    from recsys.ranker import RankerTrainConfig, train_evaluate_export
    from recsys.train import load_two_tower

    out = out or checkpoint.parent / "ranker"
    d = load_rec_data(data, split=split, image_vectors=image_vectors, max_eval_users=valid_users)
    tt, _, _ = load_two_tower(checkpoint)
    try:
        lift = train_evaluate_export(tt, d, data, split, RankerTrainConfig(candidates=candidates), out)
    except (ValueError, ParityError) as e:
        raise _fail(str(e)) from e
    diff = lift["onnx_parity"]
    console.print(f"test NDCG@10 on the same {candidates} candidates: tower {lift['tower']['ndcg@10']:.4f} -> "
                  f"ranker {lift['ranker']['ndcg@10']:.4f} (x{lift['ndcg@10_lift']:.3f}); {out / 'ranker.onnx'} "
                  f"parity {diff:.1e}")


# ----------------------------------------------------------------------------- index


@index_app.command("build")
def index_build(
    vectors: Annotated[Path, typer.Option(help="(N, D) float32 .npy of unit vectors (item or image vectors).")],
    out: Annotated[Path, typer.Option(help="index file to write; its settings go to OUT.json.")] = Path("index.faiss"),
    queries: Annotated[Path | None, typer.Option(help="(Q, D) .npy of tuning queries (e.g. user vectors); "
                                                      "default: 500 of the vectors.")] = None,
    target_recall: float = 0.95,
    k: int = 100,
    kind: Annotated[str, typer.Option(help="auto | flat | ivf | ivfpq")] = "auto",
) -> None:
    """Build the inner-product index (kind by size), tune nprobe to the recall@k target against exact search."""
    import numpy as np

    from pipelines.assemble import build_index

    try:
        x = np.load(vectors).astype(np.float32)
        if x.ndim != 2 or not len(x):
            raise ValueError(f"{vectors}: expected a non-empty (N, D) array, got shape {x.shape}")
        q = np.load(queries).astype(np.float32) if queries else x[np.random.default_rng(0).choice(
            len(x), min(500, len(x)), replace=False)]
        if q.ndim != 2 or q.shape[1] != x.shape[1]:
            raise ValueError(f"queries have shape {q.shape}, vectors {x.shape}: dimensions differ")
        vi = build_index(x, q, target_recall=target_recall, k=k, kind=kind)
    except (ValueError, OSError) as e:
        raise _fail(str(e)) from e
    vi.save(out)
    out.with_name(out.name + ".json").write_text(json.dumps(vi.info.to_dict(), indent=2) + "\n")
    i = vi.info
    console.print(f"{out}: {i.kind} over {i.n:,} x {i.dim}, nlist {i.nlist}, nprobe {i.nprobe}; recall@{i.k} "
                  f"{i.recall_at_k:.3f} (target {i.target_recall}); {i.qps_single:.0f} single-query QPS")


# ----------------------------------------------------------------------------- bundle

Artifacts = Annotated[Path, typer.Option(help="Artifacts directory (holds bundles/ and CURRENT).")]


@bundle_app.command("list")
def bundle_list(artifacts: Artifacts = Path("artifacts")) -> None:
    """Published versions, oldest first; the one CURRENT names is marked."""
    from serving.bundle import BundleError, bundles_dir, current_version, list_bundles, verify_bundle

    cur = current_version(artifacts)
    for v in list_bundles(artifacts):
        try:
            verify_bundle(bundles_dir(artifacts) / v)
            state = "ok"
        except BundleError as e:
            state = f"INVALID: {e}"
        console.print(f"{'*' if v == cur else ' '} {v}  {state}")


@bundle_app.command("build")
def bundle_build(
    towers: Annotated[Path, typer.Option(help="`recsys export` directory (towers, item vectors, features.json).")],
    ranker: Annotated[Path, typer.Option(help="ranker.onnx from `recsys ranker`.")],
    image_model: Annotated[Path, typer.Option(help="image_model.onnx from `vision export`.")],
    image_vectors: Annotated[Path, typer.Option(help="image_vectors.npy from `vision embed`.")],
    data: DataDir = Path("data/fashion-shop"),
    artifacts: Artifacts = Path("artifacts"),
    promote_it: Annotated[bool, typer.Option("--promote/--no-promote", help="Point CURRENT at it.")] = True,
    target_recall: float = 0.95,
) -> None:
    """Assemble a bundle from trained artifacts: catalog, user states, item stats, tuned indexes, models."""
    from pipelines.assemble import TrainedModels, assemble_bundle
    from serving.bundle import BundleError, promote

    def read(p: Path) -> dict:
        return json.loads(p.read_text()) if p.is_file() else {}

    metrics = {"ranker": read(ranker.parent / "lift.json"), "two_tower": read(towers.parent / "test_metrics.json"),
               "vision": read(image_model.parent / "eval" / "metrics.json")}
    models = TrainedModels(towers, ranker, image_model, image_vectors, metrics, configs={})
    for p in (towers / "features.json", ranker, image_model, image_vectors):
        if not p.is_file():
            raise _fail(f"{p}: no such file")
    try:
        path = assemble_bundle(artifacts, data, models, target_recall=target_recall)
        if promote_it:
            promote(artifacts, path.name)
    except (BundleError, ValueError) as e:
        raise _fail(str(e)) from e
    console.print(f"bundle {path}{' (CURRENT)' if promote_it else ''}")


@bundle_app.command("verify")
def bundle_verify(version: str, artifacts: Artifacts = Path("artifacts")) -> None:
    """Check a bundle's manifest and every file's sha256."""
    from serving.bundle import BundleError, bundles_dir, verify_bundle

    try:
        m = verify_bundle(bundles_dir(artifacts) / version)
    except BundleError as e:
        raise _fail(str(e)) from e
    console.print(f"{version}: ok ({len(m['files'])} files, created {m['created_at']})")


@bundle_app.command("promote")
def bundle_promote(version: str, artifacts: Artifacts = Path("artifacts")) -> None:
    """Verify VERSION and point CURRENT at it atomically."""
    from serving.bundle import BundleError, promote

    try:
        promote(artifacts, version)
    except BundleError as e:
        raise _fail(str(e)) from e
    console.print(f"CURRENT -> {version}")


@bundle_app.command("rollback")
def bundle_rollback(artifacts: Artifacts = Path("artifacts")) -> None:
    """Point CURRENT at the newest verified version older than the current one."""
    from serving.bundle import BundleError, rollback

    try:
        v = rollback(artifacts)
    except BundleError as e:
        raise _fail(str(e)) from e
    console.print(f"CURRENT -> {v}")


@app.command()
def serve(
    artifacts: Artifacts = Path("artifacts"),
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes (each loads the bundle).")] = 1,
    admin_token: Annotated[str | None, typer.Option(envvar="VITRINE_ADMIN_TOKEN", help="Enables admin endpoints.")]
    = None,
    watch: Annotated[float, typer.Option(help="Poll CURRENT every N seconds and reload on change (0 = off).")] = 0.0,
) -> None:
    """Start the HTTP service on the bundle CURRENT names (OpenAPI page at /docs)."""
    import os

    import uvicorn

    from serving.bundle import current_version

    if current_version(artifacts) is None:
        console.print(f"[yellow]warning:[/] {artifacts / 'CURRENT'} names no bundle yet; /readyz stays 503 until one "
                      "is promoted and reloaded")
    os.environ["VITRINE_ARTIFACTS_DIR"] = str(artifacts)
    os.environ["VITRINE_WATCH_INTERVAL_S"] = str(watch)
    if admin_token:
        os.environ["VITRINE_ADMIN_TOKEN"] = admin_token
    uvicorn.run("serving.app:create_app", factory=True, host=host, port=port, workers=workers,
                log_level="warning", access_log=False)


@app.command()
def nightly(
    data: DataDir = Path("data/fashion-shop"),
    artifacts: Artifacts = Path("artifacts"),
    config: Annotated[Path | None, typer.Option(help="YAML with NightlyConfig fields, e.g. "
                                                     "pipelines/configs/nightly-cpu.yaml.")] = None,
    force: Annotated[bool, typer.Option(help="Publish even when the quality gate refuses (logged).")] = False,
) -> None:
    """Validate, train, export, build indexes, gate, publish, reload, report. Re-running after a crash
    resumes at the first incomplete step. Exit codes: 0 published, 1 error, 2 bad data, 3 refused by
    the quality gate, 75 another run holds the lock."""
    from pipelines.nightly import EXIT_ERROR, NightlyConfig, NightlyError, run_nightly

    try:
        cfg = NightlyConfig.from_yaml(config)
    except (ValueError, OSError) as e:
        raise _fail(str(e), 2) from e
    try:
        s = run_nightly(data, artifacts, cfg, force=force)
    except NightlyError as e:
        raise _fail(str(e), e.code) from e
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        log.exception("nightly run failed")
        raise _fail(str(e), EXIT_ERROR) from e
    for st in s["steps"]:
        console.print(f"  {st['step']:<10} {st['status']:<16} {st['seconds']:>7.1f} s")
    console.print(f"published {s['version']} ({s['gate']['reason']}); report: {s['report']}")


@app.command()
def demo(
    data: Annotated[Path, typer.Option(help="Where the fashion-shop dataset lives.")] = Path("data/fashion-shop"),
    artifacts: Artifacts = Path("artifacts"),
    port: int = 8000,
    serve_it: Annotated[bool, typer.Option("--serve/--no-serve", help="Start the service at the end.")] = True,
) -> None:
    """The main job: build fashion-shop (when missing), run the nightly pipeline with the CPU-sized
    config (CUDA used when present), and serve the result on http://127.0.0.1:PORT."""
    from pipelines.nightly import NightlyConfig, NightlyError, run_nightly
    from serving.bundle import current_version

    t0 = time.perf_counter()
    if not (data / "events.parquet").is_file():
        fashion_shop(out=data)
    else:
        console.print(f"fashion-shop already in {data}")
    cfg = NightlyConfig.from_yaml(Path(__file__).parent / "configs" / "nightly-cpu.yaml")
    try:
        s = run_nightly(data, artifacts, cfg)
        console.print(f"nightly: published {s['version']} in {time.perf_counter() - t0:.0f} s")
    except NightlyError as e:
        if current_version(artifacts) is None:
            raise _fail(str(e), e.code) from e
        console.print(f"[yellow]nightly did not publish ({e}); serving {current_version(artifacts)}[/]")
    import pandas as pd

    shopper = pd.read_parquet(data / "events.parquet", columns=["user_id"])["user_id"].iloc[-1]
    item = pd.read_parquet(data / "items.parquet", columns=["item_id", "image"]).iloc[0]
    base = f"http://127.0.0.1:{port}"
    body = json.dumps({"user_id": str(shopper), "k": 5})
    console.print(f"ready in {time.perf_counter() - t0:.0f} s. Try:\n"
                  f"  open {base}/docs\n"
                  f"  curl -s -X POST {base}/v1/recommendations -H 'content-type: application/json' -d '{body}'\n"
                  f"  curl -s -X POST {base}/v1/images/classify -F image=@{data / item['image']}\n"
                  f"  curl -s '{base}/v1/items/{item['item_id']}/similar?by=image&k=5'\n"
                  f"  the merchandisers' report: {artifacts / 'reports'}/")
    if serve_it:
        serve(artifacts=artifacts, port=port)


if __name__ == "__main__":
    app()
