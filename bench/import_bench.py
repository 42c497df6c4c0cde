"""Import speed (issue 15): the fashion-shop catalog (70,000 photos) imported as a shop's export,
every photo decoded and checked, then one more day's events appended.

    .venv/bin/python bench/import_bench.py --data data/fashion-shop --work /tmp/import-bench

The export is written from the dataset's own tables under foreign names (``sku``, ``customer_id``,
``action``, ``when`` in day-first local time, ``add_to_cart`` / ``order`` / ``page_view``), all events
but the last 24 hours' in ``events.csv`` and those in ``events-next.csv``; the photos are the dataset's
files. Each command runs as a user would run it (the `vitrine` CLI, a fresh process), timed end to
end; targets: import under 3 minutes, append under 10 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

NAMES = {"view": "page_view", "cart": "add_to_cart", "purchase": "order"}


def write_export(data: Path, out: Path) -> None:
    items = pd.read_parquet(data / "items.parquet")
    events = pd.read_parquet(data / "events.parquet")
    out.mkdir(parents=True, exist_ok=True)
    items.rename(columns={"item_id": "sku", "category": "product_type", "price": "price_eur", "image": "photo"})[
        ["sku", "title", "product_type", "price_eur", "in_stock", "photo"]].to_csv(out / "products.csv", sep=";",
                                                                                  index=False)
    local = events["ts"].dt.tz_convert("Europe/Paris")
    ev = pd.DataFrame({"customer_id": events["user_id"], "sku": events["item_id"],
                       "action": events["event"].map(NAMES), "when": local.dt.strftime("%d/%m/%Y %H:%M:%S")})
    last = events["ts"] > events["ts"].max() - pd.Timedelta(days=1)  # the last 24 hours: one day's events
    ev[~last].to_csv(out / "events.csv", index=False)
    ev[last].to_csv(out / "events-next.csv", index=False)
    (out / "map.yaml").write_text(
        "columns: {sku: item_id, product_type: category, price_eur: price, photo: image, customer_id: user_id, "
        "action: event, when: ts}\nevents: {page_view: view, add_to_cart: cart, order: purchase}\n"
        "timestamps: {format: '%d/%m/%Y %H:%M:%S', timezone: Europe/Paris}\n")
    print(f"export: {len(items):,} items, {int((~last).sum()):,} + {int(last.sum()):,} events")


def timed(args: list[str]) -> float:
    exe = Path(sys.executable).parent / "vitrine"
    t0 = time.perf_counter()
    r = subprocess.run([str(exe), *args], capture_output=True, text=True, env=os.environ | {"TQDM_DISABLE": "1"})
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"vitrine {' '.join(args)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    print((r.stdout + r.stderr).strip().splitlines()[-1])
    return wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path("data/fashion-shop"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/import-bench"))
    a = ap.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    export, out = a.work / "export", a.work / "dataset"
    write_export(a.data, export)
    common = ["--images", str(a.data.resolve()), "--map", str(export / "map.yaml"), "--out", str(out)]
    imp = timed(["data", "import", "--items", str(export / "products.csv"), "--events", str(export / "events.csv"),
                 *common])
    app = timed(["data", "import", "--append", "--events", str(export / "events-next.csv"), *common])
    again = timed(["data", "import", "--append", "--events", str(export / "events-next.csv"), *common])
    from vision.data import catalog_pixels
    from vision.preprocess import PreprocessSpec

    items = pd.read_parquet(out / "items.parquet")
    t0 = time.perf_counter()
    _, ok = catalog_pixels(out, items[items["image"].notna()], PreprocessSpec())  # what CNN training reads
    read = time.perf_counter() - t0
    print(f"{datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, {os.cpu_count()} cores; `{' '.join(sys.argv)}`")
    print("| step | wall time | target |\n| --- | --- | --- |")
    print(f"| import, 70,000 photos decoded and checked, copied into the dataset | {imp:.1f} s | < 180 s |")
    print(f"| `--append` of the last day's events | {app:.1f} s | < 10 s |")
    print(f"| the same `--append` again (adds nothing) | {again:.1f} s | |")
    print(f"| then the CNN's read of all {int(ok.sum()):,} photos (hashed, found in the import's cache) | "
          f"{read:.1f} s | |")


if __name__ == "__main__":
    main()
