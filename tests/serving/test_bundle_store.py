"""Bundles on an object store through fsspec, tested with the file:// protocol (the same fsspec code
path an s3:// store takes): push, pull into an empty replica, serve; a corrupted copy is refused."""

from pathlib import Path

import pytest

from bundle.object_store import pull_current, push, set_store_current, store_current
from bundle.versions import BundleError, bundles_dir, current_version, list_bundles
from tests.serving.conftest import make_client


def test_a_replica_with_an_empty_disk_serves_what_the_store_names(tiny_artifacts: Path, tmp_path: Path) -> None:
    version = current_version(tiny_artifacts)
    store = f"file://{tmp_path / 'store'}"
    assert store_current(store) is None
    push(tiny_artifacts, version, store)
    assert store_current(store) == version
    replica = tmp_path / "replica"  # nothing local: no bundles, no CURRENT
    with make_client(replica, bundle_store=store) as c:
        ready = c.get("/readyz").json()
        assert ready["bundle_version"] == version, ready
        assert c.post("/v1/recommendations", json={"k": 3}).json()["bundle_version"] == version
    assert list_bundles(replica) == [version] and current_version(replica) == version


def test_a_corrupted_object_is_refused_and_nothing_half_pulled_stays(tiny_artifacts: Path, tmp_path: Path) -> None:
    version = current_version(tiny_artifacts)
    store = tmp_path / "store"
    push(tiny_artifacts, version, f"file://{store}")
    onnx = store / "bundles" / version / "ranker.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-10] + b"0123456789")
    replica = tmp_path / "replica"
    with pytest.raises(BundleError, match="ranker.onnx"):
        pull_current(f"file://{store}", replica)
    assert list_bundles(replica) == [] and current_version(replica) is None
    assert not list(bundles_dir(replica).glob(".tmp-*"))


def test_the_store_current_moves_back_and_the_replica_follows(tiny_artifacts: Path, tmp_path: Path) -> None:
    version = current_version(tiny_artifacts)
    store = f"file://{tmp_path / 'store'}"
    push(tiny_artifacts, version, store)
    replica = tmp_path / "replica"
    assert pull_current(store, replica) == version
    assert pull_current(store, replica) == version  # already here: nothing fetched again
    set_store_current(store, "20000101T000000Z")  # a version the store does not hold
    with pytest.raises(FileNotFoundError):
        pull_current(store, replica)
    assert current_version(replica) == version  # the replica keeps what it had
