"""`vitrine data import`: a shop's own export, mapped (`--map`), proposed (`--infer`) or appended to
an existing dataset (`--append`). The work is in pipelines/mapping.py, custom.py and incremental.py."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli.common import MaxBad, bad_share, console, fail
from pipelines.custom import ingest, read_any
from pipelines.incremental import append_export
from pipelines.mapping import ImportMap, MappingError, apply_map, infer_map
from pipelines.validate import DataValidationError, Validated


def refused(e: DataValidationError, out: Path) -> typer.Exit:
    """One error line, naming the rejects file when rows were checked (too many bad)."""
    rejects = out / "rejected.csv"
    return fail(f"{e}" + (f" (rejected rows with reasons: {rejects})" if rejects.is_file() else ""))


def print_validation(v: Validated, out: Path, label: str = "") -> None:
    """Rows kept per table, rejected counts by reason, where the rejected rows are."""
    for r in v.reports.values():
        extra = f" — rejected {r.n_bad}: {r.reasons}" if r.n_bad else ""
        console.print(f"  {r.table:<7} {r.n_rows - r.n_bad:>10,} rows{label}{extra}")
    if len(v.rejected):
        console.print(f"  rejected rows with reasons: {out / 'rejected.csv'}")


def import_shop(
    events: Annotated[Path, typer.Option(help="Events CSV/Parquet.")],
    out: Annotated[Path, typer.Option(help="Dataset directory to write (or to append to).")],
    items: Annotated[Path | None, typer.Option(help="Items CSV/Parquet (optional with --append).")] = None,
    users: Annotated[Path | None, typer.Option(help="Users CSV/Parquet (default: from events).")] = None,
    images: Annotated[Path | None, typer.Option(help="Folder the items' image paths are relative to.")] = None,
    map_: Annotated[list[str] | None, typer.Option(
        "--map", help="A mapping YAML file, or SHOP_COLUMN=field, event:SHOP_NAME=view|cart|purchase|drop, "
                      "ts-format=STRPTIME, ts-timezone=ZONE (repeatable; docs/your-data.md).")] = None,
    infer: Annotated[bool, typer.Option(help="Propose a mapping from the headers and a sample of rows, "
                                             "write it to OUT/import-map.yaml for review, import nothing.")] = False,
    append: Annotated[bool, typer.Option(help="Add this export to the dataset in OUT: new events, new or "
                                              "changed items, removed items; the same file twice adds nothing.")
                      ] = False,
    max_bad_share: MaxBad = None,
) -> None:
    """Import your own catalog through the same validation as the built-in datasets."""
    t0 = time.perf_counter()
    if items is None and not append:
        raise fail("--items is required (it may be left out only with --append)", 2)
    try:
        m = ImportMap.from_args(map_ or [])
    except MappingError as e:
        raise fail(str(e), 2) from e
    sources = {"items": items, "events": events, "users": users}  # the order validation reports in
    try:
        raw = {t: read_any(p) if p is not None else None for t, p in sources.items()}
    except (FileNotFoundError, ValueError) as e:
        raise fail(str(e)) from e
    if infer:
        proposed = infer_map(raw)
        out.mkdir(parents=True, exist_ok=True)
        (out / "import-map.yaml").write_text(proposed.to_yaml())
        console.print(proposed.to_yaml().rstrip())
        console.print(f"proposed mapping written to {out / 'import-map.yaml'}: review it, then import with "
                      f"--map {out / 'import-map.yaml'}")
        return
    frames, dropped = {}, {}
    try:
        for t, df in raw.items():
            frames[t], d = (apply_map(t, df, m, str(sources[t])) if df is not None else (None, {}))
            dropped |= d
    except MappingError as e:
        raise fail(str(e)) from e
    if dropped:
        console.print(f"  events dropped by the mapping: {dropped}")
    try:
        if append:
            if not (out / "events.parquet").is_file():
                raise fail(f"{out}: no dataset to append to (import one first, without --append)", 2)
            v, rep = append_export(out, frames["items"], frames["users"], frames["events"], images,
                                   bad_share(max_bad_share))
            console.print(f"  appended: {rep.events_added:,} events ({rep.events_already_there:,} already there), "
                          f"{rep.items_added:,} new items, {rep.items_updated:,} changed, {rep.items_removed:,} "
                          f"removed, {rep.users_added:,} new shoppers, {rep.rejected:,} rows rejected")
        else:
            v = ingest(frames["items"], frames["users"], frames["events"], out, images, bad_share(max_bad_share),
                       copy=True)
            (out / "dataset.json").write_text(json.dumps({"dataset": "custom", "items": str(items),
                                                         "events": str(events)}, indent=2) + "\n")
    except DataValidationError as e:
        raise refused(e, out) from e
    print_validation(v, out, " this import")
    console.print(f"{out}: {len(v.items):,} items, {len(v.users):,} shoppers, {len(v.events):,} events "
                  f"({time.perf_counter() - t0:.1f} s)")
