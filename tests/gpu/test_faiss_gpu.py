"""FAISS on a GPU (-m gpu; needs faiss-gpu and a device, fails loudly without them): the GPU copy of
each index kind answers filtered searches like exact search."""

import numpy as np
import pytest

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("kind", ["flat", "ivfflat", "ivf"])
def test_gpu_index_answers_like_exact_search(kind: str) -> None:
    from bundle.gpu_index import gpu_count
    from bundle.index import VectorIndex, exact_search

    assert gpu_count() > 0, "FAISS sees no GPU: install the gpu extra (faiss-gpu-cu12) on a CUDA host"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60_000, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[rng.choice(len(x), 200)] + 0.1 * rng.normal(size=(200, 64)).astype(np.float32)
    index = VectorIndex.build(x, kind, nlist=256)
    index.info.nprobe = 256
    assert "GPU" in index.use_gpu()
    for share in (1.0, 0.05):
        ok = rng.random(len(x)) < share
        _, got = index.search(q, 50, allowed=ok)
        ids = np.flatnonzero(ok)
        _, t = exact_search(x[ids], q, 50)
        assert (got == ids[t]).mean() > 0.99 and ok[got].all()
