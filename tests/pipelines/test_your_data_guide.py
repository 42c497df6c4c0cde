"""docs/your-data.md is a test: its command block runs, as written, on a generated shop shaped like
a real export (tests/foreign_shop.py). Every planted bad row is reported by reason, nothing crashes,
the bundle is served, its answers beat popularity on the next day's events, and the next night's
export appends idempotently and is picked up by the next nightly run."""

import os
import re
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import yaml
from fastapi.testclient import TestClient

from bundle.versions import current_version
from serving.app import create_app
from serving.settings import ServingSettings
from tests.foreign_shop import PLANTED, write_foreign_shop

ROOT = Path(__file__).parents[2]
TINY = {"vision": {"model": "resnet_fm_tiny", "epochs": 1, "batch_size": 32, "lr": 1.0, "device": "cpu"},
        "two_tower": {"epochs": 3, "batch_size": 128, "n_negatives": 64, "emb_dim": 16, "hidden": 32,
                      "out_dim": 16, "device": "cpu"},
        "ranker": {"candidates": 50, "epochs": 3, "device": "cpu"}, "valid_users": 1000}


def guide_commands() -> list[str]:
    text = (ROOT / "docs/your-data.md").read_text()
    block = text.split("<!-- guide:start -->")[1].split("<!-- guide:end -->")[0]
    return [ln.strip() for ln in block.splitlines() if ln.strip().startswith("vitrine ")]


def _run(cmd: str, env: dict) -> str:
    args = [os.path.expandvars(a) for a in shlex.split(cmd)]
    exe = Path(sys.executable).parent / "vitrine"
    r = subprocess.run([str(exe), *args[1:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{cmd}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert "Traceback" not in r.stdout + r.stderr
    return r.stdout + r.stderr


def _served_vs_popular(artifacts: Path, data: Path, next_events: Path, k: int = 10) -> tuple[int, int, int]:
    nxt = pd.read_csv(next_events)
    nxt = nxt[nxt["action"] != "wishlist"]
    truth = nxt.groupby("customer_id")["sku"].apply(set).to_dict()
    popular = [i for i, _ in Counter(pd.read_parquet(data / "events.parquet")["item_id"]).most_common(k)]
    served = pop = model_answers = 0
    with TestClient(create_app(ServingSettings(artifacts_dir=artifacts, candidates=50))) as c:
        for user, items in truth.items():
            r = c.post("/v1/recommendations", json={"user_id": user, "k": k, "exclude_purchased": False,
                                                    "in_stock_only": False}).json()
            model_answers += r["fallback"] is None
            served += len(items & {i["item_id"] for i in r["items"]})
            pop += len(items & set(popular))
    assert model_answers == len(truth)  # every known shopper answered by the model path
    return served, pop, len(truth)


def test_the_your_data_guide_runs_on_a_foreign_shaped_shop(tmp_path: Path, monkeypatch) -> None:
    shop = write_foreign_shop(tmp_path / "export")
    data, artifacts, config = tmp_path / "data", tmp_path / "artifacts", tmp_path / "nightly.yaml"
    config.write_text(yaml.safe_dump(TINY))
    env = os.environ | {"SHOP": str(shop), "DATA": str(data), "ARTIFACTS": str(artifacts), "CONFIG": str(config),
                        "COLUMNS": "200", "TQDM_DISABLE": "1"}
    for k in ("SHOP", "DATA", "ARTIFACTS", "CONFIG"):  # what the guide's $VARS expand to
        monkeypatch.setenv(k, env[k])
    cmds = guide_commands()
    assert [c.split()[1:3] for c in cmds][:3] == [["data", "import"]] * 2 + [["nightly", "--data"]]

    proposal = _run(cmds[0], env)
    assert "sku: item_id" in proposal and not (data / "items.parquet").exists()
    out = _run(cmds[1], env)
    assert "wishlist" in out  # the dropped event name, counted
    rejected = pd.read_csv(data / "rejected.csv")
    for table, planted in PLANTED.items():
        rows = rejected[rejected["table"] == table]
        for ident, reason in planted:
            hit = rows[rows["reason"].str.contains(re.escape(reason)) & rows["record"].str.contains(re.escape(ident))]
            assert len(hit) == 1, (table, ident, reason, rows.to_string())
    assert len(rejected) == sum(len(p) for p in PLANTED.values())  # nothing else
    items = pd.read_parquet(data / "items.parquet")
    assert items["category"].nunique() == 10 and items["item_id"].str.startswith("SKU-").all()

    _run(cmds[2], env)
    first = current_version(artifacts)
    assert first is not None
    served, pop, users = _served_vs_popular(artifacts, data, shop / "events-next.csv")
    assert served > pop, (served, pop, users)

    n_events = len(pd.read_parquet(data / "events.parquet"))
    out = _run(cmds[3], env)
    grown = len(pd.read_parquet(data / "events.parquet"))
    assert grown > n_events and "1 new items, 2 changed, 1 removed" in out  # a removal changes the stock flag
    out = _run(cmds[4], env)  # the same export again
    assert len(pd.read_parquet(data / "events.parquet")) == grown and f"0 events ({grown - n_events} already" in out
    items = pd.read_parquet(data / "items.parquet").set_index("item_id")
    assert items.loc["SKU-00005", "price"] == 1.0 and not items.loc["SKU-00006", "in_stock"]
    assert "SKU-00300" in items.index

    _run(cmds[5], env)
    assert current_version(artifacts) not in (None, first)  # the next night picked up the new state
