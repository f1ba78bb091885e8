"""One tuning trial: the real trainer on the trial's settings, scored on validation, prunable.

Runs in a worker process (Prefect's process pool or a Dask worker): everything it needs
arrives as one typed value (:class:`TrialSpec`, holding the trial's
:class:`~rltrader.training.spec.RunSpec`) and it talks to the study only through its
storage, reporting the best validation score after each validation look so the median
pruner can stop a trial that trails the others at the same look.

A trial trains the iterations and stops there: it never looks at the test split, so no
number that the search maximizes has seen test data. Its run directory keeps checkpoints
like any run, so a trial interrupted by a kill resumes where it was when the study resumes.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

import optuna
from pydantic import BaseModel, ConfigDict

from rltrader.training.spec import RunSpec
from rltrader.training.trainer import Trainer

logger = logging.getLogger(__name__)


class TrialSpec(BaseModel):
    """What a worker needs to run trial ``number`` of a study: where the study is, and the trial's run.

    :param study_name: the Optuna study's name
    :param storage: the study's RDB URL (SQLite by default), shared by every worker
    :param number: the trial's number in the study
    :param params: the sampled values (config keys by dotted name)
    :param run: the trial's training run (base config + ``tune.profile`` + ``params``)
    :param pruner_startup_trials: the median pruner's trials before it prunes
    :param pruner_warmup_steps: validation looks of a trial before it may be pruned
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    study_name: str
    storage: str
    number: int
    params: dict[str, Any]
    run: RunSpec
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


def run_trial(spec: TrialSpec) -> TrialOutcome:
    """Train trial ``spec.number`` (resuming its run directory) and return how it ended."""
    study = optuna.load_study(study_name=spec.study_name, storage=spec.storage,
                              pruner=median_pruner(spec.pruner_startup_trials, spec.pruner_warmup_steps))
    trial_id = next(frozen._trial_id for frozen in study.get_trials(deepcopy=False) if frozen.number == spec.number)
    trial = optuna.trial.Trial(study, trial_id)
    looks = {"count": 0}

    def report(look: int, best_score: float, model: Any, timesteps: int) -> None:
        looks["count"] = look + 1
        trial.report(best_score, step=look)
        if trial.should_prune():
            raise optuna.TrialPruned(f"trial {spec.number} pruned at validation look {look + 1}")

    started = time.perf_counter()
    trainer = Trainer.from_spec(spec.run, validation_hooks=[report])
    state: Literal["complete", "pruned"] = "complete"
    try:
        trainer.train(log_resume=False)
    except optuna.TrialPruned as pruned:
        logger.info("%s", pruned)
        state = "pruned"
    best = trainer.state.best
    timesteps = sum(record.timesteps for record in trainer.state.iterations)
    return TrialOutcome(number=spec.number, state=state, value=None if best is None else best.score,
                        looks=looks["count"], timesteps=timesteps, seconds=round(time.perf_counter() - started, 2),
                        params=spec.params)


__all__ = ["TrialOutcome", "TrialSpec", "median_pruner", "run_trial"]
