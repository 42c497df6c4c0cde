"""The long-term profile in serving: the stored one from the bundle, session clicks merged in front,
and the same user vector as bundle assembly computes for the same shopper."""

from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.assemble import user_tower_vectors
from serving.loaded_bundle import load_current
from serving.settings import ServingSettings


def test_session_clicks_join_the_stored_profile(tiny_artifacts: Path) -> None:
    b = load_current(ServingSettings(artifacts_dir=tiny_artifacts, candidates=50))
    u = next(i for i in range(len(b.shoppers.profiles)) if len(b.shoppers.profiles[i][0]) >= 3)
    rows, w = b.shoppers.profiles[u]
    assert len(rows) == len(w) and (w > 0).all() and len(set(rows.tolist())) == len(rows)
    new = next(r for r in range(b.catalog.n_items) if r not in set(rows.tolist()))
    session = np.array([new, rows[1]])
    got_rows, got_w = b.shoppers.profile(u, session)
    assert got_rows[:2].tolist() == [new, rows[1]]  # clicks first, most recent first
    assert got_w[0] == b.shoppers.session_weight and np.isclose(got_w[1], w[1] + b.shoppers.session_weight)
    assert len(got_rows) == len(rows) + 1 and set(got_rows.tolist()) == set(rows.tolist()) | {new}
    anon_rows, anon_w = b.shoppers.profile(None, session)
    assert anon_rows.tolist() == session.tolist() and (anon_w == b.shoppers.session_weight).all()


def test_served_user_vectors_match_assembly(tiny_artifacts: Path) -> None:
    """Serving and bundle assembly feed the user tower through one function: same shopper, same vector."""
    b = load_current(ServingSettings(artifacts_dir=tiny_artifacts, candidates=50))
    states = pd.read_parquet(b.path / "users.parquet")
    want = user_tower_vectors(b.path / "user_tower.onnx", b.spec, states, 5, seed=3)
    active = states[states["history"].map(len) > 0].sample(5, random_state=3)
    rows = [b.shoppers.row_of[u] for u in active["user_id"]]
    got = b.user_vectors(list(active["user_id"]), [b.shoppers.history[r] for r in rows],
                         [b.shoppers.profiles[r] for r in rows])
    np.testing.assert_allclose(got, want, atol=1e-5)
