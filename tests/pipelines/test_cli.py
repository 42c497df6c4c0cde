"""The `vitrine data` commands end to end, through Typer's runner."""

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.settings import get_settings
from pipelines.tables import read_dataset
from tests.pipelines.test_movielens import write_classic

runner = CliRunner()


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("VITRINE_FASHION_MNIST_VERIFY", "false")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_fashion_shop_small_then_split_and_validate(fake_fmnist_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "shop"
    args = ["data", "fashion-shop", "--out", str(out), "--users", "60", "--items", "150", "--days", "10",
            "--fashion-mnist-dir", str(fake_fmnist_dir)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    t = read_dataset(out)
    assert len(t["items"]) == 150 and len(t["users"]) == 60 and len(t["events"]) > 100
    assert (out / "truth" / "top_affinities.parquet").is_file()
    r = runner.invoke(app, ["data", "split", str(out)])
    assert r.exit_code == 0, r.output
    parts = {p: pd.read_parquet(out / "splits" / "temporal-user" / f"{p}.parquet") for p in ("train", "valid", "test")}
    assert sum(map(len, parts.values())) == len(t["events"])
    assert runner.invoke(app, ["data", "validate", str(out)]).exit_code == 0


def test_fashion_shop_rejects_bad_sizes(tmp_path: Path) -> None:
    r = runner.invoke(app, ["data", "fashion-shop", "--out", str(tmp_path), "--items", "80000"])
    assert r.exit_code == 2 and "--items" in r.output


def test_missing_fashion_mnist_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITRINE_FASHION_MNIST_URL", (tmp_path / "nowhere").as_uri())
    get_settings.cache_clear()
    r = runner.invoke(app, ["data", "fashion-shop", "--out", str(tmp_path / "o"),
                            "--fashion-mnist-dir", str(tmp_path / "none")])
    assert r.exit_code == 1 and "dataset-fashion-mnist" in r.output


def _custom(tmp_path: Path, n_bad_items: int) -> tuple[Path, Path, Path]:
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rows = []
    for i in range(20):
        Image.new("L", (8, 8), 10 * i).save(imgs / f"p{i}.png")
        rows.append({"item_id": f"sku-{i}", "title": f"thing {i}", "category": "hats",
                     "price": -1 if i < n_bad_items else 9.5, "in_stock": "yes",
                     "image": f"p{i}.png", "created_at": "2024-03-01T12:00:00Z"})
    items = tmp_path / "items.csv"
    pd.DataFrame(rows).to_csv(items, index=False)
    events = tmp_path / "events.csv"
    pd.DataFrame({"user_id": ["a", "b", "a"], "item_id": ["sku-5", "sku-6", "sku-7"],
                  "event": ["view", "purchase", "cart"], "ts": [1709300000, 1709300100, 1709300200]}
                 ).to_csv(events, index=False)
    return items, events, imgs


def test_import_custom_csv_copies_images_and_reports_bad_rows(tmp_path: Path) -> None:
    items, events, imgs = _custom(tmp_path, n_bad_items=1)
    out = tmp_path / "out"
    r = runner.invoke(app, ["data", "import", "--items", str(items), "--events", str(events),
                            "--images", str(imgs), "--out", str(out), "--max-bad-share", "0.1"])
    assert r.exit_code == 0, r.output
    t = read_dataset(out)
    assert len(t["items"]) == 19 and len(t["events"]) == 3
    first = t["items"]["image"].iloc[0]
    assert (out / first).read_bytes() == (imgs / Path(first).name).read_bytes()
    rej = pd.read_csv(out / "rejected.csv")
    assert rej[["table", "row"]].values.tolist() == [["items", 1]]
    assert "negative price" in rej["reason"].iloc[0]


def test_import_fails_past_the_threshold_and_names_the_report(tmp_path: Path) -> None:
    items, events, imgs = _custom(tmp_path, n_bad_items=5)
    out = tmp_path / "out"
    r = runner.invoke(app, ["data", "import", "--items", str(items), "--events", str(events),
                            "--images", str(imgs), "--out", str(out), "--max-bad-share", "0.1"])
    assert r.exit_code == 1
    assert "too many bad rows" in r.output and "rejected.csv" in r.output
    assert not (out / "items.parquet").exists()


def test_import_missing_file_is_named(tmp_path: Path) -> None:
    r = runner.invoke(app, ["data", "import", "--items", str(tmp_path / "nope.csv"),
                            "--events", str(tmp_path / "e.csv"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "nope.csv" in r.output


@pytest.mark.parametrize("table", ["items", "events", "users"])
def test_import_with_a_missing_column_is_one_line_naming_table_and_column(tmp_path: Path, table: str) -> None:
    cols = {"items": "sku,title,category,price\nA1,Shirt,Shirt,10\n",
            "events": "user_id,item_id,kind,ts\nu1,A1,view,2026-01-01\n",
            "users": "customer\nu1\n"}
    good = {"items": "item_id,title,category,price\nA1,Shirt,Shirt,10\n",
            "events": "user_id,item_id,event,ts\nu1,A1,view,2026-01-01\n", "users": "user_id\nu1\n"}
    paths = {}
    for t in ("items", "events", "users"):
        paths[t] = tmp_path / f"{t}.csv"
        paths[t].write_text(cols[t] if t == table else good[t])
    r = runner.invoke(app, ["data", "import", "--items", str(paths["items"]), "--events", str(paths["events"]),
                            "--users", str(paths["users"]), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].lower().startswith(f"error: {table}: missing required column"), r.output
    assert "Traceback" not in r.output


def test_movielens_command(tmp_path: Path) -> None:
    src = write_classic(tmp_path / "ml")
    r = runner.invoke(app, ["data", "movielens", "--source", str(src), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert len(read_dataset(tmp_path / "out")["events"]) == 4
