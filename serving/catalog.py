"""The catalog a bundle serves: each product's columns by catalog row, id lookup, the request
filters, the item records a response carries, and the live edits (add, patch, relabel, hide).

A product's category has one representation: its vocabulary code (``codes``, the same array the
ranker's statistics hold: ``ItemStats.category``), named through ``names``. Filters, rules, the
category cap and the ranker all read the code; a relabel writes it once.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import numpy as np
import pandas as pd

from recsys.features import FIRST, Vocab
from recsys.rank_features import ItemStats
from serving.catalog_columns import STR, RowIndex, strings, utc_times
from serving.errors import RequestError

_PLAIN = re.compile(r"[A-Za-z0-9._~-]+")  # characters a path segment carries as they are


def segment(item_id: str) -> str:
    """An id as one URL path segment, percent-encoded: an id is data, never markup or a path.
    (The usual id needs no encoding: checked first, 20x cheaper than ``quote`` on every item.)"""
    return item_id if _PLAIN.fullmatch(item_id) else quote(item_id, safe="")


def image_url(item_id: str) -> str:
    """A product photo's URL."""
    return f"/images/{segment(item_id)}"


class Catalog:
    def __init__(self, items: pd.DataFrame, stats: ItemStats, category_vocab: Vocab) -> None:
        """``items``: the bundle's catalog sorted by id (row r = FAISS id r); ``stats``: the ranker's
        per-row statistics, whose ``category`` codes are the catalog's categories."""
        # compact per-worker columns (serving/catalog_columns.py): strings are not shared by mapping
        self.item_ids = strings(items["item_id"])
        self.titles = strings(items["title"])
        # copies: arrow-backed columns can come out read-only, and live patches write into these
        self.price = items["price"].fillna(0).to_numpy(np.float64, copy=True)
        self.in_stock = items["in_stock"].fillna(False).to_numpy(bool, copy=True)
        self.created_at = utc_times(items)
        self.image_rel = strings(items["image"].fillna("") if "image" in items else [""] * len(items))
        self.row_of = RowIndex(self.item_ids)
        self.stats = stats
        self.vocab = category_vocab
        self.category_names: list[str] = list(category_vocab.values)
        # code -> name (codes below FIRST are padding / out of vocabulary: no name)
        self._name_of = np.array([""] * FIRST + self.category_names, dtype=object)
        self.live_rows: set[int] = set()  # rows added or changed through the admin API
        self.predicted: dict[int, str] = {}  # rows added live: the image model's category for their photo

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def codes(self) -> np.ndarray:
        """(I,) int64 each row's category code."""
        return self.stats.category

    def category_of(self, rows: np.ndarray | int) -> np.ndarray | str:
        """Category names of catalog rows (one row: one name)."""
        return self._name_of[self.codes[rows]]

    def index_in(self, names: list[str]) -> np.ndarray:
        """(I,) each row's category as a position in ``names`` (e.g. the image model's classes), -1: absent."""
        pos = {n: i for i, n in enumerate(names)}
        return np.array([pos.get(n, -1) for n in self._name_of], np.int64)[self.codes]

    def code_of(self, names: list[str]) -> np.ndarray:
        """Category names -> codes (a name the catalog does not know: out of vocabulary)."""
        return self.vocab.encode(list(names))

    def check_categories(self, names: list[str] | None, what: str = "categories") -> None:
        """A RequestError (422) naming the categories this catalog does not have."""
        unknown = sorted(set(names or ()) - set(self.category_names))
        if unknown:
            raise RequestError(f"unknown {what} {unknown}; known: {self.category_names}")

    def rows(self, item_ids: list[str]) -> np.ndarray:
        """Catalog rows of known ids (unknown ids dropped, order kept)."""
        return self.row_of.rows(item_ids)

    def allowed(self, live: np.ndarray, *, categories: list[str] | None, price_min: float | None,
                price_max: float | None, in_stock_only: bool, exclude: np.ndarray | None = None) -> np.ndarray:
        """(I,) bool: rows that satisfy the request's filters among ``live`` (the index's live rows)."""
        ok = live.copy()
        if in_stock_only:
            ok &= self.in_stock
        if categories is not None:  # integer codes: comparing 70k strings per request would cost ms
            ok &= np.isin(self.codes, self.code_of(categories))
        if price_min is not None:
            ok &= self.price >= price_min
        if price_max is not None:
            ok &= self.price <= price_max
        if exclude is not None and len(exclude):
            ok[exclude] = False
        return ok

    def items_out(self, rows: np.ndarray, scores: np.ndarray | None = None) -> list[dict]:
        """Item records (the fields of ``schemas.Item``, in its order) for catalog rows, as plain dicts of
        Python scalars: routes serialise them directly or validate them into their response model."""
        rows = np.asarray(rows, np.int64)
        ids, price, stock = self.item_ids, self.price[rows].tolist(), self.in_stock[rows].tolist()
        cats = self.category_of(rows).tolist()
        sc = [None] * len(rows) if scores is None else [x if x == x else None for x in scores.tolist()]  # NaN: unscored
        return [{"item_id": ids[r], "title": self.titles[r], "category": cats[i], "price": price[i],
                 "in_stock": stock[i], "image_url": image_url(ids[r]), "score": sc[i],
                 "reason": None} for i, r in enumerate(rows.tolist())]

    # ------------------------------------------------------------------ live edits (under the bundle's write lock)

    def add(self, item_id: str, title: str, category: str, price: float, in_stock: bool,
            image: np.ndarray | None, image_rel: str, predicted: str | None) -> int:
        """A new row at the end (the caller has added its vectors to the indexes at the same row)."""
        self.check_categories([category], "category")
        row = self.n_items
        self.item_ids = np.append(self.item_ids, np.array([item_id], dtype=STR))
        self.titles = np.append(self.titles, np.array([title], dtype=STR))
        self.price = np.append(self.price, price)
        self.in_stock = np.append(self.in_stock, in_stock)
        self.created_at = np.append(self.created_at, np.datetime64("now", "us"))  # numpy: UTC
        self.image_rel = np.append(self.image_rel, np.array([image_rel], dtype=STR))
        self.stats.append(int(self.code_of([category])[0]), float(np.log1p(max(price, 0))), image)
        self.row_of[item_id] = row
        self.live_rows.add(row)
        if predicted is not None:
            self.predicted[row] = predicted
        return row

    def patch(self, row: int, *, in_stock: bool | None, price: float | None) -> None:
        if in_stock is not None:
            self.in_stock[row] = in_stock
        if price is not None:
            self.price[row] = price
            self.stats.log_price[row] = np.log1p(price)
        self.live_rows.add(row)

    def relabel(self, row: int, category: str) -> None:
        """The product takes ``category``: filters, category pages, rules and the ranker's category
        features see it from the next request."""
        self.check_categories([category], "category")
        self.codes[row] = self.code_of([category])[0]
        self.live_rows.add(row)

    def hide(self, row: int) -> None:
        self.in_stock[row] = False
        self.live_rows.add(row)
