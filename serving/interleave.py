"""Team-draft interleaving (Radlinski, Kurup and Joachims, 2008): two rankings merged into one page;
each click is credited to the team (variant) that placed the clicked item. In each round the team
with fewer picks — a coin when even — adds its best item not on the page yet, so neither ranking
gets the top slot more often than the other and a position bias hurts both alike."""

from __future__ import annotations

import random


def team_draft(a: list[dict], b: list[dict], k: int, rng: random.Random) -> tuple[list[dict], list[str]]:
    """(the page: up to ``k`` items of ``a`` and ``b`` by ``item_id``, the team of each: "A" or "B")."""
    page: list[dict] = []
    teams: list[str] = []
    seen: set[str] = set()
    at = {"A": 0, "B": 0}
    picks = {"A": 0, "B": 0}
    lists = {"A": a, "B": b}

    def next_of(team: str) -> dict | None:
        lst = lists[team]
        while at[team] < len(lst) and lst[at[team]]["item_id"] in seen:
            at[team] += 1
        return lst[at[team]] if at[team] < len(lst) else None

    while len(page) < k:
        first = "A" if picks["A"] < picks["B"] or (picks["A"] == picks["B"] and rng.random() < 0.5) else "B"
        team = first
        item = next_of(team)
        if item is None:  # one list ran out: the other fills the page
            team = "B" if first == "A" else "A"
            item = next_of(team)
            if item is None:
                break
        page.append(item)
        teams.append(team)
        seen.add(item["item_id"])
        picks[team] += 1
    return page, teams
