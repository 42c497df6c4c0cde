"""How long the storefront and every console page take to render in a real browser on the 70k-item
demo bundle (issue: "a page renders in under 1 s").

    .venv/bin/python bench/merch_pages.py --artifacts bench/out/served-fashion/artifacts-all
    .venv/bin/python bench/merch_pages.py --artifacts bench/out/nightly-demo --out bench/out/nightly-demo

The second: artifacts of a real `vitrine nightly` run on fashion-shop (pipelines/configs/nightly-cpu.yaml),
which carry run history (the "Tonight" and "Quality" charts) and the CNN's predictions already.

1. The demo bundle predates ``image_predictions.npz``: the script writes a copy of it under
   ``bench/out/merch/artifacts`` with the CNN's verdict on all 70,000 photos added (the bundle's own
   ``image_model.onnx`` over the dataset's cached pixels, what `vitrine vision embed` records).
2. It starts ``vitrine serve`` on that copy and opens each page in headless Chromium (Debian's,
   through Playwright): the time from navigation to the page's content drawn (its charts' SVG, the
   photo gallery's first row of saliency overlays, the preview's ranked list, the storefront's grid),
   after the service's start-up warm-up (the exposure sample of 500 shoppers and the gallery's
   overlays, computed in the background when a bundle is installed) has finished. Each page is
   opened cold (its first visit in a fresh browser: the first console page also parses plotly.js)
   and then warm (median of 3 later visits). The server's own time for the HTML: httpx.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bundle.photo_predictions import PhotoPredictions  # noqa: E402
from bundle.versions import current_version, promote, verify_bundle, write_bundle  # noqa: E402
from serving.loaded_bundle import LoadedBundle  # noqa: E402
from serving.settings import ServingSettings  # noqa: E402
from vision.pixel_cache import decode_cached  # noqa: E402
from vision.preprocess import PreprocessSpec, normalize  # noqa: E402

# page -> the selector that says its content is drawn
READ_TOKEN = "bench-read-token-0123"
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
PAGES = {"/": "#grid .product", "/merch": "h1", "/merch/quality": "h1", "/merch/exposure": "#chart-tail .main-svg",
         "/merch/photos": "figure.photo:nth-child(8) img[src]",
         "/merch/preview": "#page-without li", "/merch/rules": "#page-without li",
         "/merch/map": "#chart-confusion .main-svg"}


def with_predictions(src_art: Path, out_art: Path) -> Path:
    """A copy of CURRENT's bundle with image_predictions.npz (skipped when already written)."""
    v = current_version(src_art)
    src = src_art / "bundles" / v
    if current_version(out_art) is not None:
        return out_art
    m = verify_bundle(src)
    b = LoadedBundle(src, ServingSettings(artifacts_dir=src_art))  # its calibrated classifier, as served
    names = b.image_model.class_names
    # the spec the model was exported with (the dataset's pixel cache is keyed by it)
    spec = PreprocessSpec.from_dict(json.loads(b.image_model.session.get_modelmeta().custom_metadata_map["preprocess"]))
    data = Path(m["image_root"])
    items = pd.read_parquet(src / "items.parquet", columns=["item_id", "category", "image"])
    pixels, errors = decode_cached([data / p for p in items["image"]], data / "cache", spec)
    P = np.concatenate([b.image_model.class_probabilities(normalize(pixels[s : s + 2048], spec))
                        for s in range(0, len(items), 2048)])  # (N, K)
    cls = items["category"].map({c: i for i, c in enumerate(names)})
    p_cat = np.where(cls.notna(), P[np.arange(len(P)), cls.fillna(0).astype(int)], np.nan)  # NaN: not a class
    table = pd.DataFrame({"item_id": items["item_id"], "predicted": np.asarray(names)[P.argmax(1)],
                          "confidence": P.max(1), "p_category": p_cat})
    with tempfile.TemporaryDirectory() as t:
        PhotoPredictions.from_table(table, items["item_id"], names).save(Path(t) / "image_predictions.npz")
        files = {f: src / f for f in m["files"]} | {"image_predictions.npz": Path(t) / "image_predictions.npz"}
        info = {k: val for k, val in m.items() if k not in ("version", "created_at", "files")}
        path = write_bundle(out_art, files, info, version=v)
    promote(out_art, path.name)
    print(f"wrote {path} with predictions for {len(items):,} photos ({sum(e is not None for e in errors)} unreadable)")
    return out_art


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--artifacts", type=Path, default=ROOT / "bench/out/served-fashion/artifacts-all")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/out/merch/artifacts")
    ap.add_argument("--port", type=int, default=8391)
    ap.add_argument("--chromium", default=os.environ.get("VITRINE_CHROMIUM", "/usr/bin/chromium"))
    a = ap.parse_args()
    art = with_predictions(a.artifacts, a.out)
    env = os.environ | {"VITRINE_ARTIFACTS_DIR": str(art), "VITRINE_ADMIN_TOKEN": "bench-admin-token-0123",
                        "VITRINE_READ_TOKEN": READ_TOKEN, "VITRINE_DEMO_SHOPPERS": "true"}
    srv = subprocess.Popen([str(ROOT / ".venv/bin/vitrine"), "serve", "--artifacts", str(art), "--port", str(a.port)],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{a.port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(base + "/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        t = time.perf_counter()  # returns once the start-up warm-up (exposure sample, gallery overlays) is done
        httpx.get(base + "/v1/analytics/exposure", timeout=120, headers=READ)
        print(f"warm-up finished {time.perf_counter() - t:.1f} s after /readyz")
        rows = measure(base, a.chromium)
    finally:
        srv.terminate()
        srv.wait()
    print(f"\n# bench/merch_pages.py --artifacts {a.artifacts}  ({platform.machine()}, {os.cpu_count()} cores, "
          f"{datetime.now(UTC):%Y-%m-%d})  bundle {current_version(art)}: 70k items, 30k shoppers\n")
    print("| page | rendered, cold (ms) | rendered, warm (median of 3, ms) | server HTML, warm (ms) |")
    print("| --- | ---: | ---: | ---: |")
    for page, (cold, warm, server) in rows.items():
        print(f"| `{page}` | {cold:.0f} | {warm:.0f} | {server:.0f} |")
    print(f"\nslowest warm render: {max(w for _, w, _ in rows.values()):.0f} ms; "
          f"slowest cold render: {max(c for c, _, _ in rows.values()):.0f} ms")


def measure(base: str, chromium: str) -> dict[str, tuple[float, float, float]]:
    from playwright.sync_api import sync_playwright

    out = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        # the pages' CSP forbids the string evaluation wait_for_function uses: bypassed for the timing only
        page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        page.goto(base + "/merch/login")  # the console's pages need a login (docs/security.md)
        page.fill("input[name=token]", READ_TOKEN)
        page.click("form.login button")
        page.wait_for_url(base + "/merch")
        for path, selector in PAGES.items():
            times = []
            for _ in range(4):  # cold, then three warm
                t = time.perf_counter()
                page.goto(base + path)
                page.wait_for_selector(selector, timeout=60_000)
                page.wait_for_function("[...document.querySelectorAll('.chart')]"  # every chart drawn
                                       ".every(c => c.querySelector('.main-svg'))", timeout=60_000)
                if path == "/merch/photos":  # drawn = the first row of overlays decoded
                    page.wait_for_function("[...document.querySelectorAll('figure.photo img')].slice(0, 8)"
                                           ".every(i => i.complete && i.naturalWidth > 0)", timeout=60_000)
                times.append((time.perf_counter() - t) * 1e3)
            server = []
            for _ in range(3):
                t = time.perf_counter()
                assert httpx.get(base + path, timeout=60, headers=READ).status_code == 200
                server.append((time.perf_counter() - t) * 1e3)
            out[path] = (times[0], statistics.median(times[1:]), statistics.median(server))
        browser.close()
    return out


if __name__ == "__main__":
    main()
