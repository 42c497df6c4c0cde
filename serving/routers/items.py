"""Items: read, similar items, product images, and the admin add / patch / hide."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, HTTPException, Query, UploadFile
from fastapi.responses import FileResponse

from common.ids import ID_PATTERN, MAX_ID_LEN, id_problem
from serving.catalog_columns import timestamp
from serving.deps import Admin, Bundle, Settings, State
from serving.live import add_item
from serving.metrics import INDEX_SIZE
from serving.parsing import check_k, query_filters
from serving.recommend import similar
from serving.schemas import ERRORS, ItemDetail, ItemPatch, SimilarResponse
from serving.uploads import read_photo

router = APIRouter(tags=["items"], responses=ERRORS)


def _row(bundle, item_id: str) -> int:
    row = bundle.catalog.row_of.get(item_id)
    if row is None:
        raise HTTPException(404, f"unknown item {item_id!r}")
    return row


def _detail(bundle, row: int) -> ItemDetail:
    cat = bundle.catalog
    return ItemDetail(**cat.items_out([row])[0], created_at=timestamp(cat.created_at[row]), live=row in cat.live_rows,
                      predicted_category=cat.predicted.get(row))


@router.get("/v1/items/{item_id}", response_model=ItemDetail)
def get_item(item_id: str, bundle: Bundle) -> ItemDetail:
    return _detail(bundle, _row(bundle, item_id))


@router.get("/v1/items/{item_id}/similar", response_model=SimilarResponse)
def similar_items(item_id: str, bundle: Bundle, settings: Settings, state: State,
                  by: Literal["behaviour", "image"] = "behaviour",
                  k: Annotated[int, Query(ge=1)] = 10,
                  categories: Annotated[list[str] | None, Query(max_length=100)] = None,
                  price_min: Annotated[float | None, Query(ge=0)] = None,
                  price_max: Annotated[float | None, Query(ge=0)] = None,
                  in_stock_only: bool = True,
                  placement: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")] = None
                  ) -> SimilarResponse:
    """Neighbours by item-tower vector (bought/viewed together) or by CNN image embedding (looks alike)."""
    check_k(k, settings)
    row = _row(bundle, item_id)
    if bundle.is_hidden(row):
        raise HTTPException(404, f"item {item_id!r} is hidden")
    f = query_filters(categories=categories, price_min=price_min, price_max=price_max, in_stock_only=in_stock_only)
    items = similar(bundle, row, by, k, f)
    rec_id = state.served.served(f"similar-{by}", placement, None, None, bundle.version, items)
    return SimilarResponse(item_id=item_id, by=by, items=items, bundle_version=bundle.version, rec_id=rec_id)


@router.get("/images/{item_id}", response_class=FileResponse, responses={200: {"content": {"image/png": {}}}})
def image(item_id: str, bundle: Bundle, settings: Settings) -> FileResponse:
    """The product photo: only files inside the dataset's folder or the live uploads folder are served
    (a catalog row naming ``../../etc/passwd`` gets a 404), with an image media type."""
    path = bundle.photo_path(_row(bundle, item_id), settings.artifacts_dir / "live")  # live uploads too
    if path is None:
        raise HTTPException(404, f"item {item_id!r} has no image")
    media = mimetypes.guess_type(path.name)[0]
    return FileResponse(path, media_type=media if media and media.startswith("image/") else
                        "application/octet-stream")


@router.post("/v1/items", response_model=ItemDetail, status_code=201)
def add(bundle: Bundle, state: State, settings: Settings, _: Admin,
        item_id: Annotated[str, Form(min_length=1, max_length=MAX_ID_LEN, pattern=ID_PATTERN,
                                     description="No control characters, quotes, angle brackets or backslash.")],
        title: Annotated[str, Form(min_length=1, max_length=500)],
        price: Annotated[float, Form(ge=0, allow_inf_nan=False)],
        image: Annotated[UploadFile, File(description="Product photo (PNG/JPEG/WebP).")],
        category: Annotated[str | None, Form(description="Omit to use the CNN's prediction.")] = None,
        in_stock: Annotated[bool, Form()] = True) -> ItemDetail:
    """Add a product: its photo is classified and embedded, the item tower embeds it from category,
    price and image, and it goes into the live indexes (logged, so it survives a restart)."""
    if (why := id_problem(item_id)) is not None:
        raise HTTPException(422, why)
    if item_id in bundle.catalog.row_of:
        raise HTTPException(409, f"item {item_id!r} already exists")
    if category is not None and category not in bundle.catalog.category_names:
        raise HTTPException(422, f"unknown category {category!r}; known: {bundle.catalog.category_names}")
    data, pixels = read_photo(image, bundle, state)  # refuse a bad image before anything is stored
    log = state.changes(bundle.version)
    path = log.save_image(item_id, data, Path(image.filename or "").suffix.lower()[:5] or ".img")
    # logged first: a live change is a durable one
    log.append({"op": "add", "item_id": item_id, "title": title, "category": category, "price": price,
                "in_stock": in_stock, "image_path": str(path)})
    row, _ = add_item(bundle, item_id, title, category, price, in_stock, path, pixels)  # a duplicate: 409
    INDEX_SIZE.labels("items").set(bundle.items_index.n_live)
    return _detail(bundle, row)


@router.patch("/v1/items/{item_id}", response_model=ItemDetail)
def patch(item_id: str, change: ItemPatch, bundle: Bundle, state: State, _: Admin) -> ItemDetail:
    """Stock and price changes, effective for the next request."""
    row = _row(bundle, item_id)
    state.changes(bundle.version).append({"op": "patch", "item_id": item_id, **change.model_dump(exclude_none=True)})
    bundle.patch_item(row, in_stock=change.in_stock, price=change.price)
    return _detail(bundle, row)


@router.delete("/v1/items/{item_id}", response_model=ItemDetail)
def hide(item_id: str, bundle: Bundle, state: State, _: Admin) -> ItemDetail:
    """Hide a product: out of both indexes, so never recommended or shown as similar."""
    row = _row(bundle, item_id)
    state.changes(bundle.version).append({"op": "hide", "item_id": item_id})
    bundle.hide_item(row)
    INDEX_SIZE.labels("items").set(bundle.items_index.n_live)
    return _detail(bundle, row)
