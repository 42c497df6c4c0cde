"""Recipes are checked when they load (common/recipes.py): a typo in a nightly config is one line
naming the key, before anything trains; the shipped recipes load; the early-stopping state every
training loop keeps resumes exactly."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from common.recipes import from_mapping, plain
from pipelines.nightly import NightlyConfig
from recsys.config import RankerTrainConfig, RecTrainConfig
from vision.config import TrainConfig

ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize(("text", "where"), [
    ("two_tower: {epochz: 3}\n", "two_tower.epochz: unknown key"),
    ("ranker: {channels: {item2item: many}}\n", "ranker.channels.item2item: Input should be a valid integer"),
    ("vision: {lr: fast}\n", "vision.lr: Input should be a valid number"),
    ("gate_marjin: 0.1\n", "gate_marjin: unknown key"),
    ("ranker: {model: {hidden: [64, x]}}\n", "ranker.model.hidden.1: Input should be a valid integer"),
])
def test_a_bad_key_or_value_is_one_line_naming_it(tmp_path: Path, text: str, where: str) -> None:
    cfg = tmp_path / "night.yaml"
    cfg.write_text(text)
    t = time.perf_counter()
    with pytest.raises(ValueError) as e:
        NightlyConfig.from_yaml(cfg)
    assert time.perf_counter() - t < 1.0
    assert str(e.value).startswith(f"{cfg}: {where}") and "\n" not in str(e.value)


def test_the_cli_refuses_a_mistyped_config_before_anything_runs(tmp_path: Path) -> None:
    cfg, art = tmp_path / "night.yaml", tmp_path / "artifacts"
    cfg.write_text("split: temporal-user\ntwo_tower: {epochs: 3, batch_sise: 512}\n")
    r = subprocess.run([sys.executable, "-m", "pipelines.cli", "nightly", "--data", str(tmp_path / "data"),
                        "--artifacts", str(art), "--config", str(cfg)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "two_tower.batch_sise: unknown key" in lines[0], r.stderr
    assert not art.exists()  # no lock taken, no step directory, no run summary


@pytest.mark.parametrize("path", sorted(ROOT.glob("pipelines/configs/*.yaml")) + [ROOT / "docker/config/nightly.yaml"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_nightly_config_loads(path: Path) -> None:
    cfg = NightlyConfig.from_yaml(path)
    assert isinstance(cfg.vision, TrainConfig) and isinstance(cfg.two_tower, RecTrainConfig)
    assert from_mapping(NightlyConfig, plain(cfg)) == cfg  # what a run summary records rebuilds the same recipe


@pytest.mark.parametrize("path", sorted(ROOT.glob("vision/configs/*.yaml")), ids=lambda p: p.name)
def test_every_shipped_cnn_recipe_loads(path: Path) -> None:
    assert TrainConfig.from_yaml(path).epochs > 0


def test_python_callers_get_the_same_checks() -> None:
    cfg = NightlyConfig(ranker={"candidates": 50, "channels": None}, two_tower={"epochs": 1})
    assert cfg.ranker == RankerTrainConfig(candidates=50, channels=None) and cfg.two_tower.epochs == 1
    with pytest.raises(ValueError, match="NightlyConfig.ranker: candidatez: unknown key"):
        NightlyConfig(ranker={"candidatez": 50})


def test_early_stopping_resumes_where_it_left_off(tmp_path: Path) -> None:
    import torch

    from common.torch_runtime import EarlyStopping, resume, save_last

    s = EarlyStopping(patience=2)
    assert s.update(0.3, {"epoch": 1}) and not s.update(0.2, {"epoch": 2}) and not s.stop
    save_last(tmp_path, 1, s, model={"w": torch.ones(1)})
    start, back, ck = resume(tmp_path, patience=2)
    assert start == 2 and (back.best, back.bad, back.history) == (0.3, 1, s.history) and ck["model"]["w"] == 1
    assert not back.update(0.25, {"epoch": 3}) and back.stop  # two epochs without a better score
    assert resume(tmp_path / "fresh", 3)[:2] == (0, EarlyStopping(3))
