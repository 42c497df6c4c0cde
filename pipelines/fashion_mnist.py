"""Fashion-MNIST reader: IDX (gzip) files from a local directory, downloaded when absent.

Debian's ``dataset-fashion-mnist`` recompresses the ``.gz`` files, so their checksums differ from
upstream's; we verify the sha256 of the *decompressed* bytes, which both sources share.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import struct
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

# sha256 of the decompressed IDX files (identical for upstream and Debian's package).
FILES: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class FashionMNISTError(RuntimeError):
    """The files are missing, corrupt, or could not be downloaded."""


@dataclass(frozen=True)
class FashionMNIST:
    train_images: np.ndarray  # (60000, 28, 28) uint8
    train_labels: np.ndarray  # (60000,) uint8
    test_images: np.ndarray  # (10000, 28, 28) uint8
    test_labels: np.ndarray  # (10000,) uint8

    @property
    def images(self) -> np.ndarray:
        """All 70,000 images, official training set first."""
        return np.concatenate([self.train_images, self.test_images])

    @property
    def labels(self) -> np.ndarray:
        return np.concatenate([self.train_labels, self.test_labels])


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode one uncompressed IDX buffer (magic: two zero bytes, dtype code, ndim)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise FashionMNISTError(f"{name}: not an IDX file (bad magic number)")
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = 4 + 4 * ndim + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise FashionMNISTError(f"{name}: {len(raw)} bytes, header promises {expected}")
    return np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim).reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as a gzip IDX file (uint8 only): used for fixtures and custom datasets."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.GzipFile(path, "wb", mtime=0) as f:
        f.write(header + array.tobytes())


def _read_verified(path: Path, sha256: str | None) -> np.ndarray:
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as e:
        raise FashionMNISTError(f"{path}: cannot decompress ({e})") from e
    if sha256 is not None and hashlib.sha256(raw).hexdigest() != sha256:
        raise FashionMNISTError(f"{path}: sha256 of decompressed bytes does not match the release")
    return parse_idx(raw, str(path))


def download(root: Path, base_url: str, checksums: dict[str, str] = FILES, timeout: float = 30) -> None:
    """Fetch missing files from ``base_url`` into ``root``; verify before keeping them."""
    root.mkdir(parents=True, exist_ok=True)
    for name, sha in checksums.items():
        dest = root / name
        if dest.exists():
            continue
        url = base_url.rstrip("/") + "/" + name
        log.info("downloading %s", url)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                data = r.read()
        except (urllib.error.URLError, OSError) as e:
            raise FashionMNISTError(
                f"Fashion-MNIST is not in {root} and downloading {url} failed ({e}). "
                "Install it with `apt-get install dataset-fashion-mnist` or point "
                "VITRINE_FASHION_MNIST_DIR / --fashion-mnist-dir at the IDX files."
            ) from e
        tmp = dest.with_suffix(".part")
        tmp.write_bytes(data)
        try:
            _read_verified(tmp, sha)
        except FashionMNISTError:
            tmp.unlink()
            raise
        tmp.rename(dest)


def load_fashion_mnist(
    root: Path | str,
    *,
    base_url: str | None = None,
    checksums: dict[str, str | None] | None = None,
) -> FashionMNIST:
    """Read the four IDX files from ``root``; download them first when absent and a URL is given.

    ``checksums`` maps file name to the expected sha256 of its decompressed bytes (``None`` skips
    the check: tests use tiny synthetic files).
    """
    root = Path(root)
    sums = FILES if checksums is None else checksums
    missing = [n for n in sums if not (root / n).exists()]
    if missing:
        if base_url is None:
            raise FashionMNISTError(f"Fashion-MNIST files missing in {root}: {', '.join(missing)}")
        download(root, base_url, {n: s for n, s in sums.items() if n in missing})  # type: ignore[misc]
    arrays = {n: _read_verified(root / n, s) for n, s in sums.items()}
    ds = FashionMNIST(
        train_images=arrays["train-images-idx3-ubyte.gz"],
        train_labels=arrays["train-labels-idx1-ubyte.gz"],
        test_images=arrays["t10k-images-idx3-ubyte.gz"],
        test_labels=arrays["t10k-labels-idx1-ubyte.gz"],
    )
    for split, x, y in (("train", ds.train_images, ds.train_labels), ("test", ds.test_images, ds.test_labels)):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise FashionMNISTError(f"{split}: images {x.shape} do not match labels {y.shape}")
        if y.size and y.max() >= len(CLASSES):
            raise FashionMNISTError(f"{split}: label {int(y.max())} out of range")
    return ds
