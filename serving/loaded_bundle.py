"""A loaded bundle: the catalog, the known shoppers, the ONNX Runtime models, the FAISS indexes
and the recall channels, plus the live changes (admin adds / edits / hides) applied on top.

One object per bundle version. Requests take a reference at their start and keep it to the end,
so a reload swaps the object under new requests while in-flight ones finish on the old one. Live
changes mutate the object under a write lock; searches take the read side.
"""

from __future__ import annotations

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
from recsys.features import OOV, FeatureSpec
from recsys.placements import PlacementModels
from recsys.rank_features import ItemStats
from recsys.ranking import RankerModel
from serving.catalog import Catalog
from serving.errors import RequestError
from serving.image_model import ImageModel
from serving.settings import ServingSettings
from serving.shoppers import Shoppers

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
    """Composes a bundle's parts, each with one job: the ``catalog`` (products, one category
    representation, filters, live edits), the ``shoppers`` (histories, profiles), the models (the
    towers, the ``ranker``, the ``image_model``), the indexes and the recall ``channels``. Live edits
    that touch several parts (a product added: catalog, both indexes, channels, photo predictions)
    are made here, under the write lock."""

    def __init__(self, path: Path, settings: ServingSettings, manifest: dict | None = None) -> None:
        """``manifest``: what this process's own ``verify_bundle`` of ``path`` returned (a caller that
        verified it moments ago, e.g. the nightly gate); else the bundle is verified here."""
        t0 = time.perf_counter()
        self.path, self.settings = path, settings
        self.manifest = manifest if manifest is not None else verify_bundle(path, settings.bundle_key)
        self.version: str = self.manifest["version"]
        self.lock = RWLock()
        self.spec = FeatureSpec.load(path / "features.json")
        mm = settings.mmap  # bundle arrays shared between the workers of a host (common/mapped.py)
        stats = ItemStats.load(path / "item_stats.npz", mmap=mm)
        self.catalog = Catalog(pd.read_parquet(path / "items.parquet"), stats, self.spec.category_vocab)
        self.shoppers = Shoppers(pd.read_parquet(path / "users.parquet"), self.spec)
        self.changes_offset = "0"  # cursor after the change log's last applied record (serving/live.py)
        self.labels_applied = 0  # label decisions applied live (serving/merch_store.py, live.apply_labels)
        idx = self.manifest["indexes"]
        self.items_index = VectorIndex.load(path / "index.faiss", idx["items"],
                                            open_npy(path / "item_vectors.npy", mmap=mm), mmap=mm)
        self._place(self.items_index)
        self.user_tower, self.item_tower = (make_session(path / f"{name}.onnx", threads=settings.ort_threads,
                                                         device=settings.device)
                                            for name in ("user_tower", "item_tower"))
        try:
            self.ranker = RankerModel(path / "ranker.onnx", threads=settings.ort_threads, device=settings.device)
        except ValueError as e:
            raise BundleError(str(e)) from e
        # the recall channels the ranker was trained with (recsys/channels.py); older bundles have none
        self.channels = (Channels.load(path / "channels.npz", mmap=mm) if "channels.npz" in self.manifest["files"]
                         and settings.channels else None)
        # the placements' models (recsys/placements.py: continue, buy-again, repeat-aware home, cart); older
        # bundles have none, and those placements answer 409
        self.placements = None
        if "placements.npz" in self.manifest["files"]:
            try:
                self.placements = PlacementModels.load(path / "placements.npz", mmap=mm)
            except ValueError as e:  # models over other features than this code computes: serve without them
                log.warning("bundle %s: placement models not used: %s", path.name, e)
        self.image_root = image_root(self.manifest, path, settings)
        # A catalog without photos (MovieLens) has no image model: the photo routes answer 409.
        self.image_model: ImageModel | None = None
        self.image_index: VectorIndex | None = None
        if "image_model.onnx" in self.manifest["files"]:
            self.image_index = VectorIndex.load(path / "image_index.faiss", idx["images"],
                                                open_npy(path / "image_vectors.npy", mmap=mm), mmap=mm)
            self._place(self.image_index)
            self.image_model = ImageModel(path / "image_model.onnx", threads=settings.ort_threads,
                                          device=settings.device, max_pixels=settings.max_image_pixels)
        # the CNN's verdict on every catalog photo (the merchandisers' "photos to check"); older bundles have none
        self.photos = (PhotoPredictions.load(path / "image_predictions.npz", mmap=mm)
                       if "image_predictions.npz" in self.manifest["files"] else None)
        self._refresh_popular()
        if mm:
            self._touch_mapped()
        log.info("loaded bundle %s: %d items, %d users, providers %s (%.1f s)", self.version, self.catalog.n_items,
                 len(self.shoppers), self.user_tower.get_providers(), time.perf_counter() - t0)

    def _touch_mapped(self) -> None:
        """Fault the mapped arrays in now (common/mapped.py::touch); the FAISS indexes fault in as searched."""
        arrays = [self.items_index.vectors, *self.catalog.stats.__dict__.values()]
        if self.image_index is not None:
            arrays.append(self.image_index.vectors)
        if self.channels is not None:
            arrays += [self.channels.neighbours, self.channels.weights, self.channels.popularity]
        for a in arrays:
            if isinstance(a, np.ndarray) and mapped(a):
                touch(a)

    def _refresh_popular(self) -> None:
        """Rows by popularity, most popular first (recent activity breaks ties): the no-signal answer."""
        st = self.catalog.stats
        self.popular = np.lexsort((-st.recent, -st.popularity)).astype(np.int64)

    def allowed(self, *, categories: list[str] | None, price_min: float | None, price_max: float | None,
                in_stock_only: bool, exclude: np.ndarray | None = None) -> np.ndarray:
        """(I,) bool: rows that satisfy the request's filters and are live in the index."""
        return self.catalog.allowed(self.items_index.live, categories=categories, price_min=price_min,
                                    price_max=price_max, in_stock_only=in_stock_only, exclude=exclude)

    # ------------------------------------------------------------------ models

    def user_vectors(self, user_ids: list[str | None], histories: list[np.ndarray],
                     profiles: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """(B, D) user-tower outputs in one call; unknown users get the OOV id and OOV features."""
        ids, feats = self.shoppers.tower_inputs(user_ids, OOV)
        return run(self.user_tower, self.spec.user_tower_feed(ids, feats, histories, profiles))[0]

    def new_item_vector(self, category: str, price: float, image_embedding: np.ndarray) -> np.ndarray:
        """Item-tower vector for a product it never saw: OOV id, its category, price bucket and image."""
        feed = {"item": np.array([OOV], np.int64), "category": self.catalog.code_of([category]),
                "price": self.spec.price_bucket(np.array([price])), "image": image_embedding[None].astype(np.float32)}
        return run(self.item_tower, feed)[0][0]

    def require_images(self) -> ImageModel:
        """The image model; a RequestError (409) when this bundle was built without photos."""
        if self.image_model is None:
            raise RequestError(f"bundle {self.version} has no image model: its catalog was built without photos",
                               status=409)
        return self.image_model

    # ------------------------------------------------------------------ live changes

    def add_item(self, item_id: str, title: str, category: str, price: float, in_stock: bool,
                 image_embedding: np.ndarray, image_rel: str, predicted: str | None) -> int:
        self.catalog.check_categories([category], "category")
        vec = self.new_item_vector(category, price, image_embedding)
        with self.lock.write():
            if item_id in self.catalog.row_of:
                raise RequestError(f"item {item_id!r} already exists", status=409)
            row = int(self.items_index.add(vec)[0])
            if self.image_index is not None:
                self.image_index.add(image_embedding)
            added = self.catalog.add(item_id, title, category, price, in_stock, image_embedding, image_rel, predicted)
            assert added == row, (added, row)  # the catalog row is the FAISS id
            if self.channels is not None:
                self.channels.append_item()
            if self.placements is not None:
                self.placements.append_item()
            if self.photos is not None:
                self.photos.append()
            self._refresh_popular()
        return row

    def patch_item(self, row: int, *, in_stock: bool | None, price: float | None) -> None:
        with self.lock.write():
            self.catalog.patch(row, in_stock=in_stock, price=price)

    def relabel_item(self, row: int, category: str) -> None:
        """A merchandiser accepted the image model's category for this product: filters, category
        pages and the ranker's category features see the new one from the next request."""
        with self.lock.write():
            self.catalog.relabel(row, category)

    def hide_item(self, row: int) -> None:
        """Removed from both indexes (never recommended or returned as similar); metadata stays readable."""
        with self.lock.write():
            if self.items_index.live[row]:
                self.items_index.remove(np.array([row]))
                if self.image_index is not None:
                    self.image_index.remove(np.array([row]))
            self.catalog.hide(row)

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
        rel = self.catalog.image_rel[row]
        if not rel:
            return None
        roots = [r for r in (self.image_root, *also) if r is not None]  # no image_root: no catalog photo
        path = ((self.image_root or Path("/")) / rel).resolve()  # a live upload's path is absolute
        ok = any(path.is_relative_to(r.resolve()) for r in roots)
        return path if ok and path.is_file() else None

    def is_hidden(self, row: int) -> bool:
        return not bool(self.items_index.live[row])


def image_root(manifest: dict, path: Path, settings: ServingSettings) -> Path | None:
    """Where the catalog's photos are. A bundle this host published names its dataset's folder and is
    trusted; one pulled from a bundle store (a replica) may name only its own folder, the artifacts
    directory or a folder of ``image_roots``: anything else serves no catalog photo (None), so a
    store's manifest cannot widen what ``/images`` reads."""
    root = Path(manifest.get("image_root", path))
    if settings.bundle_store is None:
        return root
    allowed = [path, settings.artifacts_dir, *settings.image_roots]
    if any(root.resolve().is_relative_to(a.resolve()) for a in allowed):
        return root
    log.warning("bundle %s: image_root %s is outside this replica's folders (VITRINE_IMAGE_ROOTS); no catalog photos",
                manifest.get("version"), root)
    return None


def load_current(settings: ServingSettings) -> LoadedBundle:
    """The bundle ``CURRENT`` names under ``settings.artifacts_dir``."""
    v = current_version(settings.artifacts_dir)
    if v is None:
        raise BundleError(f"{settings.artifacts_dir / 'CURRENT'}: no current bundle (run the nightly job or "
                          "`vitrine bundle promote`)")
    return LoadedBundle(bundles_dir(settings.artifacts_dir) / v, settings)
