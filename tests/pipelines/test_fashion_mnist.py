import gzip
import hashlib
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from pipelines import fashion_mnist as fm
from tests.conftest import NO_CHECKSUMS, REAL_FMNIST, write_fake_fashion_mnist


def test_idx_round_trip(tmp_path: Path) -> None:
    x = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    fm.write_idx(tmp_path / "a.gz", x)
    out = fm.parse_idx(gzip.decompress((tmp_path / "a.gz").read_bytes()))
    np.testing.assert_array_equal(out, x)


def test_bad_magic_and_truncation_are_refused() -> None:
    with pytest.raises(fm.FashionMNISTError, match="magic"):
        fm.parse_idx(b"\x01\x00\x08\x01\x00\x00\x00\x01\x05")
    good = bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big") + b"\x01\x02\x03"
    assert fm.parse_idx(good).tolist() == [1, 2, 3]
    with pytest.raises(fm.FashionMNISTError, match="promises"):
        fm.parse_idx(good[:-1])


def test_checksum_of_decompressed_bytes_is_enforced(fake_fmnist_dir: Path) -> None:
    # The fake files do not match the real release's checksums.
    with pytest.raises(fm.FashionMNISTError, match="sha256"):
        fm.load_fashion_mnist(fake_fmnist_dir)
    ds = fm.load_fashion_mnist(fake_fmnist_dir, checksums=NO_CHECKSUMS)
    assert ds.images.shape == (800, 28, 28) and ds.labels.shape == (800,)


def test_download_verifies_and_keeps_good_files(tmp_path: Path) -> None:
    mirror = write_fake_fashion_mnist(tmp_path / "mirror")
    sums = {n: hashlib.sha256(gzip.decompress((mirror / n).read_bytes())).hexdigest() for n in fm.FILES}
    dest = tmp_path / "dest"
    ds = fm.load_fashion_mnist(dest, base_url=mirror.as_uri(), checksums=sums)
    assert ds.train_images.shape == (600, 28, 28)
    assert sorted(p.name for p in dest.iterdir()) == sorted(fm.FILES)
    # A mirror serving wrong bytes: nothing is kept.
    bad = {n: "0" * 64 for n in fm.FILES}
    with pytest.raises(fm.FashionMNISTError, match="sha256"):
        fm.download(tmp_path / "dest2", mirror.as_uri(), bad)
    assert not any((tmp_path / "dest2").iterdir())


def test_offline_download_gives_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*a, **k):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(fm.urllib.request, "urlopen", offline)
    with pytest.raises(fm.FashionMNISTError, match="apt-get install dataset-fashion-mnist"):
        fm.load_fashion_mnist(tmp_path, base_url="http://example.invalid/")


@pytest.mark.skipif(not REAL_FMNIST.exists(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist_matches_the_release() -> None:
    ds = fm.load_fashion_mnist(REAL_FMNIST)  # verifies the real checksums
    assert ds.train_images.shape == (60000, 28, 28) and ds.test_images.shape == (10000, 28, 28)
    assert np.bincount(ds.train_labels).tolist() == [6000] * 10
    assert np.bincount(ds.test_labels).tolist() == [1000] * 10
