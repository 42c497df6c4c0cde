"""Reading an uploaded file with a size limit (a 413 with the limit, never a 500), and an uploaded
photo decoded into the image model's input (a 422 with the reason)."""

from __future__ import annotations

import numpy as np
from fastapi import HTTPException, UploadFile

from serving.limits import decode_slot
from serving.loaded_bundle import LoadedBundle
from serving.settings import ServingSettings
from serving.state import ServiceState
from vision.preprocess import UPLOAD_FORMATS, ImageError, preprocess


def read_upload(upload: UploadFile, settings: ServingSettings) -> bytes:
    data = upload.file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise HTTPException(413, f"upload is larger than the limit of {settings.max_upload_bytes:,} bytes")
    if not data:
        raise HTTPException(422, "the uploaded file is empty")
    return data


def read_photo(upload: UploadFile, bundle: LoadedBundle, state: ServiceState) -> tuple[bytes, np.ndarray]:
    """The upload's bytes and its (1, 1, H, W) model input, decoded in one of the bounded decode slots;
    409 for a bundle without photos, 413 / 422 for a file too large, empty or not an image."""
    spec = bundle.require_images().preprocess_spec
    data = read_upload(upload, state.settings)
    try:
        with decode_slot(state):
            return data, preprocess(data, spec, UPLOAD_FORMATS)
    except ImageError as e:
        raise HTTPException(422, str(e)) from e
