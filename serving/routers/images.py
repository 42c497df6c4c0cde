"""Search by photo: classify an upload, or find catalog items that look like it."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, File, Query, UploadFile

from serving.deps import Bundle, State
from serving.limits import decode_slot
from serving.parsing import check_k, query_filters
from serving.recommend import nearest
from serving.saliency import occlusion_saliency
from serving.schemas import ERRORS, CategoryProbability, ClassifyResponse, ImageSearchResponse
from serving.uploads import read_photo

router = APIRouter(prefix="/v1/images", tags=["images"], responses=ERRORS)
Upload = Annotated[UploadFile, File(description="A product photo (PNG/JPEG/WebP).")]


def _classify(bundle, upload: UploadFile, state):
    return bundle.require_images().classify(read_photo(upload, bundle, state)[1])


@router.post("/classify", response_model=ClassifyResponse)
def classify(image: Upload, bundle: Bundle, state: State, saliency: bool = False) -> ClassifyResponse:
    """Category probabilities (temperature-calibrated) from the image model; with ``saliency=true``,
    also where it looked (occlusion saliency through ONNX Runtime, serving/saliency.py)."""
    _, pixels = read_photo(image, bundle, state)
    model = bundle.require_images()
    probs, _ = model.classify(pixels)
    order = probs.argsort()[::-1]
    heat = None
    if saliency:
        with decode_slot(state):  # ~50 model calls: bounded like the decodes
            heat = occlusion_saliency(model.class_probabilities, pixels, int(order[0]))
    return ClassifyResponse(predicted=model.class_names[order[0]], bundle_version=bundle.version,
                            probabilities=[CategoryProbability(category=model.class_names[i],
                                                               probability=float(probs[i])) for i in order],
                            saliency=None if heat is None else np.round(heat, 3).tolist())


@router.post("/search", response_model=ImageSearchResponse)
def search(image: Upload, bundle: Bundle, state: State, k: Annotated[int, Query(ge=1)] = 10,
           categories: Annotated[list[str] | None, Query(max_length=100)] = None,
           in_stock_only: bool = True,
           placement: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")] = None
           ) -> ImageSearchResponse:
    """Catalog items whose CNN embedding is closest to the uploaded photo's."""
    check_k(k, state.settings)
    filters = query_filters(categories=categories, in_stock_only=in_stock_only)  # refused before the decode
    probs, emb = _classify(bundle, image, state)
    items = nearest(bundle, "image", emb, k, filters)
    rec_id = state.served.served("image-search", placement, None, None, bundle.version, items)
    return ImageSearchResponse(predicted=bundle.require_images().class_names[int(probs.argmax())], items=items,
                               bundle_version=bundle.version, rec_id=rec_id)
