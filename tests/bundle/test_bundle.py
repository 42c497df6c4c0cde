import json
from pathlib import Path

import pytest

from bundle import versions as b


def _files(tmp: Path) -> dict[str, Path]:
    src = tmp / "src"
    src.mkdir(exist_ok=True)
    (src / "a.onnx").write_bytes(b"model-bytes" * 100)
    (src / "items.parquet").write_bytes(b"table")
    return {"user_tower.onnx": src / "a.onnx", "items.parquet": src / "items.parquet"}


@pytest.fixture
def art(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


def test_write_verify_promote_and_manifest(art: Path, tmp_path: Path) -> None:
    path = b.write_bundle(art, _files(tmp_path), {"dataset_fingerprint": "abc", "metrics": {"ndcg@10": 0.1}},
                          version="v1")
    m = b.verify_bundle(path)
    assert m["version"] == "v1" and m["metrics"]["ndcg@10"] == 0.1
    assert set(m["files"]) == {"user_tower.onnx", "items.parquet"}
    assert b.current_version(art) is None
    b.promote(art, "v1")
    assert b.current_version(art) == "v1"


@pytest.mark.parametrize("damage", ["corrupt", "missing", "truncated_manifest", "no_manifest"])
def test_damaged_bundles_are_refused_and_never_promoted(art: Path, tmp_path: Path, damage: str) -> None:
    b.write_bundle(art, _files(tmp_path), version="v1")
    b.promote(art, "v1")
    path = b.write_bundle(art, _files(tmp_path), version="v2")
    if damage == "corrupt":
        (path / "user_tower.onnx").write_bytes(b"model-bytes" * 99 + b"x" * 11)  # same size, other bytes
        msg = "corrupted"
    elif damage == "missing":
        (path / "items.parquet").unlink()
        msg = "missing"
    elif damage == "truncated_manifest":
        text = (path / "manifest.json").read_text()
        (path / "manifest.json").write_text(text[: len(text) // 2])
        msg = "unreadable manifest"
    else:
        (path / "manifest.json").unlink()
        msg = "half-written"
    with pytest.raises(b.BundleError, match=msg):
        b.verify_bundle(path)
    with pytest.raises(b.BundleError):
        b.promote(art, "v2")
    assert b.current_version(art) == "v1"  # CURRENT still names the verified bundle


def test_failed_smoke_check_leaves_no_trace(art: Path, tmp_path: Path) -> None:
    def smoke(path: Path) -> None:
        raise b.BundleError("smoke query returned nothing")

    with pytest.raises(b.BundleError, match="smoke"):
        b.write_bundle(art, _files(tmp_path), version="v1", smoke=smoke)
    assert b.list_bundles(art) == [] and not any(b.bundles_dir(art).iterdir())


def test_half_written_temporary_directory_is_not_a_version(art: Path, tmp_path: Path) -> None:
    (b.bundles_dir(art) / ".tmp-v9").mkdir(parents=True)
    assert b.list_bundles(art) == []
    with pytest.raises(b.BundleError, match="no such bundle"):
        b.promote(art, "v9")


def test_published_versions_are_immutable(art: Path, tmp_path: Path) -> None:
    b.write_bundle(art, _files(tmp_path), version="v1")
    with pytest.raises(b.BundleError, match="already published"):
        b.write_bundle(art, _files(tmp_path), version="v1")


def test_promote_rollback_round_trip_and_retention(art: Path, tmp_path: Path) -> None:
    for v in ("v1", "v2", "v3"):
        b.write_bundle(art, _files(tmp_path), version=v)
    b.promote(art, "v3")
    assert b.rollback(art) == "v2" and b.current_version(art) == "v2"
    b.promote(art, "v3")
    assert b.current_version(art) == "v3"
    # a corrupted older bundle is skipped by rollback
    (b.bundles_dir(art) / "v2" / "items.parquet").write_bytes(b"tampered")
    assert b.rollback(art) == "v1"
    b.promote(art, "v3")
    assert b.retain(art, keep=1) == ["v2"]  # v1, the newest older bundle that verifies, is the rollback target
    assert b.list_bundles(art) == ["v1", "v3"]
    b.promote(art, "v3")
    assert json.loads((b.bundles_dir(art) / "v3" / "manifest.json").read_text())["version"] == "v3"


def test_retention_never_deletes_current(art: Path, tmp_path: Path) -> None:
    for v in ("v1", "v2", "v3"):
        b.write_bundle(art, _files(tmp_path), version=v)
    b.promote(art, "v1")
    assert b.retain(art, keep=1) == ["v2"]
    assert b.list_bundles(art) == ["v1", "v3"]


def test_bundle_cli(art: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app

    runner = CliRunner()
    for v in ("v1", "v2"):
        b.write_bundle(art, _files(tmp_path), version=v)
    assert runner.invoke(app, ["bundle", "promote", "v2", "--artifacts", str(art)]).exit_code == 0
    r = runner.invoke(app, ["bundle", "list", "--artifacts", str(art)])
    assert "* v2  ok" in r.output and "  v1  ok" in r.output
    (b.bundles_dir(art) / "v1" / "items.parquet").write_bytes(b"x")
    r = runner.invoke(app, ["bundle", "verify", "v1", "--artifacts", str(art)])
    assert r.exit_code == 1 and "corrupted" in r.output
    r = runner.invoke(app, ["bundle", "rollback", "--artifacts", str(art)])
    assert r.exit_code == 1 and "no verified bundle" in r.output
    assert b.current_version(art) == "v2"


def test_sweep_partial_removes_what_a_killed_publisher_left_and_nothing_published(tmp_path: Path) -> None:
    art = tmp_path / "art"
    b.write_bundle(art, _files(tmp_path), version="v1")
    half = b.bundles_dir(art) / ".tmp-v2"  # SIGKILL while copying: no cleanup ran
    half.mkdir()
    (half / "towers.onnx").write_bytes(b"half")
    assert b.sweep_partial(art) == [".tmp-v2"]
    assert not half.exists() and b.list_bundles(art) == ["v1"]
    b.verify_bundle(b.bundles_dir(art) / "v1")
