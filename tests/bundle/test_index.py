import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bundle import index as ix


def clustered(n: int, d: int = 32, clusters: int = 50, seed: int = 0) -> np.ndarray:
    """Unit vectors from a Gaussian mixture (ANN indexes gain nothing on i.i.d. noise)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d))
    x = centres[rng.integers(0, clusters, n)] + 0.7 * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return clustered(20_000), clustered(300, seed=1)


def test_flat_search_equals_numpy_inner_product_ranking(data) -> None:
    x, q = data
    vi = ix.VectorIndex.build(x[:5000], "flat")
    D, I = vi.search(q[:20], 10)
    want = np.argsort(-(q[:20] @ x[:5000].T), axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(I, want)
    np.testing.assert_allclose(D, np.take_along_axis(q[:20] @ x[:5000].T, want, 1), rtol=1e-5)


def test_kind_follows_catalog_size() -> None:
    assert ix.choose_kind(10_000, 64) == "flat"
    assert ix.choose_kind(70_000, 64) == "ivfflat"
    assert ix.choose_kind(1_000_000, 64) == "ivf"
    assert ix.choose_kind(100_000_000, 64, memory_budget_bytes=8 << 30) == "ivfpq"
    assert ix.default_nlist(1_000_000) == 4096


@pytest.mark.parametrize("kind", ["ivfflat", "ivf", "hnsw"])
def test_tuned_ivf_reaches_the_recall_target_on_new_queries(data, kind: str) -> None:
    x, q = data
    vi = ix.VectorIndex.build(x, kind, nlist=64)
    info = vi.tune(q[:150], target_recall=0.95, k=50)
    assert info.recall_at_k >= 0.95 and 1 <= info.nprobe <= info.nlist  # lists (IVF) or efSearch (HNSW)
    _, truth = ix.exact_search(x, q[150:], 50)
    _, got = vi.search(q[150:], 50)
    assert ix.recall_at_k(got, truth) >= 0.9  # held-out queries, same parameters


@pytest.mark.parametrize("kind", ["flat", "ivfflat", "ivf", "hnsw"])
def test_filtered_search_returns_k_allowed_items_matching_exact(data, kind: str) -> None:
    x, q = data
    rng = np.random.default_rng(3)
    allowed = rng.random(len(x)) < 0.3  # e.g. in stock and in the requested categories
    vi = ix.VectorIndex.build(x, kind, nlist=64)
    vi.tune(q[:100], target_recall=0.95, k=20)
    D, I = vi.search(q[100:160], 20, allowed=allowed)
    assert (I >= 0).all() and allowed[I].all() and I.shape == (60, 20)
    ids = np.flatnonzero(allowed)
    _, t = ix.exact_search(x[ids], q[100:160], 20)
    exact = ids[t]
    r = ix.recall_at_k(I, exact)
    assert r == 1.0 if kind == "flat" else r >= 0.9


def test_tight_filter_is_refilled_to_every_allowed_item(data) -> None:
    x, q = data
    vi = ix.VectorIndex.build(x, "ivf", nlist=64)
    vi.info.nprobe = 1
    allowed = np.zeros(len(x), bool)
    allowed[np.random.default_rng(4).choice(len(x), 30, replace=False)] = True
    _, I = vi.search(q[:5], 50, allowed=allowed)
    for row in I:
        assert sorted(row[row >= 0]) == sorted(np.flatnonzero(allowed))


@pytest.mark.parametrize("kind", ["flat", "ivfflat", "ivf", "ivfpq", "hnsw"])
def test_add_hide_and_remove_without_rebuild(data, tmp_path, kind: str) -> None:
    x, q = data
    vi = ix.VectorIndex.build(x, kind, nlist=64)
    vi.info.nprobe = 64
    assert vi.remove(np.arange(10)) == 10  # a removal first: later ids must not collide
    new = q[:1] / np.linalg.norm(q[:1])
    assert vi.add(new).tolist() == [len(x)]
    assert vi.search(q[:1], 1)[1][0, 0] == len(x)  # its own vector is the best match
    hidden = np.ones(len(x) + 1, bool)
    hidden[len(x)] = False  # out of stock: filtered, still in the index
    assert vi.search(q[:1], 5, allowed=hidden)[1][0].tolist().count(len(x)) == 0
    vi.save(tmp_path / "index.faiss")
    again = ix.VectorIndex.load(tmp_path / "index.faiss", vi.info.to_dict(), vi.vectors)
    assert again.search(q[:1], 1)[1][0, 0] == len(x)
    assert vi.remove(np.array([len(x)])) == 1
    _, I = vi.search(q[:1], 10)
    assert len(x) not in I[0] and (I[0] >= 10).all()


@pytest.mark.parametrize("kind", ["flat", "ivfflat", "ivf", "hnsw"])
def test_mapped_index_searches_like_a_read_one_and_copies_before_a_change(data, tmp_path, kind: str) -> None:
    x, q = data
    vi = ix.VectorIndex.build(x, kind, nlist=64)
    vi.info.nprobe = 8
    vi.save(tmp_path / "index.faiss")
    np.save(tmp_path / "vectors.npy", x)
    before = (tmp_path / "index.faiss").read_bytes()
    read = ix.VectorIndex.load(tmp_path / "index.faiss", vi.info.to_dict(), x)
    mapped = ix.VectorIndex.load(tmp_path / "index.faiss", vi.info.to_dict(), np.load(tmp_path / "vectors.npy",
                                 mmap_mode="c"), mmap=True)
    assert mapped.mapped and not mapped.vectors.flags.owndata  # a view of the mapping, not a copy
    D0, I0 = read.search(q, 20)
    D1, I1 = mapped.search(q, 20)
    np.testing.assert_array_equal(I0, I1)
    np.testing.assert_allclose(D0, D1, rtol=1e-6)
    # a live change makes a private copy (faiss aborts on growing a view of a file) and leaves the file alone
    new = q[:1] / np.linalg.norm(q[:1])
    assert mapped.add(new).tolist() == [len(x)] and not mapped.mapped
    assert mapped.search(q[:1], 1)[1][0, 0] == len(x)
    mapped.remove(np.arange(5))
    assert (tmp_path / "index.faiss").read_bytes() == before
    assert np.array_equal(np.load(tmp_path / "vectors.npy"), x)


def test_serving_index_is_torch_free() -> None:
    code = "import sys, bundle.index, bundle.versions; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
