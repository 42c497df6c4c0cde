"""/v1/merch: the merchandisers' rules (pin / boost / bury / exclude), their preview as a shopper,
decisions on photos that look mislabeled, and shoppers to preview as. Reads need the read role,
writes the admin role (serving/auth.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query

from serving.auth import require_read
from serving.deps import Admin, Bundle, State
from serving.labels import decide_label
from serving.merch_schemas import (
    LabelDecision,
    LabelResult,
    PreviewRequest,
    PreviewResponse,
    RuleList,
    Shopper,
    ShopperList,
)
from serving.parsing import check_limits
from serving.recommend import recommend
from serving.rules import Rule, RuleSet, check_rule
from serving.schemas import ERRORS, AdminResponse

# the read role for everything here (rules, previews and shoppers are the console's, shoppers personal
# data); writes need the admin role on top (serving/auth.py)
router = APIRouter(prefix="/v1/merch", tags=["merchandising"], responses=ERRORS, dependencies=[Depends(require_read)])


@router.get("/rules", response_model=RuleList)
def list_rules(state: State) -> RuleList:
    """Every saved rule, active or not (each says when it starts and ends)."""
    return RuleList(rules=state.merch.rules(fresh=True).rules)


@router.post("/rules", response_model=Rule, status_code=201)
def save_rule(rule: Rule, bundle: Bundle, state: State, _: Admin) -> Rule:
    """Save a rule (a new id when none is given; the same id replaces it). In effect from the next
    request in this worker and within ``changes_poll_s`` in the others; outlives bundle versions."""
    check_rule(rule, bundle.catalog)
    return state.merch.save_rule(rule)


@router.delete("/rules/{rule_id}", response_model=AdminResponse)
def delete_rule(rule_id: str, state: State, _: Admin) -> AdminResponse:
    if not state.merch.delete_rule(rule_id):
        raise HTTPException(404, f"no rule {rule_id!r}")
    return AdminResponse(status="deleted", detail=rule_id)


@router.post("/preview", response_model=PreviewResponse)
def preview(body: PreviewRequest, bundle: Bundle, state: State) -> PreviewResponse:
    """The page a shopper would get with the draft rules added to the saved ones (each item
    explained), next to the page with the saved rules only, their events since the bundle included
    as the storefront's requests include them. Nothing is saved."""
    check_limits(body.request, state.settings)
    for r in body.rules:
        check_rule(r, bundle.catalog)
    saved = state.merch.rules(fresh=True).rules
    drafts = [r if r.rule_id else r.model_copy(update={"rule_id": f"draft-{i + 1}"}) for i, r in enumerate(body.rules)]
    req = body.request.model_copy(update={"explain": True})
    n = state.settings.candidates
    live = state.realtime if state.settings.realtime else None  # what the shopper did since the bundle, too
    return PreviewResponse(page=recommend(bundle, req, n, RuleSet(saved + drafts), live),
                           baseline=recommend(bundle, req, n, RuleSet(saved), live))


@router.post("/labels/{item_id}", response_model=LabelResult)
def decide(item_id: str, body: LabelDecision, bundle: Bundle, state: State, _: Admin) -> LabelResult:
    """Accept the image model's category for a product (or the one given), or dismiss the doubt.
    An accepted label applies live (filters, category pages, the ranker's category feature) and to
    the next night's data (pipelines/label_fixes.py)."""
    category = decide_label(bundle, state.merch, item_id, body.decision, body.category, body.note)
    return LabelResult(item_id=item_id, decision=body.decision, category=category)


@router.get("/shoppers", response_model=ShopperList)
def shoppers(bundle: Bundle, limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> ShopperList:
    """Known shoppers with a history, to preview as (the first ``limit`` in the catalog's order)."""
    return ShopperList(user_ids=bundle.shoppers.with_history(limit))


@router.get("/shoppers/{user_id}", response_model=Shopper)
def shopper(user_id: str, bundle: Bundle) -> Shopper:
    """A known shopper's stored history (latest first) and how many products they bought."""
    u = bundle.shoppers.row_of.get(user_id)
    if u is None:
        raise HTTPException(404, f"unknown shopper {user_id!r}")
    return Shopper(user_id=user_id, history=bundle.catalog.items_out(bundle.shoppers.history[u]),
                   purchased=len(bundle.shoppers.purchased[u]))
