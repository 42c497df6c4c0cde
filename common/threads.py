"""Thread pools sized from the cores a serving worker has: the one place the sizes are decided.

A worker runs its recommendation batches on one thread (serving/batcher.py), and every native
library under it keeps its own pool sized, by default, to the whole host: ONNX Runtime's intra-op
pool, FAISS's OpenMP, numpy's and FAISS's OpenBLAS, numba. N workers on C cores then start N x C
threads per library that spin for work (OpenBLAS and OpenMP busy-wait), and the workers steal each
other's cores. Each worker gets ``cores // workers`` threads per pool instead (at least one).

``vitrine serve`` puts the sizes in the environment before uvicorn starts its workers (the variables
the libraries read when they load) and prints them; ``create_app`` applies them again at run time
(threadpoolctl, FAISS, numba), which also covers a server started by plain ``uvicorn``.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# The variables the native libraries read once, when loaded (numpy's OpenBLAS, FAISS's OpenMP, MKL, numba).
ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


@dataclass(frozen=True)
class Pools:
    cores: int  # cores this process may run on: CPU affinity, capped by a cgroup quota (containers)
    workers: int  # server processes sharing them
    ort: int  # ONNX Runtime intra-op threads per session
    faiss: int  # FAISS's OpenMP threads per search
    blas: int  # OpenBLAS / MKL threads (numpy, FAISS's brute-force matmuls)
    numba: int  # numba's parallel pool (our kernels are serial today; capped for any that is not)

    def describe(self) -> str:
        return (f"{self.cores} core(s), {self.workers} worker(s): per worker ONNX Runtime intra-op {self.ort}, "
                f"FAISS/OpenMP {self.faiss}, BLAS {self.blas}, numba {self.numba} thread(s)")


def cgroup_cores(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> float | None:
    """The cgroup v2 CPU quota in cores (``"200000 100000"`` = 2.0), None when unlimited or unreadable."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def cores_available() -> int:
    """Cores this process may use: its affinity mask, capped by the cgroup quota (rounded up)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_cores()
    return max(1, min(cores, math.ceil(quota)) if quota else cores)


def plan(workers: int = 1, cores: int | None = None, *, ort: int = 1, faiss: int = 1) -> Pools:
    """BLAS and numba get the worker's share of the cores, ``max(1, cores // workers)``, never more;
    ONNX Runtime and FAISS get ``ort`` / ``faiss`` (VITRINE_ORT_THREADS / VITRINE_FAISS_THREADS, default
    1), capped by the share: a request batch is too small to split across threads (a second intra-op
    thread served fewer requests/s, docs/benchmarks.md "Online service ... compiled ranker features"),
    so a host's cores are used by its workers, one batch each. ``workers`` 0 = one per core."""
    cores = cores or cores_available()
    workers = workers or cores
    if workers < 1:
        raise ValueError(f"workers must be at least 0, got {workers}")
    share = max(1, cores // workers)
    if workers > cores:
        log.warning("%d workers on %d core(s): they will take turns on the cores", workers, cores)
    return Pools(cores=cores, workers=workers, ort=min(ort, share), faiss=min(faiss, share), blas=share,
                 numba=share)


def environment(p: Pools) -> dict[str, str]:
    """The variables that size the pools of a process started after they are set (uvicorn's workers)."""
    env = dict.fromkeys(ENV_VARS[:3], str(p.blas)) | {"NUMBA_NUM_THREADS": str(p.numba)}
    return env | {"VITRINE_WORKERS": str(p.workers)}


def apply(p: Pools) -> dict[str, int]:
    """Size the pools of this (already running) process; OpenMP's and numba's counts are per calling
    thread, so call it on the thread that runs the batches. Returns what each library now reports."""
    import faiss
    import numba
    from threadpoolctl import threadpool_info, threadpool_limits

    numba.set_num_threads(min(p.numba, numba.config.NUMBA_NUM_THREADS))  # first: it may load an OpenMP
    threadpool_limits(limits=p.blas, user_api="blas")
    threadpool_limits(limits=p.faiss, user_api="openmp")
    faiss.omp_set_num_threads(p.faiss)
    seen = {f"{i['internal_api']}:{Path(i['filepath']).name}": i["num_threads"] for i in threadpool_info()}
    log.info("thread pools: %s; %s", p.describe(), seen)
    return seen | {"faiss": faiss.omp_get_max_threads(), "numba": numba.get_num_threads(), "ort": p.ort}
