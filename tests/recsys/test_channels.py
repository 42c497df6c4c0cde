"""Recall channels against hand-computed examples and against the dense computation they replace."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.channels import (
    ABSENT,
    FIELDS,
    ChannelConfig,
    Channels,
    binary_matrix,
    category_popular,
    ease_weights,
    fit_channels,
    item2item_scores,
    union,
    union_block,
    union_many,
)


def _matrix(seed: int = 0, users: int = 40, items: int = 12) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    return sp.csr_matrix((rng.random((users, items)) < 0.3).astype(np.float32))


def test_binary_matrix_counts_repeats_once_and_drops_unknown_rows() -> None:
    X = binary_matrix(np.array(["b", "a", "a", "a"]), np.array([1, 0, 0, -1]), 3)
    np.testing.assert_array_equal(X.toarray(), [[1, 0, 0], [0, 1, 0]])  # users sorted: a, b


def test_ease_weights_are_the_closed_form() -> None:
    X = _matrix()
    lam = 5.0
    G = X.toarray().T @ X.toarray() + lam * np.eye(12)
    P = np.linalg.inv(G)
    B = np.eye(12) - P / np.diag(P)[None]  # Steck 2019, eq. 8
    np.testing.assert_allclose(ease_weights(X, lam, 100).toarray(), B, atol=1e-5)
    # the 5 most interacted items only: the others neither give nor receive weight
    W = ease_weights(X, lam, 5).toarray()
    top = np.sort(np.argsort(-np.asarray(X.sum(0)).ravel(), kind="stable")[:5])
    rest = np.setdiff1d(np.arange(12), top)
    assert not W[rest].any() and not W[:, rest].any()


@pytest.mark.parametrize("method", ["ease", "itemknn"])
def test_item2item_scores_equal_the_dense_product_when_every_neighbour_is_kept(method: str) -> None:
    X = _matrix(1)
    ch = fit_channels(X, np.zeros(12, np.int64), 1, ChannelConfig(method=method, neighbours=12, ease_lambda=5.0))
    W = ease_weights(X, 5.0, 5000).toarray() if method == "ease" else None
    if W is None:
        Xd = X.toarray()
        n = np.sqrt((Xd**2).sum(0)) + 1e-9
        W = (Xd.T @ Xd) / n[:, None] / n[None]
        np.fill_diagonal(W, 0)
    seen = np.array([0, 3, 7])
    np.testing.assert_allclose(item2item_scores(ch, seen, 12), W[seen].sum(0), atol=1e-5)


def test_truncation_keeps_the_largest_magnitudes_negative_ones_included() -> None:
    W = sp.csr_matrix(np.array([[0, 0.5, -0.9, 0.1], [0, 0, 0, 0], [0.2, 0, 0, 0], [0, 0, 0, 0]], np.float32))
    from recsys.channels import _top_per_row

    idx, val = _top_per_row(W, 2)
    np.testing.assert_array_equal(idx[0], [2, 1])
    np.testing.assert_allclose(val[0], [-0.9, 0.5])
    np.testing.assert_array_equal(idx[1], [-1, -1])  # no neighbours: padding
    assert idx[2, 0] == 0 and idx[2, 1] == -1


def test_auto_method_switches_to_itemknn_past_the_ease_limit() -> None:
    X = _matrix(2)
    small = fit_channels(X, np.zeros(12, np.int64), 1, ChannelConfig(ease_max_items=12, ease_lambda=1.0))
    big = fit_channels(X, np.zeros(12, np.int64), 1, ChannelConfig(ease_max_items=11))
    knn = fit_channels(X, np.zeros(12, np.int64), 1, ChannelConfig(method="itemknn"))
    np.testing.assert_array_equal(big.neighbours, knn.neighbours)
    assert (small.weights < 0).any() and not (knn.weights < 0).any()  # EASE has negative weights, cosine none
    with pytest.raises(ValueError, match="unknown item-to-item method"):
        fit_channels(X, np.zeros(12, np.int64), 1, ChannelConfig(method="svd"))


def test_category_popular_orders_by_history_share_times_popularity() -> None:
    # items 0-3 in category 0, 4-5 in category 1; popularity = interactions
    X = sp.csr_matrix(np.array([[1, 1, 0, 1, 1, 1], [1, 0, 0, 1, 1, 0], [1, 0, 0, 0, 0, 0]], np.float32))
    cat = np.array([0, 0, 0, 0, 1, 1])
    ch = fit_channels(X, cat, 2, ChannelConfig(per_category=3))
    np.testing.assert_array_equal(ch.category_top, [[0, 3, 1], [4, 5, -1]])  # by popularity, 3 kept per category
    allowed = np.ones(6, bool)
    # a shopper with 3 of 4 items in category 1: item 4 (share .75, pop log1p 2) first, 5, then category 0
    got = category_popular(ch, cat, np.array([4, 5, 4, 0]), allowed, 4)
    np.testing.assert_array_equal(got, [4, 5, 0, 3])
    allowed[5] = False
    assert 5 not in category_popular(ch, cat, np.array([4]), allowed, 10)
    assert len(category_popular(ch, cat, np.zeros(0, np.int64), allowed, 10)) == 0


def test_union_has_a_fixed_size_the_tower_fills_and_ranks_are_positions() -> None:
    X = _matrix(3, users=60, items=30)
    cat = np.arange(30) % 3
    ch = fit_channels(X, cat, 3, ChannelConfig(item2item=4, category_popular=3, neighbours=30, method="itemknn"))
    seen = np.array([0, 1, 2])
    allowed = np.ones(30, bool)
    allowed[seen] = False
    tower = np.array([r for r in np.random.default_rng(0).permutation(30) if r not in seen])[:20]
    c = union(ch, tower, seen, seen[::-1], allowed, cat, 12)
    assert len(c.rows) == 12 and len(np.unique(c.rows)) == 12 and not np.isin(c.rows, seen).any()
    scores = item2item_scores(ch, seen, 30)
    i2i = np.flatnonzero(allowed & (scores > 0))
    i2i = i2i[np.argsort(-scores[i2i], kind="stable")][:4]
    assert np.isin(i2i, c.rows).all()  # every channel's list is in
    for r, tr, ir in zip(c.rows, c.tower_rank, c.item2item_rank, strict=True):
        assert tr == (np.flatnonzero(tower == r)[0] if r in tower else ABSENT)
        assert ir == (np.flatnonzero(i2i == r)[0] if r in i2i else ABSENT)
    np.testing.assert_allclose(c.item2item_score, scores[c.rows])
    np.testing.assert_allclose(c.item2item_recent_score, item2item_scores(ch, seen[::-1][:5], 30)[c.rows])
    in_tower = c.rows[c.tower_rank < ABSENT]
    np.testing.assert_array_equal(in_tower, tower[np.isin(tower, c.rows)])  # the tower's part in its order
    alone = union(None, tower, seen, seen, allowed, cat, 12)  # no channels: the tower's first 12
    np.testing.assert_array_equal(alone.rows, tower[:12])
    np.testing.assert_array_equal(alone.tower_rank, np.arange(12))


def test_ties_are_broken_by_row_and_by_position_and_batches_equal_single_calls() -> None:
    # every source item has the same two neighbours with equal weights: all scores tie
    n = 10
    nb = np.full((n, 2), -1, np.int32)
    nb[:, 0], nb[:, 1] = 7, 3
    w = np.ones((n, 2), np.float32)
    ch = Channels(nb, w, np.array([[9, 8, 1], [6, 5, -1]], np.int32), np.zeros(n, np.float32),
                  ChannelConfig(item2item=1, category_popular=2, neighbours=2))
    cat = np.array([0, 0, 1, 1, 0, 1, 1, 0, 0, 0])
    allowed = np.ones(n, bool)
    c = union(ch, np.array([2, 4]), np.array([0]), np.array([0]), allowed, cat, 5)
    assert c.rows.tolist() == [2, 4, 3, 9, 8]  # i2i keeps row 3 over row 7 (equal score); category 0: 9 before 8
    assert c.item2item_rank.tolist() == [ABSENT, ABSENT, 0, ABSENT, ABSENT]
    assert c.category_popular_rank.tolist() == [ABSENT, ABSENT, ABSENT, 0, 1]
    # a batch is the single calls side by side (the scratch is clean between shoppers); blocked rows
    # are out of every channel for that shopper only
    towers = [np.array([2, 4]), np.array([5, 6, 1]), np.array([0])]
    seen = [np.array([0]), np.array([2, 9]), np.zeros(0, np.int64)]
    none = np.zeros(0, np.int64)
    many = union_many(ch, towers, seen, seen, allowed, cat, 5, blocked=[np.array([3]), none, none])
    assert many[0].rows.tolist() == [2, 4, 7, 9, 8]
    for got, t, s in zip(many[1:], towers[1:], seen[1:], strict=True):
        one = union(ch, t, s, s, allowed, cat, 5)
        for f in ("rows", "tower_rank", "item2item_rank", "category_popular_rank", "item2item_score",
                  "item2item_recent_score"):
            np.testing.assert_array_equal(getattr(got, f), getattr(one, f))
    # an item added live (row past the tables) has no neighbours and is nobody's
    grown = np.ones(n + 1, bool)
    c = union(ch, np.array([10, 2]), np.array([10]), np.array([10]), grown, np.append(cat, 0), 4)
    assert c.rows.tolist()[:2] == [10, 2] and not c.item2item_score.any()


def _dense_union(ch, tower, seen, recent, allowed, category, size):
    """The catalog-sized numpy formulation: the oracle of the compiled union."""
    n = len(allowed)
    scores = item2item_scores(ch, seen, n)
    ok = np.flatnonzero(scores > 0)
    ok = ok[allowed[ok]]
    i2i = ok[np.argsort(-scores[ok], kind="stable")][: ch.config.item2item]  # ties: the lower row first
    cat = category_popular(ch, category, seen, allowed, ch.config.category_popular)
    picked = np.concatenate([i2i, cat[~np.isin(cat, i2i)]])
    from_tower = np.isin(tower, picked)
    from_tower[np.flatnonzero(~from_tower)[: max(size - len(picked), 0)]] = True
    rows = np.concatenate([tower[from_tower], picked[~np.isin(picked, tower)]])[:size]

    def pos(lst):
        return np.array([np.flatnonzero(lst == r)[0] if r in lst else ABSENT for r in rows], np.float32)

    recent_scores = item2item_scores(ch, recent[: ch.config.recent_items], n)
    return rows, pos(i2i), pos(cat), scores[rows], recent_scores[rows]


@pytest.mark.parametrize("seed", range(6))
def test_request_path_union_equals_the_catalog_sized_one(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    X = _matrix(seed, users=300, items=n)
    cat = rng.integers(0, 7, n)
    ch = fit_channels(X, cat, 7, ChannelConfig(item2item=30, category_popular=20, neighbours=50,
                                               method=("ease", "itemknn")[seed % 2]))
    seen = rng.choice(n, rng.integers(1, 40), replace=False)
    allowed = rng.random(n) < 0.8
    allowed[seen] = False
    tower = rng.permutation(np.flatnonzero(allowed))[:120]
    c = union(ch, tower, seen, seen[::-1], allowed, cat, 150)
    rows, i2i_rank, cat_rank, score, recent = _dense_union(ch, tower, seen, seen[::-1], allowed, cat, 150)
    np.testing.assert_array_equal(c.rows, rows)
    np.testing.assert_array_equal(c.item2item_rank, i2i_rank)
    np.testing.assert_array_equal(c.category_popular_rank, cat_rank)
    np.testing.assert_array_equal(c.item2item_score, score)  # the same float64 sums, bit for bit
    np.testing.assert_array_equal(c.item2item_recent_score, recent)


def test_channels_round_trip_and_live_append(tmp_path: Path) -> None:
    ch = fit_channels(_matrix(4), np.arange(12) % 2, 2, ChannelConfig(neighbours=5))
    ch.save(tmp_path / "c.npz")
    from recsys.channels import Channels

    back = Channels.load(tmp_path / "c.npz")
    assert back.config == ch.config
    np.testing.assert_array_equal(back.neighbours, ch.neighbours)
    back.append_item()
    assert back.neighbours.shape == (13, 5) and (back.neighbours[-1] == -1).all() and back.popularity[-1] == 0
    assert item2item_scores(back, np.array([12]), 13).sum() == 0  # a new product has no neighbours yet
    assert replace(ch.config, item2item=0).extra == ch.config.category_popular


def test_union_block_drops_missing_and_blocked_tower_rows_and_keeps_n_tower() -> None:
    X = _matrix(5, users=80, items=30)
    cat = np.arange(30) % 3
    ch = fit_channels(X, cat, 3, ChannelConfig(item2item=3, category_popular=2, neighbours=10, method="itemknn"))
    allowed = np.ones(30, bool)
    tower = np.array([[4, -1, 9, 11, 12, 13, 14, -1], [20, 21, 22, 23, -1, -1, -1, -1]])
    seen, blocked = [np.array([0, 1]), np.array([2])], [np.array([9, 12]), np.zeros(0, np.int64)]
    rows, feats, lens = union_block(ch, tower, seen, seen, allowed, cat, 8, blocked, n_tower=3)
    for b, (own, n) in enumerate(zip(([4, 11, 13], [20, 21, 22]), lens, strict=True)):
        want = union(ch, np.array(own), seen[b], seen[b], allowed & ~np.isin(np.arange(30), blocked[b]), cat, 8)
        np.testing.assert_array_equal(rows[b, :n], want.rows)  # the tower's list: its first 3 allowed rows
        for f, k in enumerate(FIELDS):
            np.testing.assert_array_equal(feats[b, :n, f], getattr(want, k))
        assert not np.isin(rows[b, :n], blocked[b]).any() and not rows[b, n:].any() and not feats[b, n:].any()


def test_rows_outside_the_catalog_are_refused_before_the_kernel_runs() -> None:
    ch = fit_channels(_matrix(6), np.arange(12) % 2, 2, ChannelConfig(neighbours=5))
    cat, allowed = np.arange(12) % 2, np.ones(12, bool)
    with pytest.raises(ValueError, match="seen holds rows outside"):
        union(ch, np.array([1, 2]), np.array([0, 12]), np.array([0]), allowed, cat, 5)
    with pytest.raises(ValueError, match="tower holds rows outside"):
        union(ch, np.array([1, 40]), np.array([0]), np.array([0]), allowed, cat, 5)
    with pytest.raises(ValueError, match="neighbour lists"):
        union(ch, np.array([1]), np.array([0]), np.array([0]), allowed[:10], cat[:10], 5)
