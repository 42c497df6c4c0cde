"""How Vitrine's compiled (numba) kernels are built and called: where their machine code is cached,
and the plain-array form their ragged inputs take. The kernels: recsys/union_kernel.py (the
candidate union) and recsys/rank_features.py (the ranker's features)."""

from __future__ import annotations

import os
import tempfile

import numba
import numpy as np


def _compile_cache() -> bool:
    """Compiled code is cached (a first compile takes seconds) under the temp dir unless
    NUMBA_CACHE_DIR says where: numba's default, beside the source, is read-only in the serving
    image, and numba refuses a cached function it has nowhere to write. No writable place: no cache."""
    if not numba.config.CACHE_DIR:
        numba.config.CACHE_DIR = os.path.join(tempfile.gettempdir(), "vitrine-numba")
    try:
        os.makedirs(numba.config.CACHE_DIR, exist_ok=True)
        return os.access(numba.config.CACHE_DIR, os.W_OK)
    except OSError:
        return False


CACHE = _compile_cache()


def ragged(lists: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-shopper lists -> (values int64, offsets (n + 1,)): list b is values[off[b]:off[b + 1]]."""
    off = np.zeros(len(lists) + 1, np.int64)
    off[1:] = np.cumsum([len(x) for x in lists])
    return (np.concatenate(lists).astype(np.int64, copy=False) if off[-1] else np.zeros(0, np.int64)), off


def check_rows(who: str, n: int, negative_ok: tuple[str, ...] = (), **arrays: np.ndarray) -> None:
    """A compiled kernel checks no bounds: a row past the catalog would read or write outside its
    arrays. ValueError naming the array; ``negative_ok``: arrays where -1 means "none"."""
    for name, x in arrays.items():
        if x.size and (x.max() >= n or (name not in negative_ok and x.min() < 0)):
            raise ValueError(f"{who}: {name} holds rows outside the catalog's {n}")
