"""Thread pools sized per worker (common/threads.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from common.threads import ENV_VARS, cgroup_cores, environment, plan

ROOT = Path(__file__).parents[2]


def test_each_worker_gets_its_share_of_the_cores() -> None:
    p = plan(8, cores=16)
    assert (p.blas, p.numba, p.ort, p.faiss) == (2, 2, 1, 1)  # a batch runs on one thread unless asked
    assert plan(8, cores=16, ort=4, faiss=3).ort == 2  # never more than the worker's share
    assert plan(8, cores=16, ort=4, faiss=3).faiss == 2
    assert plan(1, cores=6).blas == 6
    assert plan(0, cores=6).workers == 6  # 0 = one per core
    assert plan(3, cores=2).blas == 1  # more workers than cores still get one thread each


def test_bad_worker_count_is_refused() -> None:
    with pytest.raises(ValueError, match="workers"):
        plan(-1, cores=4)


def test_cgroup_quota_caps_the_cores(tmp_path: Path) -> None:
    f = tmp_path / "cpu.max"
    f.write_text("150000 100000\n")
    assert cgroup_cores(f) == 1.5
    f.write_text("max 100000\n")
    assert cgroup_cores(f) is None
    assert cgroup_cores(tmp_path / "missing") is None


def test_environment_names_every_pool() -> None:
    env = environment(plan(4, cores=8))
    assert {k: env[k] for k in ENV_VARS} == dict.fromkeys(ENV_VARS, "2") and env["VITRINE_WORKERS"] == "4"


def test_apply_sizes_the_loaded_libraries() -> None:
    """In a fresh process (the pools are process-wide): every BLAS and OpenMP pool numpy and FAISS
    loaded reports the planned size afterwards."""
    code = ("import json; from common.threads import apply, plan; import numpy, faiss;"
            "from threadpoolctl import threadpool_info;"
            "seen = apply(plan(2, cores=2));"
            "print(json.dumps({'pools': [i['num_threads'] for i in threadpool_info()], 'faiss': seen['faiss'],"
            "'numba': seen['numba']}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"})
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["pools"] and set(got["pools"]) == {1} and got["faiss"] == 1 and got["numba"] == 1
