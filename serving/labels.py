"""Decisions on photos that look mislabeled (the console's "photos to check"): accept the image
model's category for a product (or one the merchandiser names), or dismiss the doubt. An accepted
label applies live (filters, category pages, the ranker's category feature) and to the next
night's data (bundle/labels.py, pipelines/label_fixes.py)."""

from __future__ import annotations

from serving.errors import RequestError
from serving.live import apply_labels
from serving.loaded_bundle import LoadedBundle
from serving.merch_store import MerchStore


def predicted_category(b: LoadedBundle, row: int) -> str | None:
    """The image model's category for a product's photo: a live addition's own, else the bundle's
    verdict on the catalog photo (None: no photo or no prediction)."""
    if row in b.catalog.predicted:
        return b.catalog.predicted[row]
    if b.photos is None or b.image_model is None or b.photos.predicted[row] < 0:
        return None
    return b.image_model.class_names[int(b.photos.predicted[row])]


def decide_label(b: LoadedBundle, merch: MerchStore, item_id: str, decision: str, category: str | None,
                 note: str = "") -> str:
    """Record the decision, apply it to the served bundle; returns the product's category now."""
    row = b.catalog.row_of.get(item_id)
    if row is None:
        raise RequestError(f"unknown item {item_id!r}", status=404)
    if decision == "accept":
        category = category or predicted_category(b, row)
        if category is None:
            raise RequestError(f"item {item_id!r} has no predicted category: give one")
        b.catalog.check_categories([category], "category")
    merch.decide(item_id, decision, category, note)
    apply_labels(b, merch.label_entries(fresh=True))
    return str(b.catalog.category_of(row))
