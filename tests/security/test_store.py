"""Object-store names are data, not paths; bundles can be attributed (issue 28, finding 3). A store
is written by whoever holds its credentials: what it says never leaves the replica's folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bundle.object_store import pull_current, push, set_store_current
from bundle.versions import BundleError, bundles_dir, current_version, list_bundles, verify_bundle, write_bundle
from tests.serving.conftest import make_client


def _store_with(tiny_artifacts: Path, root: Path) -> tuple[str, str]:
    version = current_version(tiny_artifacts)
    url = f"file://{root}"
    push(tiny_artifacts, version, url)
    return url, version


@pytest.mark.parametrize("name", ["x/../../../victim", "../victim", "/tmp/victim", ".hidden", "a" * 65, "v 1"])
def test_a_store_current_that_is_not_a_version_name_is_refused(tiny_artifacts: Path, tmp_path: Path,
                                                              name: str) -> None:
    url, version = _store_with(tiny_artifacts, tmp_path / "store")
    replica = tmp_path / "deep" / "er" / "replica"
    assert pull_current(url, replica) == version
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    set_store_current(url, name)
    with pytest.raises(BundleError, match="not a bundle version name"):
        pull_current(url, replica)  # the second pull once rmtree'd .tmp-pull-x/../../../victim
    assert (victim / "keep.txt").read_text() == "mine" and current_version(replica) == version


def test_a_manifest_naming_a_file_outside_the_bundle_writes_nothing_outside(tiny_artifacts: Path,
                                                                           tmp_path: Path) -> None:
    url, version = _store_with(tiny_artifacts, tmp_path / "store")
    manifest = tmp_path / "store" / "bundles" / version / "manifest.json"
    m = json.loads(manifest.read_text())
    m["files"]["../../../f.txt"] = {"sha256": "0" * 64, "bytes": 4}
    manifest.write_text(json.dumps(m))
    (tmp_path / "store" / "f.txt").write_text("evil")  # where the name points, relative to the bundle
    replica = tmp_path / "a" / "b" / "replica"
    with pytest.raises(BundleError, match="bad file name"):
        pull_current(url, replica)
    written = [p for p in tmp_path.rglob("f.txt") if "store" not in p.parts]
    assert written == [] and list_bundles(replica) == [] and not list(bundles_dir(replica).glob(".tmp-*"))


def _signed_copy(src_art: Path, dst_art: Path, version: str, key: str | None) -> Path:
    src = bundles_dir(src_art) / current_version(src_art)
    m = json.loads((src / "manifest.json").read_text())
    info = {k: v for k, v in m.items() if k not in ("version", "created_at", "files")}
    return write_bundle(dst_art, {f: src / f for f in m["files"]}, info, version=version, key=key)


def test_signed_manifests_attribute_a_bundle_to_the_key_holders(tiny_artifacts: Path, tmp_path: Path) -> None:
    key, art = "the-shared-bundle-key", tmp_path / "artifacts"
    signed = _signed_copy(tiny_artifacts, art, "v1", key)
    unsigned = _signed_copy(tiny_artifacts, art, "v2", None)
    assert verify_bundle(signed, key)["version"] == "v1" and verify_bundle(signed)  # no key: nothing checked
    with pytest.raises(BundleError, match="unsigned"):
        verify_bundle(unsigned, key)
    with pytest.raises(BundleError, match="does not match"):
        verify_bundle(signed, "another-bundle-key-00")
    m = json.loads((signed / "manifest.json").read_text())
    m["metrics"]["headline"] = {"ranker_ndcg@10": 0.99}  # a tampered manifest (checksums untouched)
    (signed / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="does not match"):
        verify_bundle(signed, key)


def test_a_replica_with_a_key_refuses_an_unsigned_store_bundle_before_fetching_it(tiny_artifacts: Path,
                                                                                 tmp_path: Path) -> None:
    url, version = _store_with(tiny_artifacts, tmp_path / "store")  # the tiny bundle is unsigned
    replica = tmp_path / "replica"
    with pytest.raises(BundleError, match="unsigned"):
        pull_current(url, replica, key="the-shared-bundle-key")
    assert list_bundles(replica) == []
    art = tmp_path / "signed"
    _signed_copy(tiny_artifacts, art, "v1", "the-shared-bundle-key")
    push(art, "v1", f"file://{tmp_path / 'store2'}")
    with make_client(tmp_path / "replica2", bundle_store=f"file://{tmp_path / 'store2'}",
                     bundle_key="the-shared-bundle-key") as c:
        assert c.get("/readyz").json()["bundle_version"] == "v1"
    with make_client(tmp_path / "replica3", bundle_store=url, bundle_key="the-shared-bundle-key") as c:
        assert c.get("/readyz").status_code == 503  # nothing it can attribute: nothing served


def test_a_store_bundle_names_no_image_folder_outside_the_replicas(tiny_artifacts: Path, tiny_shop: Path,
                                                                   tmp_path: Path) -> None:
    url, _ = _store_with(tiny_artifacts, tmp_path / "store")
    with make_client(tmp_path / "replica", bundle_store=url) as c:
        item = str(c.app.state.service.bundle.catalog.item_ids[0])
        assert c.get(f"/images/{item}").status_code == 404  # the manifest's image_root is not the replica's
    shutil.rmtree(tmp_path / "replica")
    with make_client(tmp_path / "replica", bundle_store=url, image_roots=[tiny_shop]) as c:
        assert c.get(f"/images/{item}").status_code == 200  # an operator may allow a shared photo folder
