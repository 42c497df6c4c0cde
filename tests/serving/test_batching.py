"""Micro-batching: a batch answers exactly what the requests answer one by one, errors stay with
their request, and concurrent HTTP requests really share batches."""

import asyncio
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic_core import to_json

from recsys.ranking import features_block
from serving.batcher import Batcher
from serving.errors import RequestError
from serving.loaded_bundle import load_current
from serving.recommend import recommend, recommend_many
from serving.schemas import RecommendationRequest, RecommendationResponse
from serving.settings import ServingSettings


def _requests(artifacts: Path) -> list[RecommendationRequest]:
    v = (artifacts / "CURRENT").read_text().strip()
    users = pd.read_parquet(artifacts / "bundles" / v / "users.parquet")
    known = users[users["history"].map(len) > 0]["user_id"].tolist()[:6]
    return ([RecommendationRequest(user_id=u, k=5) for u in known] + [RecommendationRequest(k=5)] +
            [RecommendationRequest(user_id=known[0], categories=["Spaceship"])] +
            [RecommendationRequest(user_id=known[1], k=3, offset=2, diversity=1, in_stock_only=False)] +
            # a page past the union's size: its block is wider than the others' (padded into one ranker call)
            [RecommendationRequest(user_id=known[2], k=7, offset=240, in_stock_only=False)])


def test_batch_equals_one_by_one_and_errors_stay_local(tiny_artifacts: Path) -> None:
    b = load_current(ServingSettings(artifacts_dir=tiny_artifacts, candidates=50))
    reqs = _requests(tiny_artifacts)
    batch = recommend_many(b, reqs, 50)
    assert len(batch[-1]["items"]) == 7  # the deep page is served (its block was the widest)
    for r, got in zip(reqs, batch, strict=True):
        if r.categories == ["Spaceship"]:
            assert isinstance(got, RequestError) and "unknown categories" in str(got)
            continue
        one = recommend(b, r, 50)
        assert [i["item_id"] for i in got["items"]] == [i.item_id for i in one.items]
        assert got["fallback"] == one.fallback
        if got["items"] and got["items"][0]["score"] is not None:
            assert abs(got["items"][0]["score"] - one.items[0].score) < 1e-5
        # the route's serialisation of the plain answer is byte-for-byte the response model's
        assert to_json(got).decode() == RecommendationResponse.model_validate(got).model_dump_json()


def test_batcher_groups_concurrent_submissions() -> None:
    seen: list[int] = []

    def fn(items: list[int]) -> list:
        seen.append(len(items))
        return [ValueError("odd") if i % 2 else i * 10 for i in items]

    async def main() -> list:
        bt = Batcher(fn, max_batch=4)
        return await asyncio.gather(*(bt.submit(i) for i in range(10)), return_exceptions=True)

    out = asyncio.run(main())
    assert [o if not isinstance(o, Exception) else "err" for o in out] == [0, "err", 20, "err", 40, "err", 60, "err",
                                                                           80, "err"]
    assert seen == [4, 4, 2]  # all ten were queued before the first flush ran


def test_ranker_scores_do_not_depend_on_the_batch_or_its_padding(tiny_artifacts: Path) -> None:
    """Lists of different lengths share one padded ranker call; each list's scores equal its own call."""
    b = load_current(ServingSettings(artifacts_dir=tiny_artifacts))
    users = [u for u in range(len(b.shoppers.history)) if len(b.shoppers.history[u])][:3]
    U = b.user_vectors([None] * 3, [b.shoppers.history[u] for u in users], [b.shoppers.profiles[u] for u in users])
    D, I = b.items_index.search(U, 20)
    lens = [20, 7, 1]  # the longest list sets the block; the others are zero-padded, as union_block pads them
    cand, score = np.zeros((3, 20), np.int64), np.zeros((3, 20), np.float32)
    for j, n in enumerate(lens):
        cand[j, :n], score[j, :n] = I[j, :n], D[j, :n]
    seen, recent = [b.shoppers.seen[u] for u in users], [b.shoppers.history[u] for u in users]
    def rank_block(U, cand, seen, recent, score):  # the ranking stage's features and ranker call
        stats, ncat = b.catalog.stats, b.spec.category_vocab.size
        block = features_block(cand, None, None, U, b.items_index.vectors, seen, recent, stats, ncat, score)
        return b.ranker.score(block, U, b.catalog.codes)

    block = rank_block(U, cand, seen, recent, score=score)
    together = [block[j, :n] for j, n in enumerate(lens)]
    assert [len(s) for s in together] == lens
    for j, n in enumerate(lens):
        alone = rank_block(U[j : j + 1], cand[j : j + 1, :n], seen[j : j + 1], recent[j : j + 1],
                           score=score[j : j + 1, :n])[0]
        np.testing.assert_allclose(together[j], alone, rtol=1e-5, atol=1e-5)


def test_a_batch_waits_for_requests_inside_and_starts_when_all_are_queued() -> None:
    """Requests between route entry and submit are waited for; once every one inside is queued the
    batch starts at once, long before ``max_wait_s``."""
    seen: list[list[int]] = []

    def fn(items: list[int]) -> list:
        seen.append(sorted(items))
        return items

    async def request(bt: Batcher, i: int, parse_s: float) -> int:
        with bt.arrival():
            await asyncio.sleep(parse_s)  # reading and validating the body
            return await bt.submit(i)

    async def main() -> float:
        bt = Batcher(fn, max_batch=32, max_wait_s=30.0)
        t = asyncio.get_running_loop().time()
        await asyncio.gather(request(bt, 0, 0.0), request(bt, 1, 0.0), request(bt, 2, 0.05))
        return asyncio.get_running_loop().time() - t

    took = asyncio.run(main())
    assert seen == [[0, 1, 2]] and took < 5  # one batch, started when the slow parser submitted
