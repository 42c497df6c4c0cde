"""A loaded bundle: ONNX Runtime sessions, FAISS indexes, the catalog as numpy arrays and each
known user's state, plus the live changes (admin adds / edits / hides) applied on top.

One object per bundle version. Requests take a reference at their start and keep it to the end,
so a reload swaps the object under new requests while in-flight ones finish on the old one. Live
changes mutate the object under a write lock; searches take the read side.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from bundle.gpu_index import gpu_count
from bundle.index import VectorIndex
from bundle.photo_predictions import PhotoPredictions
from bundle.versions import BundleError, bundles_dir, current_version, verify_bundle
from common.mapped import mapped, open_npy, touch
from common.onnx_runtime import make_session, run
from recsys.channels import Channels
from recsys.features import OOV, FeatureSpec, stored_profiles
from recsys.rank_features import DENSE, ItemStats, rank_features
from serving.catalog_columns import STR, RowIndex, labels, strings, utc_times
from serving.errors import RequestError
from serving.settings import ServingSettings
from vision.preprocess import PreprocessSpec

log = logging.getLogger(__name__)


class RWLock:
    """Many readers (searches) or one writer (a live catalog change)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0

    @contextmanager
    def read(self):
        with self._cond:
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self):
        with self._cond:
            self._cond.wait_for(lambda: self._readers == 0)
            yield


class LoadedBundle:
    def __init__(self, path: Path, settings: ServingSettings) -> None:
        t0 = time.perf_counter()
        self.path, self.settings = path, settings
        self.manifest = verify_bundle(path)
        self.version: str = self.manifest["version"]
        self.lock = RWLock()
        self.spec = FeatureSpec.load(path / "features.json")
        items = pd.read_parquet(path / "items.parquet")
        # compact per-worker columns (serving/catalog_columns.py): strings are not shared by mapping
        self.item_ids = strings(items["item_id"])
        self.titles = strings(items["title"])
        self.category = labels(items["category"])
        # copies: arrow-backed columns can come out read-only, and live patches write into these
        self.price = items["price"].fillna(0).to_numpy(np.float64, copy=True)
        self.in_stock = items["in_stock"].fillna(False).to_numpy(bool, copy=True)
        self.created_at = utc_times(items)
        self.image_rel = strings(items["image"].fillna("") if "image" in items else [""] * len(items))
        self.row_of = RowIndex(self.item_ids)
        self.live_rows: set[int] = set()  # rows added or changed through the admin API
        self.changes_offset = 0  # bytes of this version's change log applied (serving/live.py)
        self.predicted: dict[int, str] = {}
        mm = settings.mmap  # bundle arrays shared between the workers of a host (common/mapped.py)
        self.stats = ItemStats.load(path / "item_stats.npz", mmap=mm)
        self.category_names = list(self.spec.category_vocab.values)
        users = pd.read_parquet(path / "users.parquet")
        self.user_row = {u: i for i, u in enumerate(users["user_id"].astype(str))}
        self.user_vocab_index = self.spec.user_vocab.encode(users["user_id"].astype(str))  # (U,) once, not per request
        self.user_features = self.spec.encode_user_features(users["user_id"].astype(str).to_numpy(), users)  # (U, F)
        self.user_history = [np.asarray(h, np.int64) for h in users["history"]]
        self.user_seen = [np.asarray(h, np.int64) for h in users["seen"]]
        self.user_purchased = [np.asarray(h, np.int64) for h in users["purchased"]]
        self.user_profile = stored_profiles(users)  # (rows, weights) per user: the long-term profile
        self.session_weight = float(self.spec.event_weights.get("view", 1.0))  # a click is a view
        idx = self.manifest["indexes"]
        self.items_index = VectorIndex.load(path / "index.faiss", idx["items"],
                                            open_npy(path / "item_vectors.npy", mmap=mm), mmap=mm)
        self._place(self.items_index)
        self.user_tower, self.item_tower, self.ranker = (
            make_session(path / f"{name}.onnx", threads=settings.ort_threads, device=settings.device)
            for name in ("user_tower", "item_tower", "ranker"))
        self.ranker_dense = self._ranker_columns()
        # the recall channels the ranker was trained with (recsys/channels.py); older bundles have none
        self.channels = (Channels.load(path / "channels.npz", mmap=mm) if "channels.npz" in self.manifest["files"]
                         and settings.channels else None)
        self.image_root = Path(self.manifest.get("image_root", path))
        # A catalog without photos (MovieLens) has no image model: the photo routes answer 409.
        self.image_model = self.image_index = self.preprocess_spec = None
        self.class_names: list[str] = []
        if "image_model.onnx" in self.manifest["files"]:
            self.image_index = VectorIndex.load(path / "image_index.faiss", idx["images"],
                                                open_npy(path / "image_vectors.npy", mmap=mm), mmap=mm)
            self._place(self.image_index)
            self.image_model = make_session(path / "image_model.onnx", threads=settings.ort_threads,
                                            device=settings.device)
            meta = self.image_model.get_modelmeta().custom_metadata_map
            self.class_names = json.loads(meta["class_names"])
            self.temperature = float(meta.get("temperature", "1.0"))
            self.preprocess_spec = PreprocessSpec.from_dict(json.loads(meta["preprocess"]) |
                                                            {"max_pixels": settings.max_image_pixels})
        # the CNN's verdict on every catalog photo (the merchandisers' "photos to check"); older bundles have none
        self.photos = (PhotoPredictions.load(path / "image_predictions.npz", mmap=mm)
                       if "image_predictions.npz" in self.manifest["files"] else None)
        self.labels_applied = 0  # label decisions applied live (serving/merch_store.py, live.apply_labels)
        self._refresh_popular()
        if mm:
            self._touch_mapped()
        log.info("loaded bundle %s: %d items, %d users, providers %s (%.1f s)", self.version, len(self.item_ids),
                 len(self.user_row), self.user_tower.get_providers(), time.perf_counter() - t0)

    def _touch_mapped(self) -> None:
        """Fault the mapped arrays in now (common/mapped.py::touch); the FAISS indexes fault in as searched."""
        arrays = [self.items_index.vectors, *self.stats.__dict__.values()]
        if self.image_index is not None:
            arrays.append(self.image_index.vectors)
        if self.channels is not None:
            arrays += [self.channels.neighbours, self.channels.weights, self.channels.popularity]
        for a in arrays:
            if isinstance(a, np.ndarray) and mapped(a):
                touch(a)

    def _ranker_columns(self) -> np.ndarray:
        """Columns of ``rank_features``' output that this ranker reads, in its order (it declares the
        feature names it was trained on: a ranker from before a feature was added keeps working)."""
        names = json.loads(self.ranker.get_modelmeta().custom_metadata_map.get("dense", json.dumps(DENSE)))
        unknown = [n for n in names if n not in DENSE]
        if unknown:
            raise BundleError(f"{self.path}: ranker.onnx wants features {unknown} this service does not compute")
        return np.array([DENSE.index(n) for n in names], np.int64)

    # ------------------------------------------------------------------ catalog helpers

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def _refresh_popular(self) -> None:
        """Rows by popularity, most popular first (recent activity breaks ties): the no-signal answer."""
        self.popular = np.lexsort((-self.stats.recent, -self.stats.popularity)).astype(np.int64)

    def rows(self, item_ids: list[str]) -> np.ndarray:
        """Catalog rows of known ids (unknown ids dropped, order kept)."""
        return self.row_of.rows(item_ids)

    def allowed(self, *, categories: list[str] | None, price_min: float | None, price_max: float | None,
                in_stock_only: bool, exclude: np.ndarray | None = None) -> np.ndarray:
        """(I,) bool: rows that satisfy the request's filters and are live in the index."""
        ok = self.items_index.live.copy()
        if in_stock_only:
            ok &= self.in_stock
        if categories is not None:  # integer codes: comparing 70k strings per request would cost ms
            ok &= np.isin(self.stats.category, self.spec.category_vocab.encode(list(categories)))
        if price_min is not None:
            ok &= self.price >= price_min
        if price_max is not None:
            ok &= self.price <= price_max
        if exclude is not None and len(exclude):
            ok[exclude] = False
        return ok

    # ------------------------------------------------------------------ models

    def profile(self, u: int | None, session: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The long-term profile (rows, weights) of user row ``u`` (None: nobody) with this session's
        clicks in front, each weighing one view more."""
        rows, w = self.user_profile[u] if u is not None else (session[:0], np.zeros(0, np.float32))
        if not len(session):
            return rows, w
        old = np.isin(rows, session)
        extra = np.zeros(len(session), np.float32)
        if old.any():  # clicks on items already in the profile keep their earlier weight too
            pos = {r: i for i, r in enumerate(session.tolist())}
            for r, x in zip(rows[old].tolist(), w[old].tolist(), strict=True):
                extra[pos[r]] += x
        return (np.concatenate([session, rows[~old]]),
                np.concatenate([extra + self.session_weight, w[~old]]).astype(np.float32))

    def user_vectors(self, user_ids: list[str | None], histories: list[np.ndarray],
                     profiles: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """(B, D) user-tower outputs in one call; unknown users get the OOV id and OOV features."""
        B = len(user_ids)
        ids = np.full(B, OOV, np.int64)
        feats = np.full((B, len(self.spec.user_features)), OOV, np.int64)
        for j, u in enumerate(user_ids):
            r = self.user_row.get(u) if u is not None else None
            if r is not None:
                ids[j], feats[j] = self.user_vocab_index[r], self.user_features[r]
        return run(self.user_tower, self.spec.user_tower_feed(ids, feats, histories, profiles))[0]

    def rank_block(self, U: np.ndarray, cand: np.ndarray, seen: list[np.ndarray], recent: list[np.ndarray],
                   channels: np.ndarray | None = None, score: np.ndarray | None = None) -> np.ndarray:
        """(B, C) ranker scores for a block of candidates: one feature pass (the training code's
        ``rank_features``) and one ONNX Runtime call. U: (B, D) user vectors; cand: (B, C) rows (a
        shorter list padded with any rows: every feature of a row depends only on its own position
        and candidate, so padding changes nothing; callers cut it off); channels: (B, C, 5) what the
        recall channels said (``recsys.channels.union_block``), None: the tower's list in its order;
        score: the tower scores u · v, computed here when None."""
        V = self.items_index.vectors[cand]  # (B, C, D)
        if score is None:
            score = (V @ U.astype(np.float32)[:, :, None])[..., 0]  # (B, C)
        dense = rank_features(self.stats, seen, recent, cand, score.astype(np.float32, copy=False),
                              self.spec.category_vocab.size, channels)  # (B, C, F)
        B, C = cand.shape
        feed = {"dense": dense.reshape(B * C, -1)[:, self.ranker_dense],
                "user_vec": np.repeat(U.astype(np.float32), C, 0), "item_vec": V.reshape(B * C, -1),
                "category": self.stats.category[cand.ravel()]}
        return run(self.ranker, feed)[0].reshape(B, C)

    def require_images(self) -> None:
        """A RequestError (409) when this bundle was built without photos."""
        if self.image_model is None:
            raise RequestError(f"bundle {self.version} has no image model: its catalog was built without photos",
                               status=409)

    def classify(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(1, 1, H, W) normalised pixels -> calibrated class probabilities (K,), unit embedding (E,)."""
        logits, emb = self.image_model.run(None, {"image": pixels.astype(np.float32)})
        return self._calibrated(logits)[0], emb[0]

    def class_probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 1, H, W) -> (N, K) calibrated probabilities, one ONNX call (occlusion saliency)."""
        return self._calibrated(self.image_model.run(None, {"image": pixels.astype(np.float32)})[0])

    def _calibrated(self, logits: np.ndarray) -> np.ndarray:
        z = logits / self.temperature
        p = np.exp(z - z.max(1, keepdims=True))
        return p / p.sum(1, keepdims=True)

    def new_item_vector(self, category: str, price: float, image_embedding: np.ndarray) -> np.ndarray:
        """Item-tower vector for a product it never saw: OOV id, its category, price bucket and image."""
        feed = {"item": np.array([OOV], np.int64), "category": self.spec.category_vocab.encode([category]),
                "price": self.spec.price_bucket(np.array([price])), "image": image_embedding[None].astype(np.float32)}
        return run(self.item_tower, feed)[0][0]

    # ------------------------------------------------------------------ live changes

    def add_item(self, item_id: str, title: str, category: str, price: float, in_stock: bool,
                 image_embedding: np.ndarray, image_rel: str, predicted: str | None) -> int:
        vec = self.new_item_vector(category, price, image_embedding)
        with self.lock.write():
            if item_id in self.row_of:
                raise RequestError(f"item {item_id!r} already exists", status=409)
            row = int(self.items_index.add(vec)[0])
            if self.image_index is not None:
                self.image_index.add(image_embedding)
            self.item_ids = np.append(self.item_ids, np.array([item_id], dtype=STR))
            self.titles = np.append(self.titles, np.array([title], dtype=STR))
            self.category = np.append(self.category, np.array([category], dtype=object))
            self.price = np.append(self.price, price)
            self.in_stock = np.append(self.in_stock, in_stock)
            self.created_at = np.append(self.created_at, np.datetime64("now", "us"))  # numpy: UTC
            self.image_rel = np.append(self.image_rel, np.array([image_rel], dtype=STR))
            self.stats.append(int(self.spec.category_vocab.encode([category])[0]), float(np.log1p(max(price, 0))),
                              image_embedding)
            if self.channels is not None:
                self.channels.append_item()
            if self.photos is not None:
                self.photos.append()
            self.row_of[item_id] = row
            self.live_rows.add(row)
            if predicted is not None:
                self.predicted[row] = predicted
            self._refresh_popular()
        return row

    def patch_item(self, row: int, *, in_stock: bool | None, price: float | None) -> None:
        with self.lock.write():
            if in_stock is not None:
                self.in_stock[row] = in_stock
            if price is not None:
                self.price[row] = price
                self.stats.log_price[row] = np.log1p(price)
            self.live_rows.add(row)

    def relabel_item(self, row: int, category: str) -> None:
        """A merchandiser accepted the image model's category for this product: filters, category
        pages and the ranker's category features see the new one from the next request."""
        code = int(self.spec.category_vocab.encode([category])[0])
        with self.lock.write():
            self.category[row] = category
            self.stats.category[row] = code
            self.live_rows.add(row)

    def hide_item(self, row: int) -> None:
        """Removed from both indexes (never recommended or returned as similar); metadata stays readable."""
        with self.lock.write():
            if self.items_index.live[row]:
                self.items_index.remove(np.array([row]))
                if self.image_index is not None:
                    self.image_index.remove(np.array([row]))
            self.in_stock[row] = False
            self.live_rows.add(row)

    def _place(self, index: VectorIndex) -> None:
        """On the GPUs when FAISS sees any and the device setting allows; else the CPU (said once)."""
        if self.settings.device == "cpu":
            return
        if gpu_count() > 0:
            log.info("index: %s", index.use_gpu())
        elif self.settings.device == "cuda":
            log.warning("VITRINE_DEVICE=cuda but FAISS sees no GPU (faiss-cpu installed?): index on the CPU")

    def index(self, by: str) -> VectorIndex:
        """The item-tower ("behaviour") or CNN-embedding ("image") index."""
        if by == "behaviour":
            return self.items_index
        self.require_images()
        return self.image_index

    def photo_path(self, row: int, *also: Path) -> Path | None:
        """The product photo's file, only when it lies inside the dataset's folder (or one of ``also``)
        and exists: a catalog row naming ``../../etc/passwd`` has no photo."""
        rel = self.image_rel[row]
        if not rel:
            return None
        path = (self.image_root / rel).resolve()
        ok = any(path.is_relative_to(r.resolve()) for r in (self.image_root, *also))
        return path if ok and path.is_file() else None

    def is_hidden(self, row: int) -> bool:
        return not bool(self.items_index.live[row])


def load_current(settings: ServingSettings) -> LoadedBundle:
    """The bundle ``CURRENT`` names under ``settings.artifacts_dir``."""
    v = current_version(settings.artifacts_dir)
    if v is None:
        raise BundleError(f"{settings.artifacts_dir / 'CURRENT'}: no current bundle (run the nightly job or "
                          "`vitrine bundle promote`)")
    return LoadedBundle(bundles_dir(settings.artifacts_dir) / v, settings)
