"""`vitrine index build`: a FAISS index over any vectors, tuned to a recall target."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.assemble import build_index_file
from pipelines.cli.common import console, fail

app = typer.Typer(help="FAISS indexes: build and tune.", no_args_is_help=True)


@app.command("build")
def build(
    vectors: Annotated[Path, typer.Option(help="(N, D) float32 .npy of unit vectors (item or image vectors).")],
    out: Annotated[Path, typer.Option(help="index file to write; its settings go to OUT.json.")] = Path("index.faiss"),
    queries: Annotated[Path | None, typer.Option(help="(Q, D) .npy of tuning queries (e.g. user vectors); "
                                                      "default: 500 of the vectors.")] = None,
    target_recall: float = 0.95,
    k: int = 100,
    kind: Annotated[str, typer.Option(help="auto | flat | ivf | ivfpq")] = "auto",
) -> None:
    """Build the inner-product index (kind by size), tune nprobe to the recall@k target against exact search."""
    try:
        i = build_index_file(vectors, out, queries, target_recall=target_recall, k=k, kind=kind).info
    except (ValueError, OSError) as e:
        raise fail(str(e)) from e
    console.print(f"{out}: {i.kind} over {i.n:,} x {i.dim}, nlist {i.nlist}, nprobe {i.nprobe}; recall@{i.k} "
                  f"{i.recall_at_k:.3f} (target {i.target_recall}); {i.qps_single:.0f} single-query QPS")
