"""`vitrine bundle ...`: build, list, verify, promote and roll back artifact bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bundle.versions import BundleError, bundles_dir, current_version, list_bundles, promote, rollback, verify_bundle
from pipelines.assemble import bundle_from_runs
from pipelines.cli.common import Artifacts, DataDir, artifacts_dir, console, fail

app = typer.Typer(help="Artifact bundles: build, list, verify, promote, roll back.", no_args_is_help=True)


@app.command("list")
def list_(artifacts: Artifacts = None) -> None:
    """Published versions, oldest first; the one CURRENT names is marked."""
    artifacts = artifacts_dir(artifacts)
    cur = current_version(artifacts)
    for v in list_bundles(artifacts):
        try:
            verify_bundle(bundles_dir(artifacts) / v)
            state = "ok"
        except BundleError as e:
            state = f"INVALID: {e}"
        console.print(f"{'*' if v == cur else ' '} {v}  {state}")


@app.command("build")
def build(
    towers: Annotated[Path, typer.Option(help="`recsys export` directory (towers, item vectors, features.json).")],
    ranker: Annotated[Path, typer.Option(help="ranker.onnx from `recsys ranker` (lift.json beside it).")],
    image_model: Annotated[Path, typer.Option(help="image_model.onnx from `vision export`, in the run whose "
                                                   "eval/metrics.json `vision evaluate` wrote.")],
    image_vectors: Annotated[Path, typer.Option(help="image_vectors.npy from `vision embed`.")],
    data: DataDir = Path("data/fashion-shop"),
    artifacts: Artifacts = None,
    promote_it: Annotated[bool, typer.Option("--promote/--no-promote", help="Point CURRENT at it.")] = True,
    target_recall: float = 0.95,
) -> None:
    """Assemble a bundle from trained artifacts: catalog, user states, item stats, tuned indexes, models,
    and the same manifest metrics as a nightly bundle (so the next night's quality gate compares)."""
    artifacts = artifacts_dir(artifacts)
    try:
        path = bundle_from_runs(artifacts, data, towers_dir=towers, ranker=ranker, image_model=image_model,
                                image_vectors=image_vectors, target_recall=target_recall)
        if promote_it:
            promote(artifacts, path.name)
    except (BundleError, ValueError) as e:
        raise fail(str(e)) from e
    console.print(f"bundle {path}{' (CURRENT)' if promote_it else ''}")


@app.command("verify")
def verify(version: str, artifacts: Artifacts = None) -> None:
    """Check a bundle's manifest and every file's sha256."""
    try:
        m = verify_bundle(bundles_dir(artifacts_dir(artifacts)) / version)
    except BundleError as e:
        raise fail(str(e)) from e
    console.print(f"{version}: ok ({len(m['files'])} files, created {m['created_at']})")


@app.command("promote")
def promote_cmd(version: str, artifacts: Artifacts = None) -> None:
    """Verify VERSION and point CURRENT at it atomically."""
    try:
        promote(artifacts_dir(artifacts), version)
    except BundleError as e:
        raise fail(str(e)) from e
    console.print(f"CURRENT -> {version}")


@app.command("rollback")
def rollback_cmd(artifacts: Artifacts = None) -> None:
    """Point CURRENT at the newest verified version older than the current one."""
    try:
        v = rollback(artifacts_dir(artifacts))
    except BundleError as e:
        raise fail(str(e)) from e
    console.print(f"CURRENT -> {v}")
