"""`vitrine data ...`: build, import, validate and split datasets."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from pipelines.cli.common import FmnistDir, MaxBad, bad_share, console, fail
from pipelines.cli.shop_import import import_shop, print_validation, refused
from pipelines.custom import ingest
from pipelines.fashion_mnist import FILES, FashionMNISTError, load_fashion_mnist
from pipelines.fashion_shop import append_days as append
from pipelines.fashion_shop import generate
from pipelines.fashion_world import FUNNELS, FashionShopConfig
from pipelines.movielens import read_movielens
from pipelines.settings import get_settings
from pipelines.splits import KINDS, split_events, write_splits
from pipelines.tables import read_dataset, read_table
from pipelines.validate import DataValidationError, check_threshold, validate

app = typer.Typer(help="Build, import, validate and split datasets.", no_args_is_help=True)


def _ingest(items: pd.DataFrame, users: pd.DataFrame | None, events: pd.DataFrame, out: Path,
            image_root: Path | None, max_bad_share: float | None, *, copy: bool = False) -> None:
    """:func:`pipelines.custom.ingest`, then a summary (or one error line naming the rejects file)."""
    try:
        v = ingest(items, users, events, out, image_root, bad_share(max_bad_share), copy=copy)
    except DataValidationError as e:
        raise refused(e, out) from e
    print_validation(v, out)


@app.command("fashion-shop")
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
    funnels: Annotated[bool, typer.Option(help="Shoppers come back to what they viewed, return to left carts, "
                                               "re-buy basics and buy complements together "
                                               "(pipelines/fashion_world.py FUNNELS).")] = False,
) -> None:
    """Build the embedded fashion-shop dataset from the real Fashion-MNIST catalog."""
    if not 1 <= items <= 70_000 or users < 1 or days < 1:
        raise fail("--items must be in 1..70000, --users and --days at least 1", 2)
    s = get_settings()
    t0 = time.perf_counter()
    try:
        fm = load_fashion_mnist(fashion_mnist_dir or s.fashion_mnist_dir, base_url=s.fashion_mnist_url,
                                checksums=None if s.fashion_mnist_verify else dict.fromkeys(FILES))
    except FashionMNISTError as e:
        raise fail(str(e)) from e
    if append_days:
        if not (out / "dataset.json").is_file():
            raise fail(f"{out / 'dataset.json'}: no fashion-shop dataset to append to (build one first)")
        raw = append(out, append_days, fm)
        _ingest(raw["items"], raw["users"], raw["events"], out, out, max_bad_share)
        console.print(f"appended {append_days} days ({raw['new_events']:,} events) to {out} in "
                      f"{time.perf_counter() - t0:.1f}s")
        return
    raw = generate(FashionShopConfig(seed=seed, n_users=users, n_items=items, days=days,
                                     **(FUNNELS if funnels else {})), fm, out)
    _ingest(raw["items"], raw["users"], raw["events"], out, out, max_bad_share)
    console.print(f"fashion-shop written to {out} in {time.perf_counter() - t0:.1f}s")


@app.command("movielens")
def movielens(
    source: Annotated[Path, typer.Option(help="Folder with u.data/u.item[/u.user] or ml-100k.* "
                                              "atomic files, or the recbole wheel.")],
    out: Annotated[Path, typer.Option(help="Dataset directory to write.")] = Path("data/movielens-100k"),
    max_bad_share: MaxBad = None,
) -> None:
    """Import MovieLens-100K (ratings become implicit events)."""
    try:
        items, users, events = read_movielens(source)
    except (FileNotFoundError, ValueError) as e:
        raise fail(str(e)) from e
    _ingest(items, users, events, out, None, max_bad_share)
    (out / "dataset.json").write_text(json.dumps({"dataset": "movielens-100k", "source": str(source)},
                                                 indent=2) + "\n")


app.command("import")(import_shop)


@app.command("validate")
def validate_dir(
    root: Annotated[Path, typer.Argument(help="Dataset directory with items/users/events.parquet.")],
    max_bad_share: MaxBad = None,
) -> None:
    """Re-check a dataset directory against the canonical schemas (read-only)."""
    try:
        t = read_dataset(root)
    except FileNotFoundError as e:
        raise fail(str(e)) from e
    v = validate(t["items"], t["users"], t["events"], image_root=root, pixel_cache=root / "cache")
    for r in v.reports.values():
        console.print(f"  {r.table:<7} {r.n_rows:>10,} rows, bad {r.n_bad} {r.reasons or ''}")
    try:
        check_threshold(v, bad_share(max_bad_share))
    except DataValidationError as e:
        raise fail(str(e)) from e


@app.command("split")
def split(
    root: Annotated[Path, typer.Argument(help="Dataset directory.")],
    kind: Annotated[str, typer.Option(help="temporal-user | random-user | temporal-global")] = "temporal-user",
    seed: int = 0,
) -> None:
    """Write DIR/splits/KIND/{train,valid,test}.parquet."""
    if kind not in KINDS:
        raise fail(f"unknown split kind {kind!r}; choose from {', '.join(KINDS)}", 2)
    events_path = root / "events.parquet"
    if not events_path.is_file():
        raise fail(f"{events_path}: no such file (build or import a dataset first)")
    parts = split_events(read_table(events_path), kind, seed=seed)
    write_splits(parts, root / "splits" / kind)
    console.print("  " + ", ".join(f"{k}: {len(v):,}" for k, v in parts.items()) + f" -> {root / 'splits' / kind}")
