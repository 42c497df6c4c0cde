"""The nightly job SIGKILLed at random points over several seeds: after each kill CURRENT still names
a complete bundle (the old one, or the new one if the kill came after the publish), nothing
half-written is ever published, and the next run resumes and publishes one complete bundle that the
service loads.

Slow (about two and a half minutes); `./dev test` runs it after the fast suite, as CI does."""

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bundle.versions import bundles_dir, current_version, list_bundles, verify_bundle
from serving.smoke import check_servable
from tests.conftest import build_tiny_shop

KILLS = 8  # one random point in each eighth of an uninterrupted night, so every stage is hit
ROOT = Path(__file__).parents[2]
NIGHT = {"vision": {"model": "resnet_fm_tiny", "epochs": 1, "batch_size": 32, "lr": 1.0, "device": "cpu"},
         "two_tower": {"epochs": 2, "batch_size": 128, "n_negatives": 64, "emb_dim": 16, "hidden": 32,
                       "out_dim": 16, "device": "cpu"},
         "ranker": {"candidates": 50, "epochs": 2, "device": "cpu"}, "valid_users": 1000}
# The second night changes every step's config, so every step (CNN included) runs again.
NEXT = NIGHT | {"vision": NIGHT["vision"] | {"epochs": 2}, "two_tower": NIGHT["two_tower"] | {"epochs": 3}}


def _night(shop: Path, art: Path, cfg: dict, tmp: Path) -> list[str]:
    path = tmp / f"night-{abs(hash(str(cfg))) % 10**8}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return [sys.executable, "-m", "pipelines.cli", "nightly", "--data", str(shop), "--artifacts", str(art),
            "--config", str(path)]


def _run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return time.perf_counter() - t0


def _assert_nothing_partial(art: Path, allowed: set[str | None]) -> str | None:
    cur = current_version(art)
    assert cur in allowed or cur not in {None, *allowed} and cur in list_bundles(art), cur
    for v in list_bundles(art):  # every published version is whole
        verify_bundle(bundles_dir(art) / v)
    return cur


@pytest.mark.slow
def test_the_nightly_job_killed_at_random_points_never_publishes_a_partial_bundle(fake_fmnist, tmp_path: Path) -> None:
    shop = build_tiny_shop(tmp_path / "shop", fake_fmnist, days=20)
    base = tmp_path / "base"
    _run(_night(shop, base, NIGHT, tmp_path))
    first = current_version(base)
    assert first is not None
    # How long an uninterrupted second night takes: the kills fall uniformly inside it.
    ref = tmp_path / "ref"
    shutil.copytree(base, ref)
    duration = _run(_night(shop, ref, NEXT, tmp_path))
    stages = []
    for seed in range(KILLS):
        art = tmp_path / f"kill-{seed}"
        shutil.copytree(base, art)
        copied = time.time()
        at = random.Random(seed).uniform(duration * seed / KILLS, duration * (seed + 1) / KILLS)
        p = subprocess.Popen(_night(shop, art, NEXT, tmp_path), cwd=ROOT, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(at)
        finished = p.poll() is not None
        if not finished:
            os.killpg(p.pid, signal.SIGKILL)  # no chance to clean up
        p.wait()
        done = sorted(d.parent.name.split("-")[0] for d in (art / "work").glob("*/done.json")
                      if d.stat().st_mtime > copied)
        stages.append((seed, round(at, 1), finished, done))
        # Right after the kill: CURRENT is the old bundle or a complete new one, never anything else.
        after_kill = _assert_nothing_partial(art, {first})
        # The next run resumes, publishes one complete bundle, and the service loads it.
        _run(_night(shop, art, NEXT, tmp_path))
        cur = _assert_nothing_partial(art, set())
        assert cur != first and (after_kill == first or cur >= after_kill)
        check_servable(bundles_dir(art) / cur)
        assert not [p.name for p in bundles_dir(art).iterdir() if p.name.startswith(".tmp-")], seed
        assert 2 <= len(list_bundles(art)) <= 3  # the first night's, the new one (+ one if killed after publish)
    print("kill points (seed, seconds into a", round(duration, 1), "s night, finished?, steps on disk):", stages)
