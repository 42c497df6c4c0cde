"""Where a nightly run reads and writes: VITRINE_ARTIFACTS_DIR like `serve`, each step only in its
own step directory (the dataset folder is never written), fingerprints that notice a changed photo."""

from pathlib import Path

import yaml
from typer.testing import CliRunner

from bundle.versions import current_version
from pipelines.cli import app
from pipelines.settings import get_settings
from tests.conftest import build_tiny_shop
from tests.e2e.test_nightly import TINY


def test_nightly_honours_the_artifacts_setting_and_keeps_to_its_step_dirs(fake_fmnist, tmp_path: Path,
                                                                          monkeypatch) -> None:
    shop = build_tiny_shop(tmp_path / "shop", fake_fmnist, days=20)
    def files() -> list[Path]:  # the content-addressed pixel cache (vision/data.py) is the one exception
        return sorted(p.relative_to(shop) for p in shop.rglob("*") if "cache" not in p.relative_to(shop).parts)

    before = files()
    art = tmp_path / "from-env"
    monkeypatch.setenv("VITRINE_ARTIFACTS_DIR", str(art))
    get_settings.cache_clear()
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    try:
        r = CliRunner().invoke(app, ["nightly", "--data", str(shop), "--config", str(cfg)])
    finally:
        get_settings.cache_clear()
    assert r.exit_code == 0, r.output
    assert current_version(art) is not None  # no --artifacts: the setting decided
    assert files() == before  # nothing written into the dataset
    split_dir = next((art / "work").glob("split-*"))
    assert {p.name for p in split_dir.glob("*.parquet")} == {"train.parquet", "valid.parquet", "test.parquet"}

    # A photo replaced under the same name changes the vision step's fingerprint: the CNN retrains.
    rel = next((shop / "images").rglob("*.png"))
    rel.write_bytes(next(p for p in (shop / "images").rglob("*.png") if p != rel).read_bytes())
    r = CliRunner().invoke(app, ["nightly", "--data", str(shop), "--config", str(cfg), "--artifacts", str(art),
                                 "--force"])
    assert r.exit_code == 0, r.output
    assert len(list((art / "work").glob("vision-*"))) == 2
    assert len(list((art / "work").glob("split-*"))) == 1  # events unchanged: the split is reused
