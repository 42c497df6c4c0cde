"""Bundles on an object store, through fsspec (``s3://bucket/prefix`` with s3fs installed,
``gs://``, ``az://``, ``file:///shared/vitrine``...): the path past one machine's disk.

The store holds the same layout as a local artifacts directory: ``bundles/<version>/...`` and
``CURRENT``. The nightly job pushes a published version's files, its manifest last (a version with a
manifest is whole), then CURRENT. Each replica pulls what the store's CURRENT names into its own
local artifacts directory, checks every file against the manifest's sha256, renames it into place
and promotes it locally, then loads it as from any local bundle: serving code never reads the store.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import fsspec

from bundle.versions import (
    MANIFEST,
    BundleError,
    bundles_dir,
    check_signature,
    check_version,
    current_version,
    promote,
    read_manifest,
    verify_bundle,
)

log = logging.getLogger(__name__)


def _store(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, root = fsspec.core.url_to_fs(url)
    return fs, root.rstrip("/")


def store_current(url: str) -> str | None:
    """The version the store's CURRENT names, or None when it has none yet; BundleError when it names
    something that is not a version (a store is data: ``x/../../victim`` never becomes a path)."""
    fs, root = _store(url)
    path = f"{root}/CURRENT"
    v = fs.cat_file(path).decode(errors="replace").strip() if fs.exists(path) else ""
    return check_version(v, f"{url} CURRENT") if v else None


def set_store_current(url: str, version: str) -> None:
    """Point the store's CURRENT at ``version`` (one object written whole: readers see old or new)."""
    fs, root = _store(url)
    fs.pipe_file(f"{root}/CURRENT", (version + "\n").encode())
    log.info("store %s: CURRENT -> %s", url, version)


def push(artifacts: Path, version: str, url: str, *, make_current: bool = True, verified: dict | None = None) -> None:
    """Upload a published local version (verified first, unless ``verified`` is the manifest this
    process's ``verify_bundle`` returned), its manifest last; then CURRENT."""
    src = bundles_dir(artifacts) / version
    manifest = verified if verified is not None else verify_bundle(src)
    fs, root = _store(url)
    dest = f"{root}/bundles/{version}"
    for name in [*sorted(manifest["files"]), MANIFEST]:
        target = f"{dest}/{name}"
        fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(str(src / name), target)
    log.info("pushed %s to %s (%d files)", version, url, len(manifest["files"]))
    if make_current:
        set_store_current(url, version)


def pull_current(url: str, artifacts: Path, key: str | None = None) -> str | None:
    """Bring the store's CURRENT version into ``artifacts`` (if not there yet) and promote it there.
    Returns the version, or None when the store has no CURRENT. Raises BundleError on a bad copy, on
    a manifest whose names would leave the bundle's folder (checked before any file is fetched) and,
    with ``key``, on a bundle its holders did not sign."""
    version = store_current(url)
    if version is None:
        return None
    local = bundles_dir(artifacts) / version
    if not local.is_dir():
        fs, root = _store(url)
        src = f"{root}/bundles/{version}"
        tmp = bundles_dir(artifacts) / f".tmp-pull-{version}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            fs.get_file(f"{src}/{MANIFEST}", str(tmp / MANIFEST))
            manifest = read_manifest(tmp)  # shape and names checked: relative, no "..", not the manifest
            if manifest["version"] != version:
                raise BundleError(f"{url}: CURRENT names {version} but its manifest says {manifest['version']!r}")
            check_signature(manifest, key, f"{url} {version}")  # refused before a single file is fetched
            inside = tmp.resolve()
            for name in manifest["files"]:
                dest = tmp / name
                if not dest.resolve().is_relative_to(inside):
                    raise BundleError(f"{url}: file name {name!r} leaves the bundle's folder")
                dest.parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(f"{src}/{name}", str(dest))
            verify_bundle(tmp, key)  # every byte as the publisher wrote it
            tmp.rename(local)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("pulled %s from %s", version, url)
    if current_version(artifacts) != version:
        promote(artifacts, version)
    return version
