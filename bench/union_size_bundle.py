"""A copy of a bundle whose recall channels add fewer candidates, for *throughput* runs only.

    .venv/bin/python bench/union_size_bundle.py --from bench/out/served-fashion/artifacts-all \
        --to bench/out/union-125 --item2item 50 --category-popular 25
    VITRINE_CANDIDATES=50 .venv/bin/python bench/serving_bench.py --artifacts bench/out/union-125

The serving path's cost depends on the sizes (tower candidates, channel lists, catalog, history),
not on the weights; so the copy keeps every model and table and only rewrites the channel
configuration in ``channels.npz``, publishing it through ``bundle.versions.write_bundle`` (checksums,
verification) under a new artifacts directory. Its ranker was trained on the original union: the
copy's *quality* means nothing. Quality at a union size comes from ``bench/served_path.py``
with ``--candidates`` and ``--ranker '{"channels": ...}'``, which trains on that union.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from bundle.versions import promote, write_bundle
    from recsys.channels import Channels

    ap = argparse.ArgumentParser()
    ap.add_argument("--from", dest="src", type=Path, required=True, help="An artifacts directory (its CURRENT).")
    ap.add_argument("--to", type=Path, required=True, help="A new artifacts directory.")
    ap.add_argument("--item2item", type=int, required=True)
    ap.add_argument("--category-popular", type=int, required=True)
    a = ap.parse_args()
    version = (a.src / "CURRENT").read_text().strip()
    src = a.src / "bundles" / version
    manifest = json.loads((src / "manifest.json").read_text())
    if "channels.npz" not in manifest["files"]:
        sys.exit(f"{src}: the bundle has no recall channels")
    if a.to.exists():
        shutil.rmtree(a.to)
    ch = Channels.load(src / "channels.npz")
    ch.config = replace(ch.config, item2item=a.item2item, category_popular=a.category_popular)
    with tempfile.TemporaryDirectory() as tmp:
        ch.save(Path(tmp) / "channels.npz")
        files = {name: src / name for name in manifest["files"]} | {"channels.npz": Path(tmp) / "channels.npz"}
        info = {k: v for k, v in manifest.items() if k not in ("version", "created_at", "files")}
        write_bundle(a.to, files, info | {"speed_copy_of": version}, version=version)
    promote(a.to, version)
    print(f"{a.to}: bundle {version} with channels {asdict(ch.config)} (speed runs only: its ranker was "
          "trained on the original union)")


if __name__ == "__main__":
    main()
