"""How Vitrine's compiled (numba) kernels are built and called: where their machine code is cached,
and the plain-array form their ragged inputs take. The kernels: recsys/union_kernel.py (the
candidate union) and recsys/rank_features.py (the ranker's features)."""

from __future__ import annotations

import logging
import os
import stat
import tempfile

import numba
import numpy as np


def private_dir(path: str) -> bool:
    """``path`` exists (created 0700 if missing), is a real directory owned by this process's user,
    and no one else may write into it. numba's cache index is a pickle, loaded and run on the next
    call: a cache another user can write is code they run as us."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        log.warning("numba cache %s is not a private directory of this user (owner %d, mode %o): compiled code "
                    "is not cached", path, st.st_uid, stat.S_IMODE(st.st_mode))
        return False
    return os.access(path, os.W_OK)


def _compile_cache() -> bool:
    """Compiled code is cached (a first compile takes seconds) in a private directory: NUMBA_CACHE_DIR,
    else ``vitrine-numba-<uid>`` under the temp dir (numba's default, beside the source, is read-only
    in the serving image, and numba refuses a cached function it has nowhere to write). A directory
    that is not private (``private_dir``), or none at all: no cache."""
    if not numba.config.CACHE_DIR:
        numba.config.CACHE_DIR = os.path.join(tempfile.gettempdir(), f"vitrine-numba-{os.getuid()}")
    return private_dir(numba.config.CACHE_DIR)


log = logging.getLogger(__name__)
CACHE = _compile_cache()


def ragged(lists: list[np.ndarray], dtype=np.int64) -> tuple[np.ndarray, np.ndarray]:
    """Per-shopper lists -> (values of ``dtype``, offsets (n + 1,)): list b is values[off[b]:off[b + 1]]."""
    off = np.zeros(len(lists) + 1, np.int64)
    off[1:] = np.cumsum([len(x) for x in lists])
    return (np.concatenate(lists).astype(dtype, copy=False) if off[-1] else np.zeros(0, dtype)), off


def check_rows(who: str, n: int, negative_ok: tuple[str, ...] = (), **arrays: np.ndarray) -> None:
    """A compiled kernel checks no bounds: a row past the catalog would read or write outside its
    arrays. ValueError naming the array; ``negative_ok``: arrays where -1 means "none"."""
    for name, x in arrays.items():
        if x.size and (x.max() >= n or (name not in negative_ok and x.min() < 0)):
            raise ValueError(f"{who}: {name} holds rows outside the catalog's {n}")
