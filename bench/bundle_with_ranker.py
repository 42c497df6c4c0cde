"""A scratch artifacts directory whose CURRENT bundle is the live one with another ranker.onnx (its
manifest's hash updated; the other files hard-linked), to serve two rankers side by side in a bench.

    .venv/bin/python bench/bundle_with_ranker.py --artifacts artifacts --ranker R.onnx --out /tmp/art-new
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from bundle.versions import bundles_dir, current_version, sha256_file


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    ap.add_argument("--ranker", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    version = current_version(a.artifacts)
    src, dst = bundles_dir(a.artifacts) / version, bundles_dir(a.out) / version
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for p in src.iterdir():
        if p.is_file() and p.name not in ("ranker.onnx", "manifest.json"):
            try:
                os.link(p, dst / p.name)
            except OSError:
                shutil.copy2(p, dst / p.name)
        elif p.is_dir():
            shutil.copytree(p, dst / p.name)
    shutil.copy(a.ranker, dst / "ranker.onnx")
    m = json.loads((src / "manifest.json").read_text())
    r = dst / "ranker.onnx"
    m["files"]["ranker.onnx"] = {"bytes": r.stat().st_size, "sha256": sha256_file(r)}
    (dst / "manifest.json").write_text(json.dumps(m, indent=2))
    (a.out / "CURRENT").write_text(version + "\n")
    print(f"{a.out}: bundle {version} with {a.ranker}")


if __name__ == "__main__":
    main()
