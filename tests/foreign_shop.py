"""A small shop export shaped as a real one is, not as Vitrine's tables are: string SKUs, a
';'-separated catalog, day-first local timestamps (Europe/Paris), its own event names and category
taxonomy, photos in nested folders as JPEG / PNG / WebP of mixed sizes and modes (RGB, palette,
alpha, grayscale, EXIF-rotated) — and a few bad rows of each kind, listed in ``PLANTED``.

Shoppers prefer two categories each, so a recommender that learns beats popularity."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
from PIL import Image

from tests.conftest import synthetic_images

TAXONOMY = ["Women > Tops", "Women > Trousers", "Knitwear", "Dresses", "Outerwear", "Sandals", "Shirts",
            "Trainers", "Bags & Accessories", "Boots"]
# what the test expects rejected.csv to name, by table: (id, reason fragment)
PLANTED = {
    "items": [("SKU-BAD-PRICE", "price is not a number"), ("SKU-NEG", "negative price"),
              ("SKU-NOPHOTO", "missing image file"), ("SKU-BROKEN", "unreadable image"),
              ("SKU-00003", "duplicate item_id")],
    "users": [("", "missing user_id")],
    "events": [("SKU-UNKNOWN", "unknown item_id"), ("yesterday-ish", "unparseable ts"),
               ("C9999", "unknown user_id")],
}


def _photo(gray: np.ndarray, i: int, rng: np.random.Generator, root: Path, category: str) -> str:
    """One product photo; every fifth kind of file differs (format, mode, size, rotation)."""
    side = int(rng.integers(40, 160))
    img = Image.fromarray(255 - gray).resize((side, int(side * rng.uniform(0.8, 1.25))))  # dark product on white
    tint = tuple(int(v) for v in rng.integers(0, 160, 3))
    rgb = Image.merge("RGB", [img.point(lambda p, t=t: min(255, p + t) if p < 250 else 255) for t in tint])
    kind = i % 5
    folder = root / "photos" / category.split(" > ")[0].lower().replace(" & ", "-") / f"batch{i % 3}"
    folder.mkdir(parents=True, exist_ok=True)
    if kind == 0:
        path, out = folder / f"p{i}.jpg", rgb
        exif = Image.Exif()
        exif[0x0112] = 6  # rotated 90° clockwise for display: the decoder must turn it back
        out.rotate(90, expand=True).save(path, quality=90, exif=exif)
        return str(path.relative_to(root))
    if kind == 1:
        path = folder / f"p{i}.png"
        rgba = rgb.convert("RGBA")
        rgba.putalpha(img.point(lambda p: 0 if p >= 250 else 255))  # transparent background
        rgba.save(path)
    elif kind == 2:
        path = folder / f"p{i}.webp"
        rgb.save(path, quality=85)
    elif kind == 3:
        path = folder / f"p{i}.png"
        rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(path)
    else:
        path = folder / f"p{i}.jpeg"
        img.convert("L").save(path)
    return str(path.relative_to(root))


def write_foreign_shop(root: Path, *, n_items: int = 300, n_users: int = 150, days: int = 30, seed: int = 3) -> Path:
    """products.csv, customers.csv, events.csv (first days) and events-next.csv + products-next.csv
    (the next night's export: one more day, a price change, a removed item, a new product)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    x, y = synthetic_images(n_items + 1, seed)
    items = []
    for i in range(n_items):
        cat = TAXONOMY[int(y[i])]
        items.append({"sku": f"SKU-{i:05d}", "name": f"{cat.split(' > ')[-1]} {i}", "product_type": cat,
                      "price_eur": f"{rng.uniform(5, 200):.2f}", "available": "yes" if rng.random() > 0.05 else "no",
                      "photo": _photo(x[i], i, rng, root, cat)})
    bad_photo = root / "photos" / "broken.jpg"
    bad_photo.write_text("<html>not a photo</html>")
    items += [{"sku": "SKU-BAD-PRICE", "name": "x", "product_type": TAXONOMY[0], "price_eur": "free",
               "available": "yes", "photo": items[0]["photo"]},
              {"sku": "SKU-NEG", "name": "x", "product_type": TAXONOMY[0], "price_eur": "-3", "available": "yes",
               "photo": items[1]["photo"]},
              {"sku": "SKU-NOPHOTO", "name": "x", "product_type": TAXONOMY[1], "price_eur": "9.99",
               "available": "yes", "photo": "photos/nowhere/missing.jpg"},
              {"sku": "SKU-BROKEN", "name": "x", "product_type": TAXONOMY[2], "price_eur": "9.99",
               "available": "yes", "photo": "photos/broken.jpg"},
              dict(items[3])]  # the same SKU twice: the first wins
    _write(root / "products.csv", items, ";")
    customers = [{"customer_id": f"C{u:04d}", "segment": "vip" if u % 7 == 0 else "std"} for u in range(n_users)]
    _write(root / "customers.csv", customers + [{"customer_id": "", "segment": "std"}], ",")
    by_cat = {c: [i for i in range(n_items) if TAXONOMY[int(y[i])] == c] for c in TAXONOMY}
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.7  # some items sell more everywhere
    start = datetime(2026, 10, 1, 8, 0, tzinfo=ZoneInfo("Europe/Paris"))

    def day_events(day: int, users: range) -> list[dict]:
        rows = []
        for u in users:
            prefs = [TAXONOMY[(u * 3) % 10], TAXONOMY[(u * 7 + 1) % 10]]
            for _ in range(int(rng.integers(0, 4))):
                cands = by_cat[prefs[int(rng.integers(0, 2))]] if rng.random() < 0.85 else list(range(n_items))
                w = pop[cands] / pop[cands].sum()
                item = cands[int(rng.choice(len(cands), p=w))]
                t = start + timedelta(days=day, minutes=int(rng.integers(0, 14 * 60)))
                action = rng.choice(["page_view", "page_view", "page_view", "add_to_cart", "order", "wishlist"])
                rows.append({"customer_id": f"C{u:04d}", "sku": f"SKU-{item:05d}", "action": action,
                             "when": t.strftime("%d/%m/%Y %H:%M")})
        return rows

    events = [e for d in range(days) for e in day_events(d, range(n_users))]
    events += [{"customer_id": "C0001", "sku": "SKU-UNKNOWN", "action": "page_view", "when": "02/10/2026 10:00"},
               {"customer_id": "C0002", "sku": "SKU-00001", "action": "page_view", "when": "yesterday-ish"},
               {"customer_id": "C9999", "sku": "SKU-00002", "action": "order", "when": "02/10/2026 11:00"}]
    _write(root / "events.csv", events, ",")
    nxt = day_events(days, range(n_users))
    _write(root / "events-next.csv", nxt, ",")
    x2 = _photo(x[n_items], n_items, rng, root, TAXONOMY[int(y[n_items])])
    _write(root / "products-next.csv", [
        {"sku": "SKU-00005", "name": "repriced", "product_type": items[5]["product_type"], "price_eur": "1.00",
         "available": "yes", "photo": items[5]["photo"], "discontinued": "no"},
        {"sku": "SKU-00006", "name": items[6]["name"], "product_type": items[6]["product_type"],
         "price_eur": items[6]["price_eur"], "available": "yes", "photo": items[6]["photo"], "discontinued": "yes"},
        {"sku": f"SKU-{n_items:05d}", "name": "new", "product_type": TAXONOMY[int(y[n_items])], "price_eur": "42.00",
         "available": "yes", "photo": x2, "discontinued": "no"}], ";")
    return root


def _write(path: Path, rows: list[dict], sep: str) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=sep)
        w.writeheader()
        w.writerows(rows)
