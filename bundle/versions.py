"""The artifact bundle: a versioned, checksummed directory that serving loads, and the ``CURRENT``
pointer that says which one.

    artifacts/bundles/<version>/manifest.json + model, index and table files
    artifacts/CURRENT                          one line: the version serving should load

Writing: copy into ``bundles/.tmp-<version>``, write the manifest (sha256 of every file), verify
it, run an optional smoke check, then rename into place. Promoting: verify again, then replace
``CURRENT`` atomically (write a temporary file, ``os.replace``). A bundle that fails verification
is never promoted; a published version is never modified. No torch.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
REQUIRED_KEYS = ("version", "created_at", "files")
# A version names a directory: what a CURRENT file or a store may say is checked against this before
# it becomes a path (``x/../../victim`` never does).
VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SIGNATURE = "signature"  # HMAC-SHA256 of the manifest (without this key) under the bundle key


class BundleError(RuntimeError):
    """A bundle is missing, incomplete, corrupted or otherwise unfit to serve."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def bundles_dir(artifacts: Path) -> Path:
    return artifacts / "bundles"


def check_version(version: str, where: str = "version") -> str:
    """``version`` when it is a plain version name (``VERSION``, no ``..``); BundleError otherwise."""
    if not isinstance(version, str) or not VERSION.fullmatch(version) or ".." in version:
        raise BundleError(f"{where}: {version!r} is not a bundle version name")
    return version


def manifest_signature(manifest: dict, key: str) -> str:
    """HMAC-SHA256 (hex) of the manifest's canonical JSON, its own signature left out: the manifest
    names every file's sha256, so the signature attributes the whole bundle to the key's holders."""
    body = json.dumps({k: v for k, v in manifest.items() if k != SIGNATURE}, sort_keys=True, separators=(",", ":"))
    return hmac.new(key.encode(), body.encode(), hashlib.sha256).hexdigest()


def check_signature(manifest: dict, key: str | None, where: Path | str) -> None:
    """With a bundle key, a manifest must carry its signature (BundleError otherwise); without one,
    nothing is checked."""
    if key is None:
        return
    sig = manifest.get(SIGNATURE)
    if not isinstance(sig, str):
        raise BundleError(f"{where}: unsigned bundle (a bundle key is configured)")
    if not hmac.compare_digest(sig, manifest_signature(manifest, key)):
        raise BundleError(f"{where}: the bundle's signature does not match the bundle key")


def new_version(now: datetime | None = None) -> str:
    """Sortable and readable: 20261122T174501Z."""
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


def safe_name(name: str) -> str:
    """A bundle file name: relative, inside the bundle (no ``..``, not absolute, not the manifest). A
    manifest is data from a file or a store: its names never become paths unchecked."""
    p = Path(name)
    if not name or name == MANIFEST or p.is_absolute() or ".." in p.parts or "\\" in name or "\0" in name:
        raise BundleError(f"bad file name in bundle: {name!r}")
    return name


def read_manifest(path: Path) -> dict:
    """The manifest of the bundle in ``path``, parsed and its shape checked (required keys, file names,
    the version its directory names), without hashing a file: for reading metrics and settings.
    ``verify_bundle`` is this plus every file's checksum."""
    if not path.is_dir():
        raise BundleError(f"{path}: no such bundle directory")
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise BundleError(f"{path}: no {MANIFEST} (half-written bundle?)")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{mpath}: unreadable manifest ({e})") from e
    if not isinstance(manifest, dict):
        raise BundleError(f"{mpath}: the manifest is not a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise BundleError(f"{mpath}: manifest lacks {missing}")
    if manifest["version"] != path.name and not path.name.startswith(".tmp-"):
        raise BundleError(f"{mpath}: manifest says version {manifest['version']!r}, directory is {path.name!r}")
    files = manifest["files"]
    if not isinstance(files, dict) or not all(isinstance(m, dict) and {"sha256", "bytes"} <= m.keys()
                                              for m in files.values()):
        raise BundleError(f"{mpath}: files must map each name to its sha256 and bytes")
    for name in files:
        safe_name(name)
    return manifest


def verify_bundle(path: Path, key: str | None = None) -> dict:
    """The manifest, after checking it parses, names this version, and every file matches its sha256;
    with ``key``, that it is signed with it (``check_signature``)."""
    manifest = read_manifest(path)
    check_signature(manifest, key, path)
    for name, meta in manifest["files"].items():
        f = path / name
        if not f.is_file():
            raise BundleError(f"{path}: file {name} listed in the manifest is missing")
        if f.stat().st_size != meta["bytes"] or sha256_file(f) != meta["sha256"]:
            raise BundleError(f"{path}: file {name} is corrupted (sha256 mismatch)")
    return manifest


def write_bundle(artifacts: Path, files: dict[str, Path], info: dict | None = None, *, version: str | None = None,
                 smoke: Callable[[Path], None] | None = None, key: str | None = None) -> Path:
    """Publish ``files`` (bundle name -> source path) as a new version; returns its directory.

    ``info`` (dataset fingerprint, metrics, model configs, index recall...) goes into the manifest.
    ``smoke(path)`` may raise to refuse the bundle (e.g. a test query through the loaded models).
    ``key``: sign the manifest (replicas with the same key refuse what it did not sign).
    """
    version = check_version(version or new_version())
    root = bundles_dir(artifacts)
    final = root / version
    if final.exists():
        raise BundleError(f"{final}: version already published; published bundles are never modified")
    tmp = root / f".tmp-{version}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        listing = {}
        for name, src in sorted(files.items()):
            dest = tmp / safe_name(name)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            listing[name] = {"sha256": sha256_file(dest), "bytes": dest.stat().st_size}
        manifest = {"version": version, "created_at": datetime.now(UTC).isoformat(), "files": listing,
                    **{k: v for k, v in (info or {}).items() if k != SIGNATURE}}
        if key is not None:
            manifest[SIGNATURE] = manifest_signature(manifest, key)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        verify_bundle(tmp, key)
        if smoke is not None:
            smoke(tmp)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("published bundle %s (%d files)", version, len(files))
    return final


def sweep_partial(artifacts: Path) -> list[str]:
    """Delete the ``.tmp-`` directories a killed publisher left behind; returns their names. Only a
    caller that holds the nightly lock may call it (another publisher's directory is not partial)."""
    root = bundles_dir(artifacts)
    gone = sorted(p.name for p in root.glob(".tmp-*") if p.is_dir()) if root.is_dir() else []
    for name in gone:
        shutil.rmtree(root / name, ignore_errors=True)
        log.warning("removed %s, a half-written bundle left by a killed run", name)
    return gone


def current_version(artifacts: Path) -> str | None:
    """The version ``CURRENT`` names (None: no file or an empty one); BundleError for a name that is
    not a version (it would become a path)."""
    p = artifacts / "CURRENT"
    v = p.read_text().strip() if p.is_file() else ""
    return check_version(v, str(p)) if v else None


def list_bundles(artifacts: Path) -> list[str]:
    """Published versions, oldest first (temporary directories excluded)."""
    root = bundles_dir(artifacts)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []


def promote(artifacts: Path, version: str, *, verified: dict | None = None) -> dict:
    """Verify ``version`` and point ``CURRENT`` at it atomically. Returns its manifest. ``verified``:
    the manifest this process's own ``verify_bundle`` of that version returned (verified once per run)."""
    check_version(version)
    manifest = verified if verified is not None else verify_bundle(bundles_dir(artifacts) / version)
    tmp = artifacts / ".CURRENT.tmp"
    tmp.write_text(version + "\n")
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, artifacts / "CURRENT")
    log.info("CURRENT -> %s", version)
    return manifest


def rollback(artifacts: Path) -> str:
    """Point ``CURRENT`` at the newest verified version older than the current one."""
    cur = current_version(artifacts)
    older = [v for v in list_bundles(artifacts) if cur is None or v < cur]
    for v in reversed(older):
        try:
            promote(artifacts, v)
            return v
        except BundleError as e:
            log.warning("skipping %s: %s", v, e)
    raise BundleError(f"no verified bundle older than {cur!r} to roll back to")


def retain(artifacts: Path, keep: int = 5, protect: set[str] | None = None) -> list[str]:
    """Delete all but the newest ``keep`` versions, never the one ``CURRENT`` names nor the newest
    verified one before it (the rollback target and the service's fallback: nights of refused
    bundles must not delete the last one that served), nor those in ``protect`` (bundles running
    experiments serve). Returns deleted."""
    cur = current_version(artifacts)
    versions = list_bundles(artifacts)
    protect = {cur} | (protect or set())
    for v in reversed([v for v in versions if cur is not None and v < cur]):  # the newest one that verifies
        try:
            verify_bundle(bundles_dir(artifacts) / v)
        except BundleError:
            continue
        protect.add(v)
        break
    doomed = [v for v in versions[: max(0, len(versions) - keep)] if v not in protect]
    for v in doomed:
        shutil.rmtree(bundles_dir(artifacts) / v)
    return doomed
