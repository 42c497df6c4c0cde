"""The served bundle mapped (the default) and read (``VITRINE_MMAP=false``) answer alike, and a
live change to a mapped bundle stays in its process."""

from pathlib import Path

import numpy as np

from bundle.versions import bundles_dir, current_version
from common.mapped import mapped
from serving.loaded_bundle import LoadedBundle
from serving.recommend import recommend
from serving.schemas import RecommendationRequest
from serving.settings import ServingSettings


def _load(artifacts: Path, mmap: bool) -> LoadedBundle:
    return LoadedBundle(bundles_dir(artifacts) / current_version(artifacts),
                        ServingSettings(artifacts_dir=artifacts, mmap=mmap, candidates=50))


def test_mapped_and_read_bundles_answer_alike_and_changes_stay_private(artifacts: Path, monkeypatch) -> None:
    monkeypatch.setattr("common.mapped.MAP_MIN_BYTES", 0)  # the tiny bundle's arrays are all small
    a, b, read = _load(artifacts, True), _load(artifacts, True), _load(artifacts, False)
    assert mapped(a.items_index.vectors) and mapped(a.catalog.stats.log_price) and a.items_index.mapped
    assert not mapped(read.items_index.vectors) and not mapped(read.catalog.stats.log_price)
    user = next(u for u, r in a.shoppers.row_of.items() if len(a.shoppers.history[r]))
    req = RecommendationRequest(user_id=user, k=10)
    got = [[i.item_id for i in recommend(x, req, 50).items] for x in (a, read)]
    assert got[0] == got[1] and len(got[0]) == 10
    row = a.catalog.row_of.get(got[0][0])
    before = float(b.catalog.stats.log_price[row])
    a.patch_item(row, in_stock=None, price=999.0)  # writes a private page of the mapped statistics
    assert float(a.catalog.stats.log_price[row]) == np.float32(np.log1p(999.0))
    assert float(b.catalog.stats.log_price[row]) == before == float(_load(artifacts, True).catalog.stats.log_price[row])
    a.hide_item(row)  # a private copy of the mapped index; the other mapping keeps the item
    assert not a.items_index.mapped and b.items_index.mapped
    assert got[0][0] not in [i.item_id for i in recommend(a, req, 50).items]
    assert [i.item_id for i in recommend(b, req, 50).items] == got[0]
