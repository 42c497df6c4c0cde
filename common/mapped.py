"""Bundle arrays opened memory-mapped, copy-on-write: the one place a bundle's ``.npy``/``.npz`` is read.

Several service workers on one host map the same bundle files, so the kernel keeps one copy of
their pages in the page cache instead of one copy per worker (docs/scaling.md). Copy-on-write
(numpy's ``mmap_mode="c"``) lets a worker's live changes (a price patched, a product added) write
into its own private pages while every page it did not touch stays shared: the per-process overlay
the change log keeps consistent (serving/live.py). Growing an array (``np.append``) makes a private
copy, as it always did.

``.npz`` members are mapped where ``np.savez`` stored them uncompressed (``np.savez_compressed``
members, and tiny ones, are read into memory). The arrays come back as plain ``ndarray`` views of
the mapping (``np.memmap``'s Python-level ``__getitem__`` costs microseconds per index on the request
path); ``mapped(a)`` says whether one is. numpy in, numpy out; no torch, no faiss.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np

MAP_MIN_BYTES = 1 << 16  # smaller members are read: a mapping costs a page and a file handle either way


def open_npy(path: Path, *, mmap: bool = True) -> np.ndarray:
    """A ``.npy`` file, mapped copy-on-write (``mmap``) or read into memory."""
    return np.asarray(np.load(path, mmap_mode="c")) if mmap else np.load(path)


def touch(a: np.ndarray, page: int = 4096) -> None:
    """Read one byte of every page of a mapped array, at load rather than on the first requests: the
    bundle's files are in the page cache already (the load hashes them), so each page costs a minor
    fault here (~0.5 s per GB), not a stall inside a request after a reload."""
    flat = a.reshape(-1).view(np.uint8) if a.flags.c_contiguous and a.size else None
    if flat is not None:
        int(flat[::page].sum())


def mapped(a: np.ndarray) -> bool:
    """Whether ``a`` is (a view of) a file mapping rather than memory of its own."""
    while a is not None and not isinstance(a, np.memmap):
        a = a.base if isinstance(a.base, np.ndarray) else None
    return a is not None


def _member_offset(f, info: zipfile.ZipInfo) -> int:
    """Where a stored member's bytes start: after its local header, whose extra field may differ in
    length from the central directory's (zip64), so it is read from the local header itself."""
    f.seek(info.header_offset)
    head = f.read(30)
    if head[:4] != b"PK\x03\x04":
        raise ValueError(f"{info.filename}: not a zip local header")
    name_len, extra_len = struct.unpack("<HH", head[26:30])
    return info.header_offset + 30 + name_len + extra_len


def open_npz(path: Path, *, mmap: bool = True) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` by name; uncompressed members over MAP_MIN_BYTES mapped copy-on-write."""
    if not mmap:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    out: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as zf, open(path, "rb") as f:
        for info in zf.infolist():
            name = info.filename.removesuffix(".npy")
            if info.compress_type != zipfile.ZIP_STORED or info.file_size < MAP_MIN_BYTES:
                with zf.open(info) as m:
                    out[name] = np.lib.format.read_array(m, allow_pickle=False)
                continue
            f.seek(_member_offset(f, info))
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                raise ValueError(f"{path}: member {name} has .npy format {version}, which is not mapped")
            shape, fortran, dtype = read_header(f)
            if dtype.hasobject:
                raise ValueError(f"{path}: member {name} holds Python objects and cannot be mapped")
            out[name] = np.asarray(np.memmap(path, dtype=dtype, mode="c", offset=f.tell(), shape=shape,
                                             order="F" if fortran else "C"))
    return out
