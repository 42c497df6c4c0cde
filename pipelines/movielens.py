"""MovieLens-100K: the classic ``u.data``/``u.item``/``u.user`` files or RecBole atomic files.

``source`` may be a directory holding either set, or the ``recbole`` wheel itself (a zip that ships
``recbole/dataset_example/ml-100k/ml-100k.{inter,item,user}``). Ratings become events — every
rating is one interaction (rating ≤ 2: view, 3: cart, ≥ 4: purchase; the rating is kept) — and
each movie's first listed genre becomes its category (all genres kept in ``genres``).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
          "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
          "Romance", "Sci-Fi", "Thriller", "War", "Western")
AGE_BINS = [0, 18, 25, 35, 45, 56, 200]
AGE_LABELS = ["<18", "18-24", "25-34", "35-44", "45-55", "56+"]


class _Source:
    """Uniform file access to a directory or a zip (wheel), by file name suffix."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.is_file() and zipfile.is_zipfile(path):
            self.zip: zipfile.ZipFile | None = zipfile.ZipFile(path)
            self.names = {Path(n).name: n for n in self.zip.namelist() if "ml-100k" in n or "/u." in n}
        elif path.is_dir():
            self.zip = None
            self.names = {p.name: str(p) for p in path.rglob("*") if p.is_file()}
        else:
            raise FileNotFoundError(f"MovieLens source {path} is neither a directory nor a zip/wheel")

    def has(self, name: str) -> bool:
        return name in self.names

    def text(self, name: str, encoding: str = "utf-8") -> str:
        if self.zip is not None:
            return self.zip.read(self.names[name]).decode(encoding)
        return Path(self.names[name]).read_text(encoding=encoding)


def _rating_to_event(r: pd.Series) -> np.ndarray:
    return np.where(r >= 4, "purchase", np.where(r >= 3, "cart", "view"))


def _age_band(age: pd.Series) -> pd.Series:
    return pd.cut(pd.to_numeric(age, errors="coerce"), AGE_BINS, right=False, labels=AGE_LABELS).astype(str)


def _read_classic(src: _Source) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ev = pd.read_csv(io.StringIO(src.text("u.data")), sep="\t", header=None,
                     names=["user_id", "item_id", "rating", "ts"])
    ev["rating"] = ev["rating"].astype(float)
    raw = pd.read_csv(io.StringIO(src.text("u.item", "latin-1")), sep="|", header=None)
    flags = raw.iloc[:, 5:5 + len(GENRES)].to_numpy().astype(bool)
    genres = ["|".join(g for g, f in zip(GENRES, row, strict=True) if f) or "unknown" for row in flags]
    items = pd.DataFrame({"item_id": raw[0], "title": raw[1], "genres": genres,
                          "release_date": raw[2].astype(str)})
    users = None
    if src.has("u.user"):
        u = pd.read_csv(io.StringIO(src.text("u.user")), sep="|", header=None,
                        names=["user_id", "age", "gender", "occupation", "zip"])
        users = pd.DataFrame({"user_id": u["user_id"], "age_band": _age_band(u["age"]),
                              "gender": u["gender"], "occupation": u["occupation"]})
    return items, users, ev


def _atomic(text: str) -> pd.DataFrame:
    """RecBole atomic file: tab-separated, header cells ``name:type``."""
    df = pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False)
    df.columns = [c.split(":")[0] for c in df.columns]
    return df


def _read_atomic(src: _Source) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    inter = _atomic(src.text("ml-100k.inter"))
    ev = pd.DataFrame({"user_id": inter["user_id"], "item_id": inter["item_id"],
                       "rating": inter["rating"].astype(float), "ts": inter["timestamp"].astype(float)})
    it = _atomic(src.text("ml-100k.item"))
    genres = it["class"].str.split(" ").str.join("|").replace("", "unknown")
    items = pd.DataFrame({"item_id": it["item_id"], "title": it["movie_title"], "genres": genres,
                          "release_date": it["release_year"]})
    users = None
    if src.has("ml-100k.user"):
        u = _atomic(src.text("ml-100k.user"))
        users = pd.DataFrame({"user_id": u["user_id"], "age_band": _age_band(u["age"]),
                              "gender": u["gender"], "occupation": u["occupation"]})
    return items, users, ev


def read_movielens(source: Path | str) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame]:
    """Raw (items, users, events) frames ready for :func:`pipelines.validate.validate`."""
    src = _Source(Path(source))
    if src.has("u.data") and src.has("u.item"):
        items, users, ev = _read_classic(src)
    elif src.has("ml-100k.inter") and src.has("ml-100k.item"):
        items, users, ev = _read_atomic(src)
    else:
        raise FileNotFoundError(
            f"{source}: found neither u.data + u.item nor ml-100k.inter + ml-100k.item")
    items["category"] = items["genres"].str.split("|").str[0]
    items["price"] = 0.0  # MovieLens has no prices; every item lands in one price bucket
    items["in_stock"] = True
    ev["event"] = _rating_to_event(ev["rating"].astype(float))
    # created_at is left out on purpose: validation fills it with the movie's first rating.
    return items, users, ev[["user_id", "item_id", "event", "ts", "rating"]]
