"""Experiments validated against the shopper simulator's known truth (docs/experiments.md): the real
server on loopback, experiments started through its admin API, simulated shoppers on the home page,
the analysis the service computes from its own logs (serving/experiment_stats.py).

    .venv/bin/python bench/experiments_bench.py --artifacts artifacts --data data/fashion-shop \
        [--looks 10 --per-look 1000 --interleave 1500 --challenger popular]

Prints, for the full model (control) against a challenger (``popular``: the popularity list to
everyone; ``no-channels``: the two-tower's list without the item-to-item and category channels):
1. the A/B test looked at after each block of sessions (a simulated "day"): the always-valid p-value,
   the decision, and the lift's intervals against the simulator's true lift (its expected clicks of
   the pages each variant served: examination x attraction, no click noise);
2. A/A: the A/B's control shoppers re-split by 20 salts, each looked at after every block: false
   positives of the always-valid test and of a fixed-horizon test peeked at every look;
3. the ratio check on the intact split and on a deliberately broken one (shares 0.5 / 0.5 in the
   config, 0.55 / 0.45 in the hash);
4. team-draft interleaving of the same two variants: sessions until its preference test is
   significant for good, against the A/B test's sessions by the same rule.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

sys.path.insert(0, str(Path(__file__).parent))
from events_bench import scratch_artifacts  # noqa: E402
from serving_bench import start_server, wait_ready  # noqa: E402

from bundle.logs import log_dir  # noqa: E402
from pipelines.simulate import SimConfig, simulate  # noqa: E402
from serving.experiment_stats import analyse, per_list, preference, shoppers_needed  # noqa: E402
from serving.experiments import Experiment, Variant  # noqa: E402

ROOT = Path(__file__).parents[1]
TOKEN = "bench-admin-token-0123456789"
CHALLENGERS = {"popular": {"popularity": True}, "no-channels": {"channels": False},
               "small-union": {"candidates": 50}}


def start_experiment(client: httpx.Client, mode: str, challenger: str) -> Experiment:
    body = {"name": f"bench {mode} full vs {challenger}", "placements": ["home"], "mode": mode,
            "variants": [{"name": "control", "share": 0.5},
                         {"name": challenger, "share": 0.5} | CHALLENGERS[challenger]]}
    r = client.post("/v1/experiments", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    r.raise_for_status()
    time.sleep(2.5)  # every worker follows the experiments log within changes_poll_s (1 s)
    return Experiment.model_validate(r.json())


def stop_experiment(client: httpx.Client, exp: Experiment) -> None:
    client.post(f"/v1/experiments/{exp.experiment_id}/stop", json={"reason": "bench done"},
                headers={"Authorization": f"Bearer {TOKEN}"}).raise_for_status()
    time.sleep(2.5)


def first_stable(ns: list[int], ps: list[float], alpha: float = 0.05) -> int | None:
    """The smallest n from which every later look is significant (None: never for good)."""
    out = None
    for n, p in zip(ns, ps, strict=True):
        out = (n if out is None else out) if p < alpha else None
    return out


def prefixes(lists: pd.DataFrame, step: int) -> list[tuple[int, pd.DataFrame]]:
    lists = lists.sort_values("ts")
    return [(n, lists.iloc[:n]) for n in range(step, len(lists) + 1, step)]


def hashed_split(shoppers: pd.Series, salt: str, cut: float = 0.5) -> np.ndarray:
    """Each shopper's side ("a" with probability ``cut``) by the service's own assignment."""
    split = Experiment(name="split", placements=["home"], salt=salt,
                       variants=[Variant(name="a", share=cut), Variant(name="b", share=1 - cut)])
    return np.array([split.assign(s).name for s in shoppers])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    ap.add_argument("--data", type=Path, default=Path("data/fashion-shop"))
    ap.add_argument("--challenger", choices=sorted(CHALLENGERS), default="popular")
    ap.add_argument("--looks", type=int, default=10)
    ap.add_argument("--per-look", type=int, default=1000)
    ap.add_argument("--interleave", type=int, default=1500)
    ap.add_argument("--step", type=int, default=10, help="sessions between the looks of the sessions-to-detect rule")
    ap.add_argument("--port", type=int, default=8768)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    host = f"http://127.0.0.1:{a.port}"
    sim = dict(k=10, concurrency=16, max_seconds=1800, arms=(1.0, 0.0, 0.0))  # home pages only
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        art = scratch_artifacts(a.artifacts, Path(tmp))
        server = start_server(art, a.port, a.workers, VITRINE_WARM_ANALYTICS="false", VITRINE_ADMIN_TOKEN=TOKEN)
        cutoffs, truth = [], {}
        try:
            wait_ready(host)
            with httpx.Client(base_url=host, timeout=30) as client:
                ab = start_experiment(client, "ab", a.challenger)
                for look in range(a.looks):
                    r = simulate(host, a.data, SimConfig(sessions=a.per_look, seed=1000 + look, **sim))
                    for v, c in r.variants.items():
                        t = truth.setdefault(v.split(":")[-1], {"lists": 0, "expected": 0.0})
                        t["lists"] += c["lists"]
                        t["expected"] += c["expected"]
                    cutoffs.append(datetime.now(UTC))
                stop_experiment(client, ab)
                il = start_experiment(client, "interleave", a.challenger)
                simulate(host, a.data, SimConfig(sessions=a.interleave, seed=99, **sim))
                stop_experiment(client, il)
        finally:
            server.terminate()
            server.wait(60)
        root = log_dir(art)
        lists, _ = per_list(root, ab)
        _, teams = per_list(root, il)
    secs = time.perf_counter() - t_start
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {datetime.now(UTC):%Y-%m-%d}; uvicorn, "
          f"{a.workers} workers; bundle {(a.artifacts / 'CURRENT').read_text().strip()}; control = the full model, "
          f"challenger = {a.challenger}; {a.looks} looks x {a.per_look:,} sessions A/B, {a.interleave:,} sessions "
          f"interleaved; {secs:.0f} s in all")

    # 1. the A/B test, looked at after every block
    res = analyse(lists, ab, looks=cutoffs)
    [cmp] = res.comparisons
    true_ctr = {v: t["expected"] / (t["lists"] * sim["k"]) for v, t in truth.items()}
    true_lift = true_ctr[a.challenger] / true_ctr["control"] - 1
    print("\n| look | shoppers | lift | always-valid p |\n|---|---|---|---|")
    for i, lk in enumerate(cmp.looks, 1):
        print(f"| {i} | {lk.shoppers:,} | {lk.lift:+.2%} | {lk.p_value:.2g} |")
    for v in res.variants:
        m = v.metrics["ctr"]
        print(f"{v.name}: {v.shoppers:,} shoppers, {v.lists:,} lists, CTR {m.value:.4f} ({m.low:.4f} .. {m.high:.4f});"
              f" true CTR {true_ctr[v.name]:.4f}")
    covered = cmp.lift.low <= true_lift <= cmp.lift.high
    first = next((i for i, lk in enumerate(cmp.looks, 1) if lk.p_value < 0.05), None)
    print(f"decision: {cmp.decision} (always-valid p {cmp.p_always_valid:.2g}, first below 0.05 at look {first}); "
          f"lift {cmp.lift.value:+.2%}, 95 % interval {cmp.lift.low:+.2%} .. {cmp.lift.high:+.2%} (always-valid "
          f"{cmp.lift_always_valid.low:+.2%} .. {cmp.lift_always_valid.high:+.2%}); true lift {true_lift:+.2%}: "
          f"{'covered' if covered else 'NOT covered'}")
    right = (cmp.decision == "worse") == (true_lift < 0) and cmp.decision != "undecided"
    print(f"correct winner at 95 %: {'yes' if right else 'no'}; shoppers needed for a 5 % lift at 80 % power: "
          f"{cmp.shoppers_needed:,} per variant")

    # 2. A/A over 20 salts on the control's shoppers, looked at after every block
    ctl = lists[lists["variant"] == "control"].copy()
    aa = Experiment(experiment_id="aa", name="A/A", placements=["home"], salt="x",
                    variants=[Variant(name="a", share=0.5), Variant(name="b", share=0.5)])
    fp_valid = fp_peek = 0
    for seed in range(20):
        ctl["variant"] = hashed_split(ctl["shopper"], f"aa{seed}")
        r = analyse(ctl, aa, looks=cutoffs).comparisons[0]
        fp_valid += r.p_always_valid < 0.05
        ts = pd.to_datetime(ctl["ts"], utc=True)
        peeks = [analyse(ctl[ts <= pd.Timestamp(c)], aa, looks=[]).comparisons[0].p_fixed for c in cutoffs]
        fp_peek += min(peeks) < 0.05
    print(f"\nA/A, 20 salts x {len(cutoffs)} looks over {ctl['shopper'].nunique():,} control shoppers: always-valid "
          f"false positives {fp_valid} / 20 (target <= 2); a fixed-horizon test peeked at every look: {fp_peek} / 20")

    # 3. the ratio check
    broken = lists.copy()
    names = {"a": "control", "b": a.challenger}
    broken["variant"] = [names[x] for x in hashed_split(broken["shopper"], "broken", cut=0.55)]
    ok_p, bad = res.srm_p, analyse(broken, ab, looks=[])
    print(f"ratio check: intact split p = {ok_p:.3g} (flagged: {res.srm_flagged}); broken split "
          f"({', '.join(f'{v.name} {v.shoppers:,}' for v in bad.variants)}) p = {bad.srm_p:.3g} "
          f"(flagged: {bad.srm_flagged})")

    # 4. interleaving against A/B: sessions until significant for good
    pref = preference(teams, il)
    il_lists = teams.groupby("rec_id", as_index=False).agg(ts=("ts", "min"))
    ns, ps = [], []
    for n, part in prefixes(il_lists, a.step):
        ns.append(n)
        ps.append(preference(teams[teams["rec_id"].isin(part["rec_id"])], il).p_value)
    n_il = first_stable(ns, ps)
    ns, ps = [], []
    for n, part in prefixes(lists, a.step):
        ns.append(n)
        c = analyse(part, ab, looks=[]).comparisons
        ps.append(c[0].p_fixed if c else 1.0)
    n_ab = first_stable(ns, ps)
    print(f"interleaving: {pref.shoppers:,} shoppers with clicks, prefer control {pref.prefer_control:,}, "
          f"prefer {a.challenger} {pref.prefer_challenger:,}, ties {pref.ties:,}; p = {pref.p_value:.2g}, "
          f"decision {pref.decision}")
    ratio = f"{n_ab / n_il:.1f}x fewer" if n_ab and n_il else "n/a"
    print(f"sessions until significant at 5 % for good (looks every {a.step}): interleaving {n_il}, A/B {n_ab}: "
          f"{ratio}")
    # the same comparison by power (80 %, alpha 5 %) at the effects measured: far less noisy than one run's
    # first significant look. A/B: shoppers per variant for the lift seen (serving/experiment_stats.py),
    # in sessions; interleaving: shoppers with a preference for the preference share seen (one-sample
    # test: statsmodels' NormalIndPower with ratio 0), in sessions.
    ctl_est = res.variants[0].metrics["ctr"]
    per_shopper = len(lists) / lists["shopper"].nunique()
    ab = {what: 2 * shoppers_needed(ctl_est, res.variants[0].shoppers, abs(x), 0.05) * per_shopper
          for what, x in (("measured", cmp.lift.value), ("true", true_lift))}
    decided = pref.prefer_control + pref.prefer_challenger
    per_session = decided / teams["rec_id"].nunique()

    def il_sessions(share: float) -> float:
        h = abs(proportion_effectsize(share, 0.5))
        return NormalIndPower().solve_power(effect_size=h, alpha=0.05, power=0.8, ratio=0) / per_session if h else \
            float("inf")

    sh = pref.challenger_share
    far = sh.high if sh.value > 0.5 else sh.low  # the interval's end furthest from 0.5: fewest sessions
    near = sh.low if sh.value > 0.5 else sh.high
    il_range = (il_sessions(far), il_sessions(near) if (near - 0.5) * (sh.value - 0.5) > 0 else float("inf"))
    print(f"sessions for 80 % power: A/B {ab['true']:,.0f} at the true lift ({ab['measured']:,.0f} at the measured "
          f"one); interleaving {il_sessions(sh.value):,.0f} at the preference measured ({sh.value:.3f}; "
          f"{il_range[0]:,.0f} .. {il_range[1]:,.0f} over its 95 % interval; {per_session:.2f} preferences per "
          f"session): {ab['true'] / il_sessions(sh.value):.1f}x fewer at the true lift (target >= 10x)")

if __name__ == "__main__":
    main()
