"""What every command group shares: the console, the one-line failure, and the option types."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from pipelines.settings import get_settings

console = Console(stderr=True, width=160)


def fail(msg: str, code: int = 1) -> typer.Exit:
    """Print one error line (plus any hint lines in ``msg``) and return the Exit to raise."""
    console.print(f"[bold red]error:[/] {msg}")
    return typer.Exit(code)


T = TypeVar("T")


def run_or_fail(fn: Callable[[], T], *errors: type[Exception]) -> T:
    """``fn()``; any of ``errors`` becomes one error line and exit 1."""
    try:
        return fn()
    except errors as e:
        raise fail(str(e)) from e


def bad_share(max_bad_share: float | None) -> float:
    return get_settings().max_bad_share if max_bad_share is None else max_bad_share


def artifacts_dir(artifacts: Path | None) -> Path:
    """``--artifacts``, else ``VITRINE_ARTIFACTS_DIR`` (the same setting `serve` and `nightly` honour)."""
    return artifacts if artifacts is not None else get_settings().artifacts_dir


MaxBad = Annotated[float | None, typer.Option(help="Fail when a table's rejected share exceeds this "
                                                   "(default VITRINE_MAX_BAD_SHARE).")]
FmnistDir = Annotated[Path | None, typer.Option(help="Folder with the Fashion-MNIST *-ubyte.gz files.")]
DataDir = Annotated[Path, typer.Option("--data", help="Dataset directory.")]
Checkpoint = Annotated[Path, typer.Option(help="A vision checkpoint (RUN/best.pt).")]
TwoTowerCheckpoint = Annotated[Path, typer.Option("--checkpoint", help="Two-tower checkpoint (RUN/best.pt).")]
Split = Annotated[str, typer.Option(help="Split under DATA/splits/.")]
ImageVectors = Annotated[Path | None, typer.Option(help="The image vectors the model was trained with.")]
Artifacts = Annotated[Path | None, typer.Option(help="Artifacts directory (holds bundles/ and CURRENT); "
                                                     "default VITRINE_ARTIFACTS_DIR or ./artifacts.")]
