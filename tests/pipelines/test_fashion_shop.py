"""Statistical checks on the generator, on synthetic images so no real data is needed."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.fashion_shop import generate
from pipelines.fashion_truth import true_affinity
from pipelines.fashion_world import FashionShopConfig, build_world
from pipelines.splits import split_events
from pipelines.validate import validate

CFG = FashionShopConfig(seed=3, n_users=600, n_items=800, days=40, truth_users=200)


@pytest.fixture(scope="module")
def shop(fake_fmnist, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("shop")
    raw = generate(CFG, fake_fmnist, out)
    raw["out"] = out
    return raw


def test_tables_validate_and_images_exist(shop: dict) -> None:
    v = validate(shop["items"], shop["users"], shop["events"], image_root=shop["out"])
    assert v.rejected.empty
    assert len(v.items) == 800 and len(v.users) == 600
    assert (shop["out"] / shop["items"]["image"].iloc[0]).is_file()


def test_same_seed_same_bytes_other_seed_differs(fake_fmnist, tmp_path: Path) -> None:
    small = FashionShopConfig(seed=1, n_users=50, n_items=100, days=5, truth_users=10)
    a = generate(small, fake_fmnist, tmp_path / "a")
    b = generate(small, fake_fmnist, tmp_path / "b")
    c = generate(FashionShopConfig(**{**small.__dict__, "seed": 2}), fake_fmnist, tmp_path / "c")
    for name in ("items", "users", "events"):
        pd.testing.assert_frame_equal(a[name], b[name])
    assert (tmp_path / "a/truth/top_affinities.parquet").read_bytes() == \
        (tmp_path / "b/truth/top_affinities.parquet").read_bytes()
    assert not a["events"].equals(c["events"])


def test_popularity_is_skewed(shop: dict) -> None:
    views = shop["events"].query("event == 'view'")["item_id"].value_counts()
    top5 = views.iloc[: max(1, len(shop["items"]) // 20)].sum() / views.sum()
    assert top5 > 0.2  # top 5 % of items take > 4x their uniform share


def test_funnel_ratios(shop: dict) -> None:
    counts = shop["events"]["event"].value_counts()
    cart_rate = counts["cart"] / counts["view"]
    buy_rate = counts["purchase"] / counts["cart"]
    assert 0.03 < cart_rate < CFG.p_cart
    assert abs(buy_rate - CFG.p_purchase) < 0.05
    # every purchase follows a cart of the same item by the same user, no earlier
    ev = shop["events"]
    carts = ev[ev.event == "cart"].groupby(["user_id", "item_id"])["ts"].min()
    buys = ev[ev.event == "purchase"].groupby(["user_id", "item_id"])["ts"].min()
    assert (carts.reindex(buys.index) <= buys).all()


def test_no_event_before_launch_or_signup(shop: dict) -> None:
    ev = shop["events"]
    created = ev["item_id"].map(shop["items"].set_index("item_id")["created_at"])
    signup = ev["user_id"].map(shop["users"].set_index("user_id")["signup_at"])
    assert (ev["ts"] >= created).all()
    assert (ev["ts"] >= signup.dt.floor("D")).all()


def _recall(recs: dict[str, list[str]], truth: pd.Series, k: int) -> float:
    return float(np.mean([len(set(recs.get(u, [])[:k]) & s) / min(len(s), k) for u, s in truth.items()]))


def test_category_preference_beats_plain_popularity(shop: dict) -> None:
    parts = split_events(shop["events"], "temporal-user")
    train, test = parts["train"], parts["test"]
    cat = shop["items"].set_index("item_id")["category"]
    train = train.assign(category=train["item_id"].map(cat))
    k = 20
    pop = train["item_id"].value_counts().index[:k].tolist()
    per_cat = {c: g.value_counts().index[:k].tolist() for c, g in train.groupby("category")["item_id"]}
    fav = train.groupby("user_id")["category"].agg(lambda s: s.value_counts().index[0])
    truth = test.groupby("user_id")["item_id"].apply(set)
    r_pop = _recall({u: pop for u in truth.index}, truth, k)
    r_cat = _recall({u: per_cat[fav[u]] for u in truth.index if u in fav.index}, truth, k)
    assert r_cat > 1.3 * r_pop, (r_cat, r_pop)


def test_oracle_predicts_future_events_better_than_popularity(fake_fmnist, shop: dict) -> None:
    world = build_world(CFG, fake_fmnist)
    parts = split_events(shop["events"], "temporal-user")
    truth = parts["test"].groupby("user_id")["item_id"].apply(set)
    users = world.users["user_id"].to_numpy()
    idx = np.flatnonzero(np.isin(users, truth.index))
    aff = true_affinity(world, CFG, idx)
    ids = world.items["item_id"].to_numpy()
    k = 20
    oracle = {users[u]: ids[np.argsort(-row)[:k]].tolist() for u, row in zip(idx, aff, strict=True)}
    pop = parts["train"]["item_id"].value_counts().index[:k].tolist()
    assert _recall(oracle, truth, k) > 1.5 * _recall({u: pop for u in truth.index}, truth, k)
    # the affinities are a distribution over launched items
    np.testing.assert_allclose(aff.sum(1), 1.0, rtol=1e-6)


def test_append_days_continues_the_world_deterministically(fake_fmnist, tmp_path) -> None:
    import shutil

    import pandas as pd

    from pipelines.fashion_shop import append_days
    from pipelines.validate import validate, write_validated
    from tests.conftest import build_tiny_shop

    a = build_tiny_shop(tmp_path / "a", fake_fmnist, days=10)
    shutil.copytree(a, tmp_path / "b")
    before = pd.read_parquet(a / "events.parquet")
    for d in (2, 3):  # 2 then 3 days ...
        raw = append_days(a, d, fake_fmnist)
        write_validated(validate(raw["items"], raw["users"], raw["events"], image_root=a), a)
    raw = append_days(tmp_path / "b", 5, fake_fmnist)  # ... equals 5 at once
    write_validated(validate(raw["items"], raw["users"], raw["events"], image_root=tmp_path / "b"), tmp_path / "b")
    ea, eb = pd.read_parquet(a / "events.parquet"), pd.read_parquet(tmp_path / "b" / "events.parquet")
    pd.testing.assert_frame_equal(ea, eb)
    new = ea.iloc[len(before):]
    assert len(new) > 0 and new["ts"].min() > before["ts"].max()
    assert new["ts"].max() < before["ts"].max() + pd.Timedelta(days=6)
    assert pd.read_parquet(a / "items.parquet").shape == pd.read_parquet(tmp_path / "b" / "items.parquet").shape
