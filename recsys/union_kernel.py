"""The candidate union of a batch of shoppers in one compiled call (numba, no GIL held).

``recsys.channels.union_many`` is the Python face of this; read its docstring for *what* the
union is. This file is *how*: the request path's union was a few dozen numpy calls per shopper
(a sort of the shopper's few thousand neighbour entries, membership tests, sorted lookups), 0.56
ms of the 1.1 ms a recommendation cost in-process. Here each shopper is a few loops over their
neighbour entries with catalog-sized scratch arrays that are touched only where the shopper's
entries land and reset after each shopper, so the cost follows the shopper's history, never the
catalog's size; the call holds no GIL (other threads of the process run meanwhile).

Exactness (tests/recsys/test_channels.py compares against the catalog-sized numpy formulation):
- item-to-item sums are float64 in entry order (seen order, then neighbour order), as
  ``np.bincount`` sums them, then rounded to float32;
- the item-to-item list is the top ``n_i2i`` positive scores, ties to the lower row; the category
  list is the top ``n_cat`` by share × (1 + popularity), ties to the earlier position.
"""

from __future__ import annotations

import numba
import numpy as np

from common.jit import CACHE

ABSENT = 2000  # the rank of a candidate a channel did not return (beyond any channel's depth)

# One name per recall channel, everywhere: configs (ChannelConfig's fields), the ranker's features,
# explanations in the API, lift.json.
CHANNELS = ("tower", "item2item", "category_popular")
# What the union says about each candidate: the columns of its (B, C, len(FIELDS)) block, by name.
FIELDS = (*(f"{c}_rank" for c in CHANNELS), "item2item_score", "item2item_recent_score")
_AT = {name: i for i, name in enumerate(FIELDS)}
TOWER_RANK, ITEM2ITEM_RANK, CATEGORY_POPULAR_RANK = (_AT[f"{c}_rank"] for c in CHANNELS)
ITEM2ITEM_SCORE, ITEM2ITEM_RECENT_SCORE = _AT["item2item_score"], _AT["item2item_recent_score"]

TOUCHED, BLOCKED, PICKED, TOWER = 1, 2, 4, 8  # bits of ``flag``: the per-row scratch state


@numba.njit(cache=CACHE, nogil=True)
def _i2i_list(touched: np.ndarray, nt: int, acc: np.ndarray, allowed: np.ndarray, flag: np.ndarray,
              n: int) -> np.ndarray:
    """Top ``n`` allowed rows by positive float32 score, ties to the lower row. One int64 key per
    row, larger = better: (score bits, inverted row) (a positive float32's bits grow with its value),
    kept in a min-heap of ``n`` while scanning, so most rows cost one comparison."""
    heap = np.empty(n, np.int64)
    m = 0
    f32 = np.empty(1, np.float32)
    bits = f32.view(np.int32)
    for j in range(nt):
        t = touched[j]
        f32[0] = np.float32(acc[t])
        if f32[0] <= 0 or t >= allowed.shape[0] or not allowed[t] or (flag[t] & BLOCKED):
            continue
        key = (np.int64(bits[0]) << 32) | (0xFFFFFFFF - t)
        if m < n:  # sift up
            i = m
            m += 1
            while i > 0 and heap[(i - 1) // 2] > key:
                heap[i] = heap[(i - 1) // 2]
                i = (i - 1) // 2
            heap[i] = key
        elif key > heap[0]:  # replace the worst kept, sift down
            i = 0
            while True:
                c = 2 * i + 1
                if c >= n:
                    break
                if c + 1 < n and heap[c + 1] < heap[c]:
                    c += 1
                if heap[c] >= key:
                    break
                heap[i] = heap[c]
                i = c
            heap[i] = key
    best = np.sort(heap[:m])[::-1]
    return 0xFFFFFFFF - (best & 0xFFFFFFFF)


@numba.njit(cache=CACHE, nogil=True)
def _category_list(seen: np.ndarray, category: np.ndarray, category_top: np.ndarray, popularity: np.ndarray,
                   allowed: np.ndarray, flag: np.ndarray, n: int) -> np.ndarray:
    """The popular items of the shopper's categories by share of their history × (1 + popularity)."""
    n_cat = category_top.shape[0]
    if seen.shape[0] == 0 or n == 0:
        return np.zeros(0, np.int64)
    counts = np.zeros(n_cat, np.float64)
    for s in seen:
        if category[s] < n_cat:  # numba checks no bounds: a code past the table would write elsewhere
            counts[category[s]] += 1.0
    share = counts / seen.shape[0]
    rows = np.empty(n_cat * category_top.shape[1], np.int64)
    m = 0
    for c in range(n_cat):
        if share[c] <= 0:
            continue
        for r in category_top[c]:
            if r >= 0 and r < allowed.shape[0] and allowed[r] and not (flag[r] & BLOCKED):
                rows[m] = r
                m += 1
    rows = rows[:m]
    score = np.empty(m, np.float64)
    for j in range(m):  # float32 (1 + popularity), then float64: numpy's promotion in the formula
        c = category[rows[j]]
        score[j] = (share[c] if c < n_cat else 0.0) * np.float64(np.float32(1.0) + popularity[rows[j]])
    order = np.argsort(-score, kind="mergesort")[:n]  # stable: ties keep their position
    return rows[order]


@numba.njit(cache=CACHE, nogil=True)
def union_batch(neighbours: np.ndarray, weights: np.ndarray, category_top: np.ndarray, popularity: np.ndarray,
                category: np.ndarray, allowed: np.ndarray,
                tower: np.ndarray, seen: np.ndarray, seen_off: np.ndarray,
                recent: np.ndarray, recent_off: np.ndarray, blocked: np.ndarray, blocked_off: np.ndarray,
                size: int, n_tower: int, n_i2i: int, n_cat: int, n_recent: int,
                acc: np.ndarray, flag: np.ndarray, slot: np.ndarray,
                rows: np.ndarray, feats: np.ndarray, lens: np.ndarray) -> None:
    """For shopper b, write ``lens[b]`` candidates into ``rows[b]`` (B, size) and what the channels
    say about them into ``feats[b]`` (B, size, len(FIELDS)), by the column names of ``FIELDS``.

    ``tower[b]``: the tower's answer in its order, -1 = none; its first ``n_tower`` rows that are
    not ``blocked`` are the tower's list. Ragged inputs are ``x[x_off[b]:x_off[b+1]]``.
    ``blocked``: rows nobody may return to this shopper (their purchases), on top of ``allowed``.
    ``acc`` (float64), ``flag`` (uint8) and ``slot`` (int32) are catalog-sized scratch, all zero on
    entry and on exit."""
    n_src = neighbours.shape[0]
    K = neighbours.shape[1]
    for b in range(tower.shape[0]):
        sn = seen[seen_off[b] : seen_off[b + 1]]
        rc = recent[recent_off[b] : recent_off[b + 1]][:n_recent]
        bl = blocked[blocked_off[b] : blocked_off[b + 1]]
        for r in bl:
            flag[r] |= BLOCKED
        tw = np.empty(min(n_tower, tower.shape[1]), np.int64)
        n_tw = 0
        for r in tower[b]:
            if n_tw == tw.shape[0]:
                break
            if r >= 0 and not (flag[r] & BLOCKED):
                tw[n_tw] = r
                n_tw += 1
        tw = tw[:n_tw]
        # item-to-item sums over the shopper's neighbour entries, in entry order
        touched = np.empty(sn.shape[0] * K, np.int64)
        nt = 0
        for s in sn:
            if s >= n_src:  # added live: no neighbours
                continue
            for k in range(K):
                t = neighbours[s, k]
                if t < 0:
                    continue
                if not (flag[t] & TOUCHED):
                    flag[t] |= TOUCHED
                    touched[nt] = t
                    nt += 1
                acc[t] += np.float64(weights[s, k])
        i2i = _i2i_list(touched, nt, acc, allowed, flag, n_i2i) if n_i2i > 0 else np.zeros(0, np.int64)
        cat = _category_list(sn, category, category_top, popularity, allowed, flag, n_cat)
        # picked: the item-to-item list, then the category list's rows not already in it
        picked = np.empty(i2i.shape[0] + cat.shape[0], np.int64)
        n_picked = 0
        for lst in (i2i, cat):
            for r in lst:
                if not (flag[r] & PICKED):
                    flag[r] |= PICKED
                    picked[n_picked] = r
                    n_picked += 1
        # the tower's list in its order: what a channel also picked, plus the first others to fill
        free = max(size - n_picked, 0)
        n_out = 0
        for i in range(tw.shape[0]):
            r = tw[i]
            flag[r] |= TOWER
            if (flag[r] & PICKED) or free > 0:
                if not (flag[r] & PICKED):
                    free -= 1
                if n_out < size:
                    rows[b, n_out] = r
                    feats[b, n_out, TOWER_RANK] = i
                    n_out += 1
        for j in range(n_picked):  # then the channels' rows the tower did not have
            r = picked[j]
            if n_out < size and not (flag[r] & TOWER):
                rows[b, n_out] = r
                feats[b, n_out, TOWER_RANK] = ABSENT
                n_out += 1
        lens[b] = n_out
        for j in range(n_out):
            slot[rows[b, j]] = j + 1
            feats[b, j, ITEM2ITEM_RANK] = ABSENT
            feats[b, j, CATEGORY_POPULAR_RANK] = ABSENT
            feats[b, j, ITEM2ITEM_SCORE] = np.float32(acc[rows[b, j]])
        for i in range(i2i.shape[0]):
            if slot[i2i[i]]:
                feats[b, slot[i2i[i]] - 1, ITEM2ITEM_RANK] = i
        for i in range(cat.shape[0]):
            if slot[cat[i]]:
                feats[b, slot[cat[i]] - 1, CATEGORY_POPULAR_RANK] = i
        # the same sums from the latest items only, for the union's rows
        recent_sum = np.zeros(n_out, np.float64)
        for s in rc:
            if s >= n_src:
                continue
            for k in range(K):
                t = neighbours[s, k]
                if t >= 0 and slot[t]:
                    recent_sum[slot[t] - 1] += np.float64(weights[s, k])
        for j in range(n_out):
            feats[b, j, ITEM2ITEM_RECENT_SCORE] = np.float32(recent_sum[j])
        # reset the scratch where this shopper touched it
        for j in range(nt):
            acc[touched[j]] = 0.0
            flag[touched[j]] = 0
        for r in bl:
            flag[r] = 0
        for j in range(n_picked):
            flag[picked[j]] = 0
        for r in tw:
            flag[r] = 0
        for j in range(n_out):
            slot[rows[b, j]] = 0
