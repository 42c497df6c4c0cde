"""Reading an uploaded file with a size limit (a 413 with the limit, never a 500)."""

from __future__ import annotations

from fastapi import HTTPException, UploadFile

from serving.settings import ServingSettings


def read_upload(upload: UploadFile, settings: ServingSettings) -> bytes:
    data = upload.file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise HTTPException(413, f"upload is larger than the limit of {settings.max_upload_bytes:,} bytes")
    if not data:
        raise HTTPException(422, "the uploaded file is empty")
    return data
