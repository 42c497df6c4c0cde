"""A budgeted hyperparameter search for the two-tower (Optuna TPE, median pruning), judged on the
validation split only: the test split is never seen, so the numbers a search reports stay honest.

``tune_two_tower`` writes ``tuned.json`` (the winning parameters, their validation NDCG@10 and every
trial); `vitrine recsys tune` puts it at ``ARTIFACTS/tuning/two_tower.json``, where the nightly job
picks it up for every run until the next search replaces it.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import optuna

from recsys.config import RecTrainConfig
from recsys.data import RecData
from recsys.train import train_two_tower

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuneBudget:
    n_trials: int = 20
    timeout_s: float = 1800.0  # the search stops at whichever comes first
    epochs: int = 10  # most epochs per trial (early stopping and pruning cut most trials shorter)
    seed: int = 0


def suggest(trial: optuna.Trial) -> dict:
    """The search space: the user tower's shape and the knobs that decide over- or underfitting."""
    return {
        "sequence_encoder": trial.suggest_categorical("sequence_encoder", ["none", "mean", "gru", "attention"]),
        "lr": trial.suggest_float("lr", 3e-4, 5e-3, log=True),
        "temperature": trial.suggest_float("temperature", 0.03, 0.3, log=True),
        "profile_dropout": trial.suggest_float("profile_dropout", 0.0, 0.6),
        "user_id_dropout": trial.suggest_float("user_id_dropout", 0.0, 0.6),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 0.1, log=True),
    }


def tune_two_tower(data: RecData, base: RecTrainConfig, out: Path, budget: TuneBudget = TuneBudget()) -> dict:
    """Search ``suggest``'s space around ``base`` on ``data``'s validation users; write ``out/tuned.json``."""
    out.mkdir(parents=True, exist_ok=True)

    def objective(trial: optuna.Trial) -> float:
        run = out / f"trial-{trial.number}"
        shutil.rmtree(run, ignore_errors=True)
        cfg = replace(base, run_dir=str(run), epochs=budget.epochs, **suggest(trial))
        best = [0.0]

        def report(rec: dict) -> None:
            best[0] = max(best[0], rec["valid_ndcg@10"])
            trial.report(rec["valid_ndcg@10"], rec["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned()

        try:
            train_two_tower(cfg, data, on_epoch_end=report)
        finally:
            shutil.rmtree(run, ignore_errors=True)  # only the parameters are kept
        return best[0]

    t0 = time.perf_counter()
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=budget.seed),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2))
    study.optimize(objective, n_trials=budget.n_trials, timeout=budget.timeout_s)
    result = {"params": study.best_params, "valid_ndcg@10": study.best_value, "budget": asdict(budget),
              "seconds": round(time.perf_counter() - t0, 1), "base": asdict(base),
              "trials": [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params}
                         for t in study.trials]}
    (out / "tuned.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    log.info("best of %d trials: validation NDCG@10 %.4f with %s", len(study.trials), study.best_value,
             study.best_params)
    return result
