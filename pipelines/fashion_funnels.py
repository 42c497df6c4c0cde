"""fashion-shop's funnels across days: shoppers come back to what they looked at, return to carts
they left, and re-buy consumables — the behaviour the repeat-aware placements (issue 30) are for.

The day's base events (pipelines/fashion_shop.py ``simulate_day``) are drawn as before; these are
added on top from a separate random stream per (seed, day), so with every funnel parameter at zero
the dataset is byte-for-byte what it was. What the funnels draw on is :class:`Memory`, a fold of
every earlier event in time order — the same fold whether the days are simulated in one run or
appended a few at a time (``append_days``), so both give the same events.

    revisit_share   a shopper with recent items opens a "revisit" session at this share of their
                    session rate, re-viewing ~revisit_views of their recent (not bought) items,
                    the more recent the likelier
    p_cart_return   a re-viewed item the shopper had carted and left is carted and bought again
                    with this chance (abandoned-cart recovery); other re-views convert like views
    consumables     categories bought again: each purchase schedules the next after a gamma(4)
                    interval of mean repurchase_days, kept with chance p_rebuy (else the shopper
                    stops buying it)
    complements     (category, its complement) pairs: a purchase in the first is followed in the
                    same session, with chance p_complement, by the purchase of one of the product's
                    PARTNERS partners (products of the complement category in the same style, drawn
                    once per product by popularity): what the `cart` placement's "bought together"
                    must find
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

RECENT = 20  # recent items remembered per shopper
PARTNERS = 3  # complement products per product


@dataclass
class Memory:
    """Per shopper (row index): recent items viewed or carted and not bought since (latest last),
    items carted and not bought, items bought, and the due time (days from the start) of each
    planned re-purchase."""

    recent: dict[int, OrderedDict[int, None]] = field(default_factory=dict)
    carted: dict[int, set[int]] = field(default_factory=dict)
    bought: dict[int, set[int]] = field(default_factory=dict)
    due: dict[tuple[int, int], float] = field(default_factory=dict)

    def fold(self, users: np.ndarray, items: np.ndarray, codes: np.ndarray, t: np.ndarray, consumable: np.ndarray,
             cfg) -> None:
        """Apply events in the order given (callers sort by time, shopper, item). codes: 0 view, 1 cart, 2 purchase."""
        for u, i, c, when in zip(users.tolist(), items.tolist(), codes.tolist(), t.tolist(), strict=True):
            rec = self.recent.setdefault(u, OrderedDict())
            if c < 2:
                rec.pop(i, None)
                rec[i] = None
                if len(rec) > RECENT:
                    rec.popitem(last=False)
                if c == 1:
                    self.carted.setdefault(u, set()).add(i)
                continue
            rec.pop(i, None)
            self.carted.get(u, set()).discard(i)
            self.bought.setdefault(u, set()).add(i)
            self.due.pop((u, i), None)
            if consumable[i]:  # the next re-purchase, drawn from this purchase alone (order-independent)
                rng = np.random.default_rng([cfg.seed, 77, u, i, int(round(when * 86400e3))])
                gap = max(1.0, rng.gamma(4.0, cfg.repurchase_days / 4.0))
                if rng.random() < cfg.p_rebuy:
                    self.due[(u, i)] = when + gap


class Partners:
    """Each product's complement partners: PARTNERS products of its category's complement in its style
    (any style when too few), drawn once by popularity from a stream of the product's own, so the
    simulator and the truth tables (pipelines/fashion_truth.py) draw the same ones."""

    def __init__(self, items: pd.DataFrame, cfg) -> None:
        self.seed = cfg.seed
        self.category = items["category"].to_numpy()
        self.style = items["style"].to_numpy() if "style" in items else np.zeros(len(items), int)
        self.popularity = items["popularity"].to_numpy(float) if "popularity" in items else np.ones(len(items))
        self.complement_of = {a: np.flatnonzero(self.category == b) for a, b in dict(cfg.complements).items()}
        self.drawn: dict[int, np.ndarray] = {}

    def of(self, i: int) -> np.ndarray:
        got = self.drawn.get(i)
        if got is None:
            pool = self.complement_of.get(self.category[i], np.zeros(0, int))
            same = pool[self.style[pool] == self.style[i]]
            pool = same if len(same) >= PARTNERS else pool
            w = self.popularity[pool]
            rng = np.random.default_rng([self.seed, 91, i])
            got = self.drawn[i] = (rng.choice(pool, min(PARTNERS, len(pool)), replace=False, p=w / w.sum())
                                   if len(pool) else pool)
        return got


def active(cfg) -> bool:
    return cfg.revisit_share > 0 or bool(cfg.consumables) or (bool(cfg.complements) and cfg.p_complement > 0)


class Funnels:
    """The funnels of one run: the memory of every event before the day being drawn. Events are
    folded once their time has passed (a late session of day d may end after midnight), in (time,
    shopper, item) order, so a run and a run appended to later fold the same events the same way."""

    def __init__(self, users: pd.DataFrame, items: pd.DataFrame, rate: np.ndarray, cfg) -> None:
        self.cfg, self.rate, self.memory = cfg, rate, Memory()
        self.user_ids, self.item_ids = users["user_id"].to_numpy(), items["item_id"].to_numpy()
        self.urow = pd.Series(np.arange(len(users)), index=self.user_ids)
        self.irow = pd.Series(np.arange(len(items)), index=self.item_ids)
        self.consumable = items["category"].isin(tuple(cfg.consumables)).to_numpy()
        self.category = items["category"].to_numpy()
        self.partners = Partners(items, cfg)
        self.start = pd.Timestamp(cfg.start, tz="UTC")
        self.pending = pd.DataFrame(columns=["user_id", "item_id", "event", "ts"])

    def add(self, events: pd.DataFrame) -> None:
        self.pending = events if self.pending.empty else pd.concat([self.pending, events], ignore_index=True)

    def advance_to(self, day: int) -> None:
        """Fold every pending event before ``day`` (days from the start)."""
        p = self.pending
        if p.empty:
            return
        t = ((p["ts"] - self.start).dt.total_seconds() / 86400).to_numpy()
        now = t < day
        done = p[now]
        order = np.lexsort((done["item_id"].to_numpy(), done["user_id"].to_numpy(), done["ts"].to_numpy()))
        code = done["event"].map({"view": 0, "cart": 1, "purchase": 2}).to_numpy()
        self.memory.fold(self.urow[done["user_id"].to_numpy()].to_numpy()[order],
                         self.irow[done["item_id"].to_numpy()].to_numpy()[order], code[order], t[now][order],
                         self.consumable, self.cfg)
        self.pending = p[~now].reset_index(drop=True)

    def first_purchases(self, base: pd.DataFrame, day: int) -> pd.DataFrame:
        """The day's base events less purchases of what the shopper already bought (consumables excepted):
        nobody buys the same dress twice."""
        self.advance_to(day)
        buy = (base["event"] == "purchase").to_numpy()
        if not buy.any():
            return base
        u = self.urow[base["user_id"].to_numpy()[buy]].to_numpy()
        i = self.irow[base["item_id"].to_numpy()[buy]].to_numpy()
        again = np.array([b in self.memory.bought.get(a, ()) and not self.consumable[b]
                          for a, b in zip(u, i, strict=True)], dtype=bool)
        drop = np.zeros(len(base), bool)
        drop[np.flatnonzero(buy)[again]] = True
        return base[~drop].reset_index(drop=True)

    def draw(self, day: int, ts_dtype, base: pd.DataFrame) -> pd.DataFrame:
        """The day's revisits and re-purchases (an events frame like the day's base events); never of
        an item the shopper buys in ``base`` (the day's base events) the same day."""
        self.advance_to(day)
        buys = base[base["event"] == "purchase"]
        today = set(zip(self.urow[buys["user_id"].to_numpy()].tolist(), self.irow[buys["item_id"].to_numpy()].tolist(),
                        strict=True))
        u, i, c, t = funnel_day(self.rate, self.cfg, day, self.memory, today)
        u, i, c, t = self.together(day, base, (u, i, c, t))
        ts = (self.start + pd.to_timedelta(np.round(t * 86400 * 1e3), unit="ms")).astype(ts_dtype)
        return pd.DataFrame({"user_id": self.user_ids[u], "item_id": self.item_ids[i],
                             "event": np.array(["view", "cart", "purchase"])[c], "ts": ts})


    def together(self, day: int, base: pd.DataFrame, drawn: tuple) -> tuple:
        """The day's complement purchases: after each purchase (the base events' and the funnels'),
        in a category with a complement, with chance p_complement, a partner viewed, carted and
        bought a minute later, unless the shopper owns it."""
        u, i, c, t = (list(x) for x in drawn)
        if not self.partners.complement_of or self.cfg.p_complement <= 0:
            return drawn
        rng = np.random.default_rng([self.cfg.seed, 9000 + day])
        buys = base[base["event"] == "purchase"]
        bu = self.urow[buys["user_id"].to_numpy()].to_numpy().tolist()
        bi = self.irow[buys["item_id"].to_numpy()].to_numpy().tolist()
        bt = ((buys["ts"] - self.start).dt.total_seconds() / 86400).to_numpy().tolist()
        bu += [a for a, k in zip(u, c, strict=True) if k == 2]
        bi += [b for b, k in zip(i, c, strict=True) if k == 2]
        bt += [w for w, k in zip(t, c, strict=True) if k == 2]
        for a, b, when in sorted(zip(bu, bi, bt, strict=True)):
            if self.category[b] not in self.partners.complement_of or rng.random() >= self.cfg.p_complement:
                continue
            mates = self.partners.of(b)
            if not len(mates):
                continue
            p = int(mates[rng.integers(len(mates))])
            if p in self.memory.bought.get(a, ()) and not self.consumable[p]:
                continue
            for k, dt in enumerate((60, 80, 200)):
                u.append(a), i.append(p), c.append(k), t.append(when + dt / 86400)
        return np.array(u, int), np.array(i, int), np.array(c, int), np.array(t, float)


def funnel_day(rate: np.ndarray, cfg, day: int, memory: Memory, skip: set[tuple[int, int]] = frozenset()
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(shoppers, items, codes, times in days) of the day's revisits and re-purchases, from ``memory``
    of the days before, none of the (shopper, item) pairs in ``skip``; codes 0 view, 1 cart, 2 purchase."""
    rng = np.random.default_rng([cfg.seed, 5000 + day])
    users, items, codes, ts = [], [], [], []
    bought_now: set[tuple[int, int]] = set()  # a later revisit session the same day does not buy it again

    def emit(u: int, i: int, c: int, when: float) -> None:
        users.append(u), items.append(i), codes.append(c), ts.append(when)

    for (u, i), when in sorted(memory.due.items()):  # re-purchases due today: view, cart, buy
        if day <= when < day + 1 and (u, i) not in skip:
            emit(u, i, 0, when), emit(u, i, 1, when + 20 / 86400), emit(u, i, 2, when + 140 / 86400)
    if cfg.revisit_share > 0:
        who = sorted(u for u, rec in memory.recent.items() if rec)
        n = rng.poisson(rate[who] * cfg.revisit_share) if who else np.zeros(0, int)
        for u, k in zip(who, n.tolist(), strict=True):
            owned = memory.bought.get(u, set())  # bought before: re-bought only as a due consumable
            rec = [i for i in memory.recent[u] if i not in owned]  # oldest first
            if not rec:
                continue
            w = 1.0 / np.arange(len(rec), 0, -1)  # the latest weighs 1, the one before 1/2, ...
            carted = memory.carted.get(u, set())
            for _ in range(k):
                when = day + rng.random()
                m = min(len(rec), 1 + rng.poisson(max(cfg.revisit_views - 1, 0)))
                for j, i in enumerate(rng.choice(rec, m, replace=False, p=w / w.sum()).tolist()):
                    if (u, i) in skip or (u, i) in bought_now:
                        continue
                    t = when + j * 40 / 86400
                    emit(u, i, 0, t)
                    back = i in carted
                    if rng.random() < (cfg.p_cart_return if back else cfg.p_cart):
                        emit(u, i, 1, t + 20 / 86400)
                        if back or rng.random() < cfg.p_purchase:
                            emit(u, i, 2, t + 140 / 86400)
                            bought_now.add((u, i))
    return np.array(users, int), np.array(items, int), np.array(codes, int), np.array(ts, float)
