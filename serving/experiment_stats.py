"""The statistics of an experiment (docs/experiments.md), from the served log and the attributed
events (serving/online.py), never from counters kept elsewhere.

- The unit is the shopper (the salted user id, else the session: what assignment hashed). Every
  metric is a ratio of per-shopper sums — CTR = clicks / impressions, conversion = purchases / page
  views, revenue per visitor = revenue / shoppers — and its variance is the delta method's over
  shoppers, so a shopper with many pages counts as one correlated unit, not as many independent ones.
- Challenger vs control: the difference and the relative lift (delta method again), a fixed-horizon
  z-test, and the mixture sequential probability ratio test (mSPRT; Johari, Pekelis and Walsh, 2017):
  an always-valid p-value and confidence interval for the lift, so looking every day and stopping at
  the first significant look keeps the false-positive rate at ``alpha``. The mixing distribution is
  N(0, tau²) on the relative lift (``tau`` = the lifts one expects: 10 % by default).
- Sample-ratio mismatch: a chi-square test of the shoppers per variant against the shares (scipy);
  p < 0.001 flags broken assignment — every other number is then suspect.
- Power: the shoppers per variant a fixed-horizon test needs to detect ``mde`` (statsmodels), and the
  days that takes at the traffic seen so far.
- Interleaving: each shopper's clicks credited to the variant that placed the item; a shopper prefers
  the variant with more credited clicks; a binomial test of the preferences (ties left out).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from pydantic import BaseModel
from scipy import stats
from statsmodels.stats.power import NormalIndPower

from serving.experiments import Experiment
from serving.online import attributed, connect

# metric -> (numerator, denominator) per shopper
METRICS = {"ctr": ("clicks", "impressions"), "conversion": ("purchases", "lists"),
           "revenue_per_visitor": ("revenue", "visitors")}
SRM_ALPHA = 0.001  # the usual threshold: a mismatch this unlikely is a bug, not chance


class Estimate(BaseModel):
    value: float
    low: float
    high: float
    se: float


class VariantResult(BaseModel):
    name: str
    share: float
    shoppers: int
    lists: int
    impressions: int
    clicks: int
    purchases: int
    revenue: float
    metrics: dict[str, Estimate]


class Look(BaseModel):
    at: datetime
    shoppers: int
    lift: float
    p_value: float  # always valid: the running minimum of the mSPRT's 1/Lambda


class Comparison(BaseModel):
    variant: str
    metric: str
    difference: Estimate
    lift: Estimate  # fixed-horizon interval
    lift_always_valid: Estimate  # the mSPRT's confidence sequence at the last look
    p_fixed: float
    p_always_valid: float
    decision: str  # better | worse | not worse | undecided
    shoppers_needed: int | None  # per variant, for a fixed-horizon test of the mde at 80 % power
    days_to_decision: float | None
    looks: list[Look]


class Preference(BaseModel):
    shoppers: int  # with at least one click on the interleaved pages
    prefer_control: int
    prefer_challenger: int
    ties: int
    challenger_share: Estimate  # of the shoppers with a preference
    p_value: float
    decision: str


class Analysis(BaseModel):
    experiment_id: str
    mode: str
    primary_metric: str
    alpha: float
    variants: list[VariantResult]
    comparisons: list[Comparison]
    srm_p: float | None
    srm_flagged: bool
    preference: Preference | None
    guardrail_breach: str | None
    computed_at: datetime


# ---------------------------------------------------------------------- numpy in, numbers out


def ratio(y: np.ndarray, x: np.ndarray, alpha: float = 0.05) -> Estimate:
    """sum(y) / sum(x) over shoppers with its delta-method interval (y, x: per-shopper sums)."""
    n = len(y)
    if n < 2 or x.sum() <= 0:
        return Estimate(value=math.nan, low=math.nan, high=math.nan, se=math.nan)
    r = y.sum() / x.sum()
    cov = np.cov(y, x, ddof=1)  # (2, 2)
    var = (cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / (n * x.mean() ** 2)
    return normal_interval(r, math.sqrt(max(var, 0.0)), alpha)


def normal_interval(value: float, se: float, alpha: float = 0.05) -> Estimate:
    z = stats.norm.ppf(1 - alpha / 2)
    return Estimate(value=value, low=value - z * se, high=value + z * se, se=se)


def difference(t: Estimate, c: Estimate, alpha: float = 0.05) -> Estimate:
    """Challenger minus control (independent groups)."""
    return normal_interval(t.value - c.value, math.hypot(t.se, c.se), alpha)


def lift(t: Estimate, c: Estimate, alpha: float = 0.05) -> Estimate:
    """t / c - 1 by the delta method."""
    if not c.value > 0:
        return Estimate(value=math.nan, low=math.nan, high=math.nan, se=math.nan)
    se = math.sqrt(t.se ** 2 / c.value ** 2 + t.value ** 2 * c.se ** 2 / c.value ** 4)
    return normal_interval(t.value / c.value - 1, se, alpha)


def msprt_p(theta: float, var: float, tau: float) -> float:
    """1 / Lambda of the normal-mixture SPRT of theta = 0 at one look (cap 1); the always-valid
    p-value is the running minimum of this over the looks."""
    if not (var > 0 and math.isfinite(theta)):
        return 1.0
    log_lam = 0.5 * math.log(var / (var + tau * tau)) + tau * tau * theta * theta / (2 * var * (var + tau * tau))
    return min(1.0, math.exp(-log_lam))


def always_valid(theta: float, var: float, tau: float, alpha: float) -> Estimate:
    """The mSPRT's confidence sequence at one look: the thetas it would not reject."""
    if not (var > 0 and math.isfinite(theta)):
        return Estimate(value=theta, low=math.nan, high=math.nan, se=math.nan)
    t2 = tau * tau
    half = math.sqrt(var * (var + t2) / t2 * (2 * math.log(1 / alpha) + math.log((var + t2) / var)))
    return Estimate(value=theta, low=theta - half, high=theta + half, se=math.sqrt(var))


def srm_test(counts: list[int], shares: list[float]) -> float:
    """The chi-square p-value of the shoppers per variant against the configured shares."""
    n = sum(counts)
    if n == 0:
        return 1.0
    return float(stats.chisquare(counts, f_exp=[n * s for s in shares]).pvalue)


def shoppers_needed(control: Estimate, n_control: int, mde: float, alpha: float, ratio_: float = 1.0) -> int | None:
    """Control shoppers a fixed-horizon two-sided test needs to detect a relative lift of ``mde`` at
    80 % power, from the per-shopper spread seen so far (the delta method's, sqrt(n) x se)."""
    sd = control.se * math.sqrt(max(n_control, 1))
    if not (sd > 0 and control.value > 0):
        return None
    effect = mde * control.value / sd
    return math.ceil(NormalIndPower().solve_power(effect_size=effect, alpha=alpha, power=0.8, ratio=ratio_))


def decide(lo: float, hi: float, margin: float) -> str:
    if lo > 0:
        return "better"
    if hi < 0:
        return "worse"
    if lo > -margin:
        return "not worse"
    return "undecided"


# ---------------------------------------------------------------------- the logs


def per_list(root: Path, exp: Experiment, con: duckdb.DuckDBPyConnection | None = None
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per served list of the experiment: variant, shopper, rec_id, ts, impressions, clicks,
    purchases, revenue; for interleaving, one row per list x team: shopper, rec_id, ts, team, clicks).
    ``con``: a connection ``attributed`` already prepared (several experiments, one read of the logs)."""
    lists = pd.DataFrame(columns=["variant", "shopper", "rec_id", "ts", "impressions", "clicks", "purchases",
                                  "revenue"])
    teams = pd.DataFrame(columns=["shopper", "rec_id", "ts", "team", "clicks"])
    if con is None:
        con = connect()
        if not attributed(con, root):
            return lists, teams
    prefix = f"{exp.experiment_id}:"
    if exp.mode == "interleave":  # one query per mode: the other's frame stays empty
        teams = con.execute("""
            SELECT shopper, rec_id, min(ts) AS ts, team, sum(clicks) AS clicks FROM io
            WHERE variant = ? AND shopper IS NOT NULL AND team IS NOT NULL GROUP BY ALL""",
                            [f"{prefix}interleave"]).df()
        return lists, teams
    lists = con.execute("""
        SELECT substr(variant, length(?) + 1) AS variant, shopper, rec_id, min(ts) AS ts, count(*) AS impressions,
               sum(clicks) AS clicks, sum(purchases) AS purchases, sum(revenue) AS revenue
        FROM io WHERE starts_with(variant, ?) AND shopper IS NOT NULL
        GROUP BY ALL""", [prefix, prefix]).df()
    return lists, teams


def shopper_sums(lists: pd.DataFrame) -> pd.DataFrame:
    """Per variant x shopper: lists, impressions, clicks, purchases, revenue, visitors (= 1)."""
    g = lists.groupby(["variant", "shopper"], sort=False)
    out = g[["impressions", "clicks", "purchases", "revenue"]].sum()
    out["lists"] = g.size()
    out["visitors"] = 1
    return out.reset_index()


def _estimate(s: pd.DataFrame, metric: str, alpha: float) -> Estimate:
    y, x = METRICS[metric]
    return ratio(s[y].to_numpy(np.float64), s[x].to_numpy(np.float64), alpha)


def analyse(lists: pd.DataFrame, exp: Experiment, *, teams: pd.DataFrame | None = None,
            looks: list[datetime] | None = None, alpha: float = 0.05, tau: float = 0.1, mde: float = 0.05,
            now: datetime | None = None) -> Analysis:
    """Everything the console and the canary show about ``exp``. ``looks``: when the results were
    (or will be) looked at, for the always-valid p-value (default: the end of each day in the log)."""
    now = now or datetime.now(UTC)
    lists = lists.copy()
    lists["ts"] = pd.to_datetime(lists["ts"], utc=True)
    control = exp.variants[0]
    variants, comparisons = [], []
    sums = shopper_sums(lists)
    by = {v.name: sums[sums["variant"] == v.name] for v in exp.variants}
    for v in exp.variants if exp.mode == "ab" else []:
        s = by[v.name]
        variants.append(VariantResult(
            name=v.name, share=v.share, shoppers=len(s), lists=int(s["lists"].sum()) if len(s) else 0,
            impressions=int(s["impressions"].sum()) if len(s) else 0, clicks=int(s["clicks"].sum()) if len(s) else 0,
            purchases=int(s["purchases"].sum()) if len(s) else 0, revenue=float(s["revenue"].sum()) if len(s) else 0.0,
            metrics={m: _estimate(s, m, alpha) for m in METRICS}))
    srm_p = srm_test([r.shoppers for r in variants], [v.share for v in exp.variants]) if variants else None
    if exp.mode == "ab" and len(lists):
        if looks is None:
            days = lists["ts"].dt.floor("D").unique()
            looks = sorted(min(d + pd.Timedelta(days=1), now) for d in days)
        span_days = max((lists["ts"].max() - lists["ts"].min()).total_seconds() / 86400, 1 / 24)
        for v in exp.variants[1:]:
            comparisons.append(_compare(lists, exp, control.name, v.name, looks, alpha, tau, mde, span_days,
                                        by[control.name], by[v.name]))
    pref = preference(teams, exp, alpha) if exp.mode == "interleave" and teams is not None else None
    return Analysis(experiment_id=exp.experiment_id or "", mode=exp.mode, primary_metric=exp.primary_metric,
                    alpha=alpha, variants=variants, comparisons=comparisons, srm_p=srm_p,
                    srm_flagged=srm_p is not None and srm_p < SRM_ALPHA, preference=pref,
                    guardrail_breach=_ctr_floor(exp, variants), computed_at=now)


def _compare(lists: pd.DataFrame, exp: Experiment, control: str, name: str, looks: list, alpha: float, tau: float,
             mde: float, span_days: float, sc: pd.DataFrame, st: pd.DataFrame) -> Comparison:
    m = exp.primary_metric
    pair = lists[lists["variant"].isin([control, name])]
    history, p_run = [], 1.0
    for at in looks:  # the mSPRT at each look, over everything logged until then
        s = shopper_sums(pair[pair["ts"] <= pd.Timestamp(at)])
        c, t = _estimate(s[s["variant"] == control], m, alpha), _estimate(s[s["variant"] == name], m, alpha)
        lf = lift(t, c, alpha)
        p_run = min(p_run, msprt_p(lf.value, lf.se ** 2, tau))
        history.append(Look(at=at, shoppers=len(s), lift=lf.value, p_value=p_run))
    c, t = _estimate(sc, m, alpha), _estimate(st, m, alpha)
    lf = lift(t, c, alpha)
    p_run = min(p_run, msprt_p(lf.value, lf.se ** 2, tau))  # the data after the last look count too
    av = always_valid(lf.value, lf.se ** 2, tau, alpha)
    p_fixed = float(2 * stats.norm.sf(abs(lf.value / lf.se))) if lf.se > 0 else 1.0
    share = {v.name: v.share for v in exp.variants}
    need = shoppers_needed(c, len(sc), mde, alpha, share[name] / share[control])
    days = None
    if need is not None:
        rate = len(sc) / span_days  # control shoppers per day so far
        days = max(0.0, (need - len(sc)) / rate) if rate > 0 else None
    return Comparison(variant=name, metric=m, difference=difference(t, c, alpha), lift=lf, lift_always_valid=av,
                      p_fixed=p_fixed, p_always_valid=p_run, decision=decide(av.low, av.high, exp.non_inferiority)
                      if math.isfinite(av.low) else "undecided", shoppers_needed=need, days_to_decision=days,
                      looks=history)


def preference(teams: pd.DataFrame, exp: Experiment, alpha: float = 0.05) -> Preference:
    """Per shopper, the variant credited with more of their clicks; a binomial test of the wins."""
    a, b = exp.variants[0].name, exp.variants[1].name
    clicks = teams.pivot_table(index="shopper", columns="team", values="clicks", aggfunc="sum", fill_value=0)
    ca = clicks[a] if a in clicks else pd.Series(0, index=clicks.index)
    cb = clicks[b] if b in clicks else pd.Series(0, index=clicks.index)
    active = (ca + cb) > 0
    wa, wb = int((ca > cb).sum()), int((cb > ca).sum())
    ties = int(active.sum()) - wa - wb
    if wa + wb == 0:
        nan = Estimate(value=math.nan, low=math.nan, high=math.nan, se=math.nan)
        return Preference(shoppers=int(active.sum()), prefer_control=wa, prefer_challenger=wb, ties=ties,
                          challenger_share=nan, p_value=1.0, decision="undecided")
    test = stats.binomtest(wb, wa + wb, 0.5)
    ci = test.proportion_ci(1 - alpha, method="wilson")
    share = wb / (wa + wb)
    decision = "undecided" if test.pvalue >= alpha else ("better" if share > 0.5 else "worse")
    return Preference(shoppers=int(active.sum()), prefer_control=wa, prefer_challenger=wb, ties=ties,
                      challenger_share=Estimate(value=share, low=ci.low, high=ci.high,
                                                se=math.sqrt(share * (1 - share) / (wa + wb))),
                      p_value=float(test.pvalue), decision=decision)


def _ctr_floor(exp: Experiment, variants: list[VariantResult]) -> str | None:
    """A challenger whose CTR is below the floor (a share of the control's), both with enough impressions."""
    g = exp.guardrails
    if g.min_ctr_ratio is None or len(variants) < 2:
        return None
    c = variants[0]
    for v in variants[1:]:
        if min(c.impressions, v.impressions) >= g.min_impressions:
            cc, vc = c.metrics["ctr"].value, v.metrics["ctr"].value
            if cc > 0 and vc < g.min_ctr_ratio * cc:
                return f"{v.name}: CTR {vc:.4f} < {g.min_ctr_ratio:g} x the control's {cc:.4f}"
    return None


def experiment_analysis(root: Path, exp: Experiment, **kw) -> Analysis:
    """``analyse`` over the logs under ``root`` (bundle/logs.py)."""
    lists, teams = per_list(root, exp)
    return analyse(lists, exp, teams=teams, **kw)


def analyses(root: Path, exps: list[Experiment], **kw) -> dict[str, Analysis]:
    """Every experiment's analysis from one read of the logs (the console's page)."""
    con = connect()
    if not exps or not attributed(con, root):
        return {}
    out = {}
    for e in exps:
        lists, teams = per_list(root, e, con)
        out[e.experiment_id] = analyse(lists, e, teams=teams, **kw)
    return out
