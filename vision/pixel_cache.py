"""Decoded photos cached by their content: each photo is decoded once, at import, with the service's
own code (``vision/preprocess.py``), and every later reader (CNN training, embeddings, the next
import's unchanged photos) finds it by the sha256 of its bytes. Torch-free: the importer uses it.

A cache is a folder of batch files ``pixels-<size>-<spec hash>-<batch hash>.npz``, each holding the
content keys and (N, size, size) uint8 pixels of the photos one decode pass produced; a photo
replaced under the same name has a new key and is decoded again. Photos that fail to decode are not
cached (a fixed file is retried)."""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from vision.preprocess import PreprocessSpec, load_pixels

log = logging.getLogger(__name__)
DEFAULT_SPEC = PreprocessSpec()


def content_keys(paths: list[Path]) -> list[str | None]:
    """sha256 of each file's bytes (None: no such file); threads, since hashing releases the GIL."""
    def one(p: Path) -> str | None:
        return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, paths, chunksize=256))


def _spec_tag(spec: PreprocessSpec) -> str:
    return f"{spec.size}-{hashlib.sha256(repr(spec).encode()).hexdigest()[:8]}"


def cached(cache: Path, spec: PreprocessSpec) -> dict[str, np.ndarray]:
    """Every photo this cache holds for ``spec``: content key -> (size, size) uint8."""
    found: dict[str, np.ndarray] = {}
    for f in sorted(cache.glob(f"pixels-{_spec_tag(spec)}-*.npz")):
        with np.load(f) as z:
            found.update(zip(z["keys"].tolist(), z["pixels"], strict=True))
    return found


def store(cache: Path, spec: PreprocessSpec, keys: list[str], pixels: np.ndarray) -> None:
    """Add a batch of decoded photos (written whole, then renamed: a reader never sees half)."""
    if not keys:
        return
    cache.mkdir(parents=True, exist_ok=True)
    batch = hashlib.sha256("".join(keys).encode()).hexdigest()[:16]
    final = cache / f"pixels-{_spec_tag(spec)}-{batch}.npz"
    if final.exists():
        return
    tmp = final.with_name(final.stem + ".tmp.npz")
    np.savez(tmp, keys=np.array(keys), pixels=pixels)
    tmp.replace(final)


def decode_cached(paths: list[Path], cache: Path | None, spec: PreprocessSpec = DEFAULT_SPEC, *,
                  progress: bool = False) -> tuple[np.ndarray, list[str | None]]:
    """``load_pixels`` with the cache: (N, size, size) uint8 and, per photo, None or why it could not be
    decoded. Only photos the cache lacks are decoded; those that decode are added to it."""
    if cache is None:
        return load_pixels(paths, spec, progress=progress)
    keys = content_keys(paths)
    have = cached(cache, spec)
    out = np.zeros((len(paths), spec.size, spec.size), np.uint8)
    errors: list[str | None] = [None] * len(paths)
    todo = []
    for i, k in enumerate(keys):
        if k is None:
            errors[i] = "no such file"
        elif k in have:
            out[i] = have[k]
        else:
            todo.append(i)
    if todo:
        log.info("decoding %d of %d photos (the rest cached in %s)", len(todo), len(paths), cache)
        px, err = load_pixels([paths[i] for i in todo], spec, progress=progress and len(todo) > 5_000)
        decoded: dict[str, np.ndarray] = {}  # content key -> pixels (the same photo twice is stored once)
        for j, i in enumerate(todo):
            out[i], errors[i] = px[j], err[j]
            if err[j] is None:
                decoded.setdefault(keys[i], px[j])
        new = sorted(decoded)
        store(cache, spec, new, np.stack([decoded[k] for k in new]) if new else px[:0])
    return out, errors
