"""The GPU search path (bundle/gpu_index.py) on the CPU: the same copy of the index the GPU would
hold, searched without ID selectors, over-fetching and refilling — checked against exact search."""

import numpy as np
import pytest

from bundle.gpu_index import overfetch_search
from bundle.index import VectorIndex, exact_search


def _unit(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _exact_filtered(x: np.ndarray, q: np.ndarray, k: int, ok: np.ndarray) -> np.ndarray:
    ids = np.flatnonzero(ok)
    _, i = exact_search(x[ids], q, k)
    return np.where(i >= 0, ids[np.maximum(i, 0)], -1)


@pytest.mark.parametrize("share", [1.0, 0.3, 0.02, 0.0005])
def test_overfetch_matches_exact_filtered_search(share: float) -> None:
    x, q, k = _unit(20_000, 32, 0), _unit(50, 32, 1), 20
    ok = np.random.default_rng(2).random(len(x)) < share
    flat = VectorIndex.build(x, "flat")
    D, I, short = overfetch_search(lambda a, depth: exact_search(x, a, depth), q, k, ok, max_k=2048)
    truth = _exact_filtered(x, q, k, ok)
    want = min(k, int(ok.sum()))
    done = ~short
    assert (I[done, :want] == truth[done, :want]).all()
    assert ok[I[I >= 0]].all()  # never a row that is not allowed
    # a filter this tight leaves some queries short at depth 2,048: the caller finishes them exactly
    assert short.any() == (share < 0.001)
    assert flat.info.kind == "flat"


@pytest.mark.parametrize("kind", ["flat", "ivfflat", "ivf"])
def test_the_gpu_path_answers_like_the_cpu_path(kind: str) -> None:
    x, q, k = _unit(6_000, 32, 3), _unit(40, 32, 4), 10
    cpu = VectorIndex.build(x, kind, nlist=64)
    cpu.info.nprobe = 64  # everything probed: the two paths must then agree exactly
    gpu = VectorIndex.build(x, kind, nlist=64)
    gpu.info.nprobe = 64
    assert "stand-in" in gpu.use_gpu(stand_in=True)
    for share in (1.0, 0.1, 0.001):
        ok = np.random.default_rng(5).random(len(x)) < share
        _, a = cpu.search(q, k, allowed=ok)
        _, b = gpu.search(q, k, allowed=ok)
        truth = _exact_filtered(x, q, k, ok)
        want = min(k, int(ok.sum()))
        assert (b[:, :want] == truth[:, :want]).mean() > 0.99, (kind, share)
        assert (b[:, :want] >= 0).all() and ok[b[b >= 0]].all()
        assert (a[:, :want] >= 0).all()


def test_removed_and_added_rows_on_the_gpu_path() -> None:
    x, q = _unit(3_000, 16, 6), _unit(5, 16, 7)
    index = VectorIndex.build(x, "flat")
    index.use_gpu(stand_in=True)
    top = index.search(q[:1], 5)[1][0]
    index.remove(top[:2])
    after = index.search(q[:1], 5)[1][0]
    assert not set(top[:2]) & set(after) and list(after[:3]) == list(top[2:5])
    new = index.add(q[1:2])  # an item identical to the query: it must come first
    assert index.search(q[1:2], 3)[1][0, 0] == new[0]
