"""One tuning trial: the real trainer on the trial's settings, scored on validation, prunable.

Runs in a worker process (Prefect's process pool or a Dask worker): everything it needs
arrives as one typed value (:class:`TrialSpec`, holding the trial's
:class:`~rltrader.training.spec.RunSpec`) and it talks to the study only through its
storage, reporting the best validation score after each validation look so the median
pruner can stop a trial that trails the others at the same look.

A trial with several bar files trains one run per file, one after another, and scores the
mean of their scores. On a known-answer market (``rltrader synth``) a file's score is its
best validation score as a fraction of the oracle's on the same bars (at most 1), so
markets whose edges differ in size count alike; on any other file it is the raw score. With
``tune.time_target_seconds`` set, a run that takes longer loses ``tune.time_penalty`` per
multiple of the target it overruns: a setting that learns a little more in three times the
time does not win.

A trial trains the iterations and stops there: it never looks at the test split, so no
number that the search maximizes has seen test data. Its run directory keeps checkpoints
like any run, so a trial interrupted by a kill resumes where it was when the study resumes.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import optuna
from pydantic import BaseModel, ConfigDict

from rltrader.atomic import write_with
from rltrader.training.models import load_for_training
from rltrader.training.spec import RunSpec
from rltrader.training.trainer import Trainer
from rltrader.training.validation import per_bar_returns

logger = logging.getLogger(__name__)


class TrialSpec(BaseModel):
    """What a worker needs to run trial ``number`` of a study: where the study is, and the trial's run.

    :param study_name: the Optuna study's name
    :param storage: the study's RDB URL (SQLite by default), shared by every worker
    :param number: the trial's number in the study
    :param params: the sampled values (config keys by dotted name)
    :param run: the trial's training run (base config + ``tune.profile`` + ``params``)
    :param more_runs: the same settings on the study's further bar files, trained after ``run``
    :param pruner_startup_trials: the median pruner's trials before it prunes
    :param pruner_warmup_steps: validation looks of a trial before it may be pruned
    :param time_target_seconds: a run longer than this is penalized (None: time is free)
    :param time_penalty: score lost per multiple of the target overrun
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    study_name: str
    storage: str
    number: int
    params: dict[str, Any]
    run: RunSpec
    more_runs: list[RunSpec] = []
    pruner_startup_trials: int
    pruner_warmup_steps: int
    time_target_seconds: float | None = None
    time_penalty: float = 0.5

    @property
    def runs(self) -> list[RunSpec]:
        return [self.run, *self.more_runs]


class TrialOutcome(BaseModel):
    """How a trial ended: ``value`` is its score (the study maximizes it), ``files`` each run's part of it."""

    number: int
    state: Literal["complete", "pruned"]
    value: float | None
    looks: int
    timesteps: int
    seconds: float
    params: dict[str, Any]
    files: list[dict[str, Any]] = []


LOOK_STEPS_PER_FILE = 1000
"""A trial reports file ``k``'s look ``j`` as step ``k * 1000 + j``: the same step means the same point of
every trial (the files are trained in the same order), which is what the median pruner compares."""


def oracle_validation_sharpe(trainer: Trainer) -> float | None:
    """The oracle's validation Sharpe on a known-answer market's run (None for any other file, or an oracle
    without a positive Sharpe there: nothing to take a fraction of)."""
    from rltrader.evaluation.report import oracle_metrics

    metrics = oracle_metrics(trainer.market, "validation", trainer.config.env)
    sharpe = None if metrics is None else metrics.get("sharpe")
    return sharpe if sharpe is not None and sharpe > 0 else None


def file_score(best_score: float, oracle_sharpe: float | None, seconds: float, target: float | None,
               penalty: float) -> float:
    """One run's part of a trial's score: its best validation score (a fraction of the oracle's where there
    is one, at most 1: beating the oracle on one market does not make up for another), less the time penalty."""
    score = min(best_score / oracle_sharpe, 1.0) if oracle_sharpe else best_score
    overrun = 0.0 if target is None else max(0.0, seconds / target - 1.0)
    return score - penalty * overrun


VALIDATION_RETURNS_FILE = "validation_returns.npy"
"""The per-bar validation returns of a run's best model, kept in its directory for the study's PBO."""


def save_validation_returns(trainer: Trainer) -> Path | None:
    """Write the best model's per-bar validation returns next to it (atomically); None if it kept no model.

    Every trial scores on the same validation bars, so these columns form the trials x bars matrix
    that the probability of backtest overfitting is computed over (:mod:`rltrader.evaluation.overfitting`)."""
    if trainer.state.best is None or not trainer.paths.best_model.is_file():
        return None
    model = load_for_training(trainer.paths.best_model, trainer.env, trainer.training.seed)
    returns = per_bar_returns(trainer.validator, model)

    def write(path: Path) -> None:
        with path.open("wb") as handle:
            np.save(handle, returns)

    return write_with(trainer.paths.root / VALIDATION_RETURNS_FILE, write)


def median_pruner(startup_trials: int, warmup_steps: int) -> optuna.pruners.MedianPruner:
    return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_steps)


class _FileRun:
    """One bar file's run of a trial: trains it, reporting the trial's running score at each validation look."""

    def __init__(self, spec: TrialSpec, trial: optuna.trial.Trial, index: int, done: list[dict[str, Any]]) -> None:
        self.spec, self.trial, self.index, self.done = spec, trial, index, done
        self.run = spec.runs[index]
        self.oracle: float | None = None
        self.oracle_known = False
        self.looks = 0
        self.pruned = False
        self.started = time.perf_counter()
        self.trainer = Trainer.from_spec(self.run, validation_hooks=[self.report])

    def oracle_sharpe(self) -> float | None:
        if not self.oracle_known:
            self.oracle, self.oracle_known = oracle_validation_sharpe(self.trainer), True
        return self.oracle

    def score(self, best_score: float) -> float:
        return file_score(best_score, self.oracle_sharpe(), time.perf_counter() - self.started,
                          self.spec.time_target_seconds, self.spec.time_penalty)

    def report(self, look: int, best_score: float, model: Any, timesteps: int) -> None:
        self.looks += 1
        running = (sum(part["score"] for part in self.done) + self.score(best_score)) / (self.index + 1)
        self.trial.report(running, step=self.index * LOOK_STEPS_PER_FILE + look)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"trial {self.spec.number} pruned at validation look {look + 1} of "
                                     f"{Path(self.run.data_path).name}")

    def train(self) -> dict[str, Any] | None:
        """Train the file's run; its part of the score, or None when the trial was pruned (``pruned``) or the run
        kept no model (the trial then fails)."""
        try:
            self.trainer.train(log_resume=False)
        except optuna.TrialPruned as pruned:
            logger.info("%s", pruned)
            self.pruned = True
            save_validation_returns(self.trainer)  # a pruned trial was tried too: it counts in the study's PBO
            return None
        save_validation_returns(self.trainer)
        best = self.trainer.state.best
        if best is None:
            return None
        oracle = self.oracle_sharpe()
        return {"data": Path(self.run.data_path).name, "best_score": round(best.score, 4),
                "oracle_sharpe": None if oracle is None else round(oracle, 4),
                "seconds": round(time.perf_counter() - self.started, 1), "score": self.score(best.score)}

    @property
    def timesteps(self) -> int:
        return sum(record.timesteps for record in self.trainer.state.iterations)


def run_trial(spec: TrialSpec) -> TrialOutcome:
    """Train trial ``spec.number`` (resuming its run directories) and return how it ended."""
    study = optuna.load_study(study_name=spec.study_name, storage=spec.storage,
                              pruner=median_pruner(spec.pruner_startup_trials, spec.pruner_warmup_steps))
    trial_id = next(frozen._trial_id for frozen in study.get_trials(deepcopy=False) if frozen.number == spec.number)
    trial = optuna.trial.Trial(study, trial_id)
    started = time.perf_counter()
    files: list[dict[str, Any]] = []
    looks = timesteps = 0
    state: Literal["complete", "pruned"] = "complete"
    for index in range(len(spec.runs)):
        file_run = _FileRun(spec, trial, index, files)
        part = file_run.train()
        looks, timesteps = looks + file_run.looks, timesteps + file_run.timesteps
        if part is None:
            state = "pruned" if file_run.pruned else state
            break
        files.append(part)
    whole = state == "complete" and len(files) == len(spec.runs)
    value = sum(part["score"] for part in files) / len(files) if whole else None
    trial.set_user_attr("files", files)
    return TrialOutcome(number=spec.number, state=state, value=value, looks=looks, timesteps=timesteps,
                        seconds=round(time.perf_counter() - started, 2), params=spec.params, files=files)


__all__ = ["VALIDATION_RETURNS_FILE", "TrialOutcome", "TrialSpec", "file_score", "median_pruner",
           "oracle_validation_sharpe", "run_trial", "save_validation_returns"]
