"""Ranker features against hand-computed values, the DCN-v2's starting point, ONNX parity, and
that training on lists improves held-out order when the signal is there."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from common.onnx_runtime import make_session
from recsys.channels import FIELDS
from recsys.rank_features import DENSE, ItemStats, rank_features
from recsys.ranker import DCNRanker, Lists, RankerConfig, export_ranker, ndcg10, rerank


def _stats() -> ItemStats:
    return ItemStats(category=np.array([2, 2, 3, 4]), log_price=np.log1p([10.0, 20.0, 40.0, 10.0]).astype(np.float32),
                     popularity=np.log1p([5, 0, 1, 2]).astype(np.float32), recent=np.zeros(4, np.float32),
                     age_days=np.array([1, 2, 3, 400], np.float32),
                     image=np.eye(4, 3, dtype=np.float32))


def test_rank_features_match_a_hand_computed_example() -> None:
    st = _stats()
    f = rank_features(st, seen=[np.array([0, 1, 2])], recent=[np.array([2, 0])], cand=np.array([[1, 3]]),
                      score=np.array([[0.9, 0.5]], np.float32), n_categories=5)[0]
    col = {n: i for i, n in enumerate(DENSE)}
    assert f[0, col["tower_score"]] == pytest.approx(0.9) and f[0, col["tower_rank"]] == 0
    assert f[0, col["cat_share"]] == pytest.approx(2 / 3) and f[1, col["cat_share"]] == 0  # 2 of 3 seen in cat 2
    assert f[0, col["rel_price"]] == pytest.approx(np.log1p(20) - np.log1p(20))  # median seen price = 20
    assert f[1, col["rel_price"]] == pytest.approx(np.log1p(10) - np.log1p(20))
    assert f[0, col["same_cat_as_last"]] == 0  # last item (row 2) is category 3
    # image: row 1 = e1; recent rows 2 (e2... eye(4,3) row 2 = e2) and 0 (e0): similarity 0 to both
    assert f[0, col["image_sim_max"]] == 0
    assert f[1, col["age"]] == pytest.approx(np.log1p(400))
    assert f[0, col["history_len"]] == pytest.approx(np.log1p(3))


def _features_one_user_at_a_time(stats: ItemStats, seen: list, recent: list, cand: np.ndarray, score: np.ndarray,
                                 n_categories: int, channels: dict | None = None) -> np.ndarray:
    """The plain per-user numpy loop: the oracle the compiled ``rank_features`` must equal."""
    U, C = cand.shape
    out = np.zeros((U, C, len(DENSE)), np.float32)
    out[..., 0] = score
    if channels is None:  # the tower's list in its order, no other channel
        channels = {"tower_rank": np.tile(np.arange(C, dtype=np.float32), (U, 1)), "item2item_score": np.zeros((U, C)),
                    "item2item_rank": np.full((U, C), 2000.0), "category_popular_rank": np.full((U, C), 2000.0),
                    "item2item_recent_score": np.zeros((U, C))}
    col = {n: i for i, n in enumerate(DENSE)}
    for name in ("tower_rank", "item2item_rank", "category_popular_rank"):
        out[..., col[name]] = np.log1p(channels[name]) / np.log1p(200)
    out[..., col["item2item_score"]] = channels["item2item_score"]
    out[..., col["item2item_recent_score"]] = channels["item2item_recent_score"]
    ccat = stats.category[cand]
    for u in range(U):
        s, r = seen[u], recent[u]
        if len(s):
            counts = np.bincount(stats.category[s], minlength=n_categories).astype(np.float32)
            out[u, :, 2] = counts[ccat[u]] / len(s)
            out[u, :, 3] = np.log1p(counts[ccat[u]])
            out[u, :, 4] = stats.log_price[cand[u]] - np.median(stats.log_price[s])
        if len(r):
            out[u, :, 11] = ccat[u] == stats.category[r[0]]
            sims = stats.image[cand[u]] @ stats.image[r].T
            out[u, :, 8], out[u, :, 9] = sims.mean(1), sims.max(1)
        out[u, :, 10] = np.log1p(len(s))
    out[..., 5], out[..., 6], out[..., 7] = stats.popularity[cand], stats.recent[cand], np.log1p(stats.age_days[cand])
    return out


def test_batched_features_equal_the_per_user_loop() -> None:
    rng = np.random.default_rng(3)
    n, ncat = 50, 6
    img = rng.standard_normal((n, 8)).astype(np.float32)
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    st = ItemStats(category=rng.integers(0, ncat, n), log_price=rng.random(n).astype(np.float32) * 5,
                   popularity=rng.random(n).astype(np.float32), recent=rng.random(n).astype(np.float32),
                   age_days=rng.random(n).astype(np.float32) * 100, image=img)
    # ragged lists, odd and even lengths (median of one or two middle values) and empty ones
    seen = [rng.integers(0, n, m) for m in (5, 0, 8, 1, 12)]
    recent = [rng.integers(0, n, m) for m in (3, 0, 0, 1, 7)]
    cand, score = rng.integers(0, n, (5, 9)), rng.random((5, 9)).astype(np.float32)
    np.testing.assert_allclose(rank_features(st, seen, recent, cand, score, ncat),
                               _features_one_user_at_a_time(st, seen, recent, cand, score, ncat), rtol=1e-5, atol=1e-6)
    ch = {"tower_rank": rng.integers(0, 300, (5, 9)).astype(np.float32), "item2item_score": rng.random((5, 9)),
          "item2item_rank": rng.integers(0, 2001, (5, 9)).astype(np.float32),
          "category_popular_rank": rng.integers(0, 2001, (5, 9)).astype(np.float32),
          "item2item_recent_score": rng.random((5, 9))}
    np.testing.assert_allclose(rank_features(st, seen, recent, cand, score, ncat, ch),
                               _features_one_user_at_a_time(st, seen, recent, cand, score, ncat, ch),
                               rtol=1e-5, atol=1e-6)
    block = np.stack([ch[k] for k in FIELDS], -1)  # union_block's form: the same features
    np.testing.assert_array_equal(rank_features(st, seen, recent, cand, score, ncat, block),
                                  rank_features(st, seen, recent, cand, score, ncat, ch))
    want = _features_one_user_at_a_time(st, seen, recent, cand, score, ncat, ch)
    st.image = None  # a catalog without photos: the image columns stay 0, the rest as before
    no_img = rank_features(st, seen, recent, cand, score, ncat, ch)
    assert not no_img[..., 8:10].any()
    np.testing.assert_allclose(np.delete(no_img, [8, 9], -1), np.delete(want, [8, 9], -1), rtol=1e-5, atol=1e-6)


def test_features_refuse_rows_outside_the_catalog() -> None:
    st = _stats()  # 4 items: the compiled pass checks no bounds, the wrapper must
    ok = dict(seen=[np.array([0])], recent=[np.array([1])], cand=np.array([[1, 3]]),
              score=np.zeros((1, 2), np.float32), n_categories=5)
    assert rank_features(st, **ok).shape == (1, 2, len(DENSE))
    for field, bad in (("cand", np.array([[1, 4]])), ("seen", [np.array([-1])]), ("recent", [np.array([9])])):
        with pytest.raises(ValueError, match=f"{field} holds rows outside the catalog's 4"):
            rank_features(st, **(ok | {field: bad}))
    # a category code past the table (3 known here) counts nowhere, and writes nothing astray
    f = rank_features(st, **(ok | {"seen": [np.array([0, 3])], "n_categories": 3}))  # seen: categories 2, 4
    assert f[0, 0, DENSE.index("cat_share")] == 0.5 and f[0, 1, DENSE.index("cat_share")] == 0  # cand: 2, 4


def test_item_stats_round_trip_and_live_append(tmp_path: Path) -> None:
    st = _stats()
    st.save(tmp_path / "s.npz")
    back = ItemStats.load(tmp_path / "s.npz")
    np.testing.assert_array_equal(back.category, st.category)
    back.append(category=3, log_price=1.0, image=np.ones(3, np.float32))
    assert len(back.category) == 5 and back.popularity[-1] == 0 and back.image.shape == (5, 3)


def test_item_stats_compute_counts_events_up_to_now() -> None:
    items = pd.DataFrame({"price": [1.0, 2.0], "created_at": pd.to_datetime(["2026-01-01", "2026-01-09"], utc=True)})
    ev = pd.DataFrame({"ts": pd.to_datetime(["2026-01-01", "2026-01-08", "2026-01-10"], utc=True)})
    st = ItemStats.compute(items, np.array([0, 1]), ev, np.array([0, 0, 1]), None)
    np.testing.assert_allclose(st.popularity, np.log1p([2, 1]))
    np.testing.assert_allclose(st.recent, np.log1p([1, 1]))  # 7 days before 2026-01-10: 01-08 and 01-10
    np.testing.assert_allclose(st.age_days, [9, 1])


def _lists(n_users: int = 60, C: int = 20, seed: int = 0) -> tuple[Lists, np.ndarray, np.ndarray]:
    """Lists where the relevant candidate is always the one with the largest feature 2, not the top tower score."""
    rng = np.random.default_rng(seed)
    dense = rng.standard_normal((n_users, C, len(DENSE))).astype(np.float32)
    dense[..., 0] = np.sort(rng.random((n_users, C)), 1)[:, ::-1]  # tower order
    best = dense[..., 2].argmax(1)
    cand = np.stack([rng.permutation(100)[:C] for _ in range(n_users)])
    label = np.zeros((n_users, C), bool)
    label[np.arange(n_users), best] = True
    vecs = rng.standard_normal((100, 8)).astype(np.float32)
    return Lists(rng.standard_normal((n_users, 8)).astype(np.float32), cand, dense, label,
                 [cand[u, best[u]][None] for u in range(n_users)]), vecs, rng.integers(0, 3, 100)


def test_untrained_ranker_keeps_the_tower_order_and_training_learns_the_signal() -> None:
    lists, vecs, cats = _lists()
    model = DCNRanker(RankerConfig(vec_dim=8, n_categories=3))
    np.testing.assert_array_equal(rerank(model, lists, vecs, cats), lists.cand)  # head starts at zero
    before = ndcg10(lists.cand, lists.relevant)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    from recsys.ranker import _tensors

    for _ in range(150):
        logits = model(*_tensors(lists, vecs, cats, np.arange(40), "cpu")).view(40, -1)
        y = torch.from_numpy(lists.label[:40]).float()
        loss = -(y * torch.log_softmax(logits, 1)).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    held = Lists(lists.user_vec[40:], lists.cand[40:], lists.dense[40:], lists.label[40:], lists.relevant[40:])
    assert ndcg10(rerank(model, held, vecs, cats), held.relevant) > max(0.6, 2 * ndcg10(held.cand, held.relevant))
    assert before < 0.6


def test_ranker_onnx_matches_torch_with_dynamic_batch(tmp_path: Path) -> None:
    model = DCNRanker(RankerConfig(vec_dim=8, n_categories=3))
    torch.nn.init.normal_(model.head.weight, std=0.1)
    diff = export_ranker(model, tmp_path / "r.onnx")
    assert diff < 1e-4
    sess = make_session(tmp_path / "r.onnx", device="cpu")
    for b in (1, 33):
        out = sess.run(None, {"dense": np.zeros((b, len(DENSE)), np.float32), "user_vec": np.zeros((b, 8), np.float32),
                              "item_vec": np.zeros((b, 8), np.float32), "category": np.zeros(b, np.int64)})[0]
        assert out.shape == (b,)


def test_tiny_pipeline_ranker_is_measured_on_the_same_candidates(tiny_models) -> None:
    lift = tiny_models.metrics["ranker"]
    assert lift["users"] > 0 and lift["candidates"] == 50
    # same candidates, so recall@50 of both orders equals the candidate recall
    assert lift["tower"]["ndcg@10"] >= 0 and 0 <= lift["candidate_recall@50"] <= 1
