"""Tuning across index kinds (bundle/index_tuner.py): the fastest kind meeting the recall target is
kept, every candidate is recorded, and the budget stops further builds."""


from bundle.index import exact_search, recall_at_k
from bundle.index_tuner import candidate_kinds, tune_kinds
from tests.bundle.test_index import clustered


def test_the_fastest_kind_at_the_target_is_kept_and_every_candidate_recorded() -> None:
    x, q = clustered(12_000, seed=3), clustered(400, seed=4)
    vi = tune_kinds(x, q[:200], target_recall=0.95, k=50, kinds=("ivfflat", "ivf", "hnsw", "flat"))
    tried = vi.info.extra["candidates"]
    assert [t["kind"] for t in tried] == ["ivfflat", "ivf", "hnsw", "flat"]
    assert all({"recall", "qps", "bytes", "build_s", "nprobe"} <= set(t) for t in tried)
    meeting = [t for t in tried if t["recall"] >= 0.95]
    assert vi.info.kind == max(meeting, key=lambda t: t["qps"])["kind"]
    _, truth = exact_search(x, q[200:], 50)
    assert recall_at_k(vi.search(q[200:], 50)[1], truth) >= 0.9  # held-out queries


def test_the_budget_stops_further_builds_and_small_catalogs_stay_exact() -> None:
    x, q = clustered(6_000, seed=5), clustered(100, seed=6)
    vi = tune_kinds(x, q, k=20, kinds=("ivfflat", "hnsw"), budget_s=0.0)
    assert vi.info.kind == "ivfflat" and vi.info.extra["candidates"][1]["skipped"].startswith("build budget")
    assert candidate_kinds(40_000, 64) == ("flat",) and candidate_kinds(1_000_000, 64) == ("ivfflat", "ivf", "hnsw")
