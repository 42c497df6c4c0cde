"""/v1/experiments: online experiments between bundles and serving settings (docs/experiments.md).
Reads need the read role, writes the admin role (serving/auth.py). An experiment saved here is in
effect in every worker within ``changes_poll_s``; its analysis reads the served and event logs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, Field

from bundle.versions import bundles_dir
from serving.auth import require_read
from serving.deps import Admin, State
from serving.experiment_stats import Analysis, experiment_analysis
from serving.experiments import NAME, Experiment, overlapping
from serving.schemas import ERRORS

router = APIRouter(prefix="/v1/experiments", tags=["experiments"], responses=ERRORS,
                   dependencies=[Depends(require_read)])
ExperimentId = Annotated[str, Path(pattern=NAME)]


class ExperimentList(BaseModel):
    experiments: list[Experiment]


class ExperimentDetail(BaseModel):
    experiment: Experiment
    bundles: dict[str, str] = Field(description="Each variant bundle in the worker that answered: loaded, loading "
                                    "or why it was refused (a refused variant is never served).")


class StopRequest(BaseModel):
    reason: str = Field("stopped by a merchandiser", min_length=1, max_length=2000)


def _get(state: State, experiment_id: str) -> Experiment:
    exp = next((e for e in state.merch.experiments(fresh=True) if e.experiment_id == experiment_id), None)
    if exp is None:
        raise HTTPException(404, f"no experiment {experiment_id!r}")
    return exp


@router.get("", response_model=ExperimentList)
def list_experiments(state: State) -> ExperimentList:
    """Every experiment, running or ended, oldest first."""
    return ExperimentList(experiments=state.merch.experiments(fresh=True))


@router.post("", response_model=Experiment, status_code=201,
             responses={409: {"description": "A running experiment already holds one of the placements."}})
def save_experiment(exp: Experiment, state: State, _: Admin) -> Experiment:
    """Start (or replace, by id) an experiment. Refused: a variant bundle that is not published here
    (422), or a placement another running experiment holds (409: a shopper sees one experiment per
    placement). Only ``running`` can be saved here; stop one with ``/stop``."""
    if exp.status != "running":
        raise HTTPException(422, "save a running experiment; stop one with POST /v1/experiments/{id}/stop")
    for v in exp.variants:
        if v.bundle is not None and not (bundles_dir(state.settings.artifacts_dir) / v.bundle).is_dir():
            raise HTTPException(422, f"variant {v.name!r}: no bundle {v.bundle!r} is published here")
    if other := overlapping(state.merch.experiments(fresh=True), exp):
        raise HTTPException(409, f"experiment {other.experiment_id!r} is running on "
                                 f"{sorted(set(other.placements) & set(exp.placements))}")
    return state.merch.save_experiment(exp)


@router.get("/{experiment_id}", response_model=ExperimentDetail)
def get_experiment(experiment_id: ExperimentId, state: State) -> ExperimentDetail:
    exp = _get(state, experiment_id)
    vb, out = state.variant_bundles, {}
    for v in exp.variants:
        if v.bundle is not None:
            out[v.bundle] = ("loaded" if v.bundle in vb.bundles else f"refused: {vb.failed[v.bundle]}"
                             if v.bundle in vb.failed else "loading" if v.bundle in vb.loading else "not requested yet")
    return ExperimentDetail(experiment=exp, bundles=out)


@router.post("/{experiment_id}/stop", response_model=Experiment)
def stop_experiment(experiment_id: ExperimentId, body: StopRequest, state: State, _: Admin) -> Experiment:
    """Stop serving it: its shoppers get the live page from the next poll on. Its logs stay."""
    exp = _get(state, experiment_id)
    if exp.status != "running":
        raise HTTPException(409, f"experiment {experiment_id!r} is already {exp.status}")
    return state.merch.save_experiment(exp.model_copy(update={"status": "stopped", "reason": body.reason,
                                                              "ended_at": datetime.now(UTC)}))


@router.get("/{experiment_id}/analysis", response_model=Analysis)
def analysis(experiment_id: ExperimentId, state: State) -> Analysis:
    """Per variant, the metrics with their 95 % intervals; each challenger against the control (lift,
    always-valid p-value, decision, power); the sample-ratio check; interleaving's preference."""
    exp = _get(state, experiment_id)
    if not state.settings.events:
        raise HTTPException(409, "the events log is off (VITRINE_EVENTS=false): nothing to analyse")
    return experiment_analysis(state.events_root, exp)
