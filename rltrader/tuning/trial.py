"""One tuning trial: the real trainer on the trial's settings, scored on validation, prunable.

Runs in a worker process (Prefect's process pool or a Dask worker): everything it needs
arrives as plain data (:class:`TrialSpec`) and it talks to the study only through its
storage, reporting the best validation score after each validation look so the median
pruner can stop a trial that trails the others at the same look.

A trial trains the iterations and stops there: it never looks at the test split, so no
number that the search maximizes has seen test data. Its run directory keeps checkpoints
like any run, so a trial interrupted by a kill resumes where it was when the study resumes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Literal

import optuna
from pydantic import BaseModel

from rltrader.config import parse_config
from rltrader.training.trainer import Trainer

logger = logging.getLogger(__name__)


class TrialSpec(BaseModel):
    """What a worker needs to run trial ``number`` of a study (JSON-safe, for any task runner)."""

    study_name: str
    storage: str
    number: int
    params: dict[str, Any]
    config: dict[str, Any]  # the trial's full config (base + profile + params), as model_dump(mode="json")
    data_path: str
    run_dir: str
    pruner_startup_trials: int
    pruner_warmup_steps: int


class TrialOutcome(BaseModel):
    """How a trial ended: ``value`` is its best validation score (the study maximizes it)."""

    number: int
    state: Literal["complete", "pruned"]
    value: float | None
    looks: int
    timesteps: int
    seconds: float
    params: dict[str, Any]


def median_pruner(startup_trials: int, warmup_steps: int) -> optuna.pruners.MedianPruner:
    return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_steps)


def run_trial(spec: TrialSpec, update_hooks: Sequence[Any] = ()) -> TrialOutcome:
    """Train trial ``spec.number`` (resuming its run directory) and return how it ended.

    ``update_hooks`` go to the trainer (the performance-mode switcher, as in a training run)."""
    study = optuna.load_study(study_name=spec.study_name, storage=spec.storage,
                              pruner=median_pruner(spec.pruner_startup_trials, spec.pruner_warmup_steps))
    trial_id = next(frozen._trial_id for frozen in study.get_trials(deepcopy=False) if frozen.number == spec.number)
    trial = optuna.trial.Trial(study, trial_id)
    config = parse_config(spec.config, source=f"trial {spec.number}")
    looks = {"count": 0}

    def report(look: int, best_score: float, model: Any, timesteps: int) -> None:
        looks["count"] = look + 1
        trial.report(best_score, step=look)
        if trial.should_prune():
            raise optuna.TrialPruned(f"trial {spec.number} pruned at validation look {look + 1}")

    started = time.perf_counter()
    trainer = Trainer(config, spec.data_path, spec.run_dir, update_hooks=update_hooks,
                      validation_hooks=[report]).open(log_resume=False)
    state: Literal["complete", "pruned"] = "complete"
    try:
        for iteration in range(trainer.state.next_iteration, config.training.iterations):
            trainer.train_iteration(iteration)
    except optuna.TrialPruned as pruned:
        logger.info("%s", pruned)
        state = "pruned"
    best = trainer.state.best
    timesteps = sum(record.timesteps for record in trainer.state.iterations)
    return TrialOutcome(number=spec.number, state=state, value=None if best is None else best.score,
                        looks=looks["count"], timesteps=timesteps, seconds=round(time.perf_counter() - started, 2),
                        params=spec.params)


__all__ = ["TrialOutcome", "TrialSpec", "median_pruner", "run_trial"]
