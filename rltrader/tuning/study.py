"""The study: asking for trials, telling their outcomes, resuming, and the best trial as a config file.

One process asks and tells (the ``tune`` flow, or :meth:`Tuner.run_serially` without
Prefect); trials run wherever the task runner puts them and reach the study through its
storage: SQLite in ``results/tune-<name>/study.db`` by default, an RDB URL
(``tune.storage``, e.g. PostgreSQL) when workers on other machines must reach it.

Resuming: finished trials are in the storage and are never rerun. A trial that was
running when the process died is still ``RUNNING`` there; the next ``tune`` on the same
study runs it again with the same values in the same directory, where the trainer resumes
from its last checkpoint, and then tells its outcome.

The objective is the trial's best validation score (``training.selection_metric``): the
number that would select its model; with several bar files (``more_data``), the mean of
their scores, each a fraction of the oracle's on a known-answer market, less a time penalty
(:mod:`rltrader.tuning.trial`). The best of N trials is the best of N looks at
validation, so the config written from it says how many trials it was chosen from; the
test split is for judging that config once, with ``rltrader train``. How much that choice can be
trusted is measured over every trial tried, complete or pruned: the probability of backtest
overfitting (PBO, by CSCV over the trials' per-bar validation returns,
:mod:`rltrader.evaluation.overfitting`) and the pick's deflated Sharpe over the trial count, in
``overfitting.json``, the study's summary and its last lines.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml
from optuna.trial import TrialState
from pydantic import BaseModel, ConfigDict

from rltrader.atomic import write_json, write_text
from rltrader.config import Config
from rltrader.errors import UserInputError
from rltrader.evaluation.overfitting import aligned_on_last_bars, blocks_for, probability_of_backtest_overfitting
from rltrader.evaluation.significance import deflated_sharpe, sharpe_estimate
from rltrader.features.cache import file_digest
from rltrader.training.spec import RunSpec
from rltrader.tuning.space import search_distributions
from rltrader.tuning.trial import VALIDATION_RETURNS_FILE, TrialOutcome, TrialSpec, median_pruner, run_trial

logger = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def study_dir(results_dir: str | Path, name: str) -> Path:
    """Where study ``name`` lives (``TuneRequest.root`` names the same place for the run lock)."""
    return Path(results_dir) / f"tune-{name}"


def default_storage(root: Path) -> str:
    return f"sqlite:///{(root / 'study.db').resolve()}"


def _readable(value: Any) -> Any:
    """A sampled float to 5 significant digits for tables (the study and the config keep it whole)."""
    return float(f"{value:.5g}") if isinstance(value, float) else value




class StudyResult(BaseModel):
    """Where a study stands after a session: its best trial and the config file written from it.

    :param study: the study's name
    :param root: its directory
    :param finished: complete and pruned trials
    :param best_trial: the best complete trial's number (None while none completed)
    :param best_value: its best validation score
    :param best_params: its sampled values
    :param best_config: ``best_config.yaml``, which ``rltrader train --config`` takes
    :param overfitting: PBO over the trials and the pick's deflated Sharpe (:meth:`Tuner.overfitting`)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    study: str
    root: str
    finished: int
    best_trial: int | None = None
    best_value: float | None = None
    best_params: dict[str, Any] | None = None
    best_config: str | None = None
    overfitting: dict[str, Any] | None = None

    def __getitem__(self, key: str) -> Any:
        """Read a field by name, as the dict this result replaces was read (scripts, notebooks)."""
        return getattr(self, key)


@dataclass
class Tuner:
    """An open study and what its trials train: ``base`` is the config searched around (no profile);
    each trial trains ``base`` with ``tune.profile`` and its own values."""

    name: str
    base: Config
    data_path: Path
    root: Path
    storage: str
    study: optuna.Study
    distributions: dict[str, optuna.distributions.BaseDistribution] = field(default_factory=dict)
    started: float = 0.0
    told_this_session: int = 0
    settings_file: str | None = None
    follow_performance_mode: bool = False
    more_data: list[Path] = field(default_factory=list)

    @classmethod
    def open(cls, name: str, base: Config, data_path: str | Path, results_dir: str | Path,
             settings_file: str | None = None, follow_performance_mode: bool = False,
             more_data: list[str | Path] | None = None) -> Tuner:
        """Create the study, or load it if one of this name exists with the same data and space.

        :param name: the study's name (its directory is ``results_dir/tune-NAME``)
        :param base: the config searched around (no profile applied)
        :param data_path: the bar file every trial trains on
        :param results_dir: where the study's directory goes
        :param settings_file: the performance-mode file the trials read (None: the config's)
        :param follow_performance_mode: trials switch quiet/performance as that file says (the
            flow's trials do; a study run serially in a script does not)
        :param more_data: further bar files every trial also trains on (its score is the mean over files)
        """
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        data_path = Path(data_path)
        extra = [Path(path) for path in more_data or []]
        for path, flag in [(data_path, "--data_path"), *((path, "--more_data") for path in extra)]:
            if not path.is_file():
                raise UserInputError(f"{path}: bar file not found; pass an existing CSV/TSV/parquet to {flag}")
        stems = [path.stem for path in (data_path, *extra)]
        if len(set(stems)) < len(stems):
            raise UserInputError(f"{data_path}: two bar files of the study share the name "
                                 f"{next(stem for stem in stems if stems.count(stem) > 1)!r}; rename one")
        distributions = search_distributions(base)
        base.with_profile(base.tune.profile)  # a tune.profile missing from profiles: is refused before anything runs
        root = study_dir(results_dir, name)
        root.mkdir(parents=True, exist_ok=True)
        storage = base.tune.storage or default_storage(root)
        study = optuna.create_study(
            study_name=name, storage=storage, direction="maximize", load_if_exists=True,
            pruner=median_pruner(base.tune.pruner.n_startup_trials, base.tune.pruner.n_warmup_steps))
        # the sampler's random stream restarts with each process: seeded by the trials already
        # asked, a resumed study draws new values instead of replaying the first session's
        study.sampler = optuna.samplers.TPESampler(seed=base.tune.sampler_seed + len(study.trials))
        digests = [file_digest(path) for path in (data_path, *extra)]
        identity = {"data_sha256": digests[0] if not extra else digests,
                    "space": {key: str(value) for key, value in distributions.items()},
                    "metric": base.training.selection_metric, "profile": base.tune.profile}
        saved = study.user_attrs.get("identity")
        if saved is None:
            study.set_user_attr("identity", identity)
        elif saved != identity:
            changed = next(key for key in identity if saved.get(key) != identity[key])
            raise UserInputError(f"{root}: study {name!r} was started with another {changed.replace('_', ' ')}; "
                                 "resume it with the same data and tune settings, or pass another --name")
        return cls(name, base, data_path, root, storage, study, distributions, started=time.perf_counter(),
                   settings_file=settings_file, follow_performance_mode=follow_performance_mode, more_data=extra)

    # -- trials ----------------------------------------------------------------------------

    def finished(self) -> list[optuna.trial.FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=FINISHED)

    def interrupted(self) -> list[TrialSpec]:
        """Trials left running by a killed process: run again, each resuming its own directory."""
        return [self.spec(trial.number, trial.params)
                for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]

    def wanted(self, in_flight: int) -> int:
        """How many more trials to start now, with ``in_flight`` running (a failed trial counts as ended,
        so a study whose every trial fails still stops)."""
        ended = self.study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.FAIL))
        return max(0, self.base.tune.trials - len(ended) - in_flight)

    def ask(self) -> TrialSpec:
        trial = self.study.ask(self.distributions)
        return self.spec(trial.number, trial.params)

    def trial_dir(self, number: int) -> Path:
        return self.root / "trials" / f"{number:04d}"

    def spec(self, number: int, params: dict[str, Any]) -> TrialSpec:
        trial_config = self.trial_config(params)
        trial_dir = self.trial_dir(number)
        runs = [RunSpec(config=trial_config, data_path=str(path),
                        run_dir=str(trial_dir / path.stem if self.more_data else trial_dir),
                        settings_file=self.settings_file, follow_performance_mode=self.follow_performance_mode)
                for path in (self.data_path, *self.more_data)]
        return TrialSpec(study_name=self.name, storage=self.storage, number=number, params=params, run=runs[0],
                         more_runs=runs[1:], pruner_startup_trials=self.base.tune.pruner.n_startup_trials,
                         pruner_warmup_steps=self.base.tune.pruner.n_warmup_steps,
                         time_target_seconds=self.base.tune.time_target_seconds,
                         time_penalty=self.base.tune.time_penalty)

    def trial_config(self, params: dict[str, Any]) -> Config:
        return self.base.with_profile(self.base.tune.profile).with_overrides(params, source="tune trial")

    def tell(self, outcome: TrialOutcome) -> str:
        """Record a trial's outcome in the study; returns the progress line."""
        if outcome.state == "pruned":
            self.study.tell(outcome.number, state=TrialState.PRUNED)
        elif outcome.value is None or not math.isfinite(outcome.value):
            self.study.tell(outcome.number, state=TrialState.FAIL)
        else:
            self.study.tell(outcome.number, outcome.value)
        self.told_this_session += 1
        return self.progress_line(outcome)

    def fail(self, number: int) -> None:
        """A trial whose task failed (retries spent): failed in the study, not counted as finished."""
        self.study.tell(number, state=TrialState.FAIL)

    def progress_line(self, outcome: TrialOutcome) -> str:
        finished = self.finished()
        pruned = sum(trial.state == TrialState.PRUNED for trial in finished)
        total = self.base.tune.trials
        elapsed = time.perf_counter() - self.started
        left = max(0, total - len(finished))
        eta = elapsed / self.told_this_session * left / max(1, self.base.tune.workers) if left else 0.0
        metric = "mean score" if self.more_data else self.base.training.selection_metric
        what = (f"pruned at look {outcome.looks}" if outcome.state == "pruned"
                else f"{metric} {outcome.value:.3f}" if outcome.value is not None
                else "failed")
        best = self.best_trial()
        best_text = f"best {best.value:.3f} (trial {best.number})" if best else "no complete trial yet"
        return (f"Trial {outcome.number} {what} in {outcome.seconds / 60:.1f} min | {len(finished)} of {total} "
                f"finished ({pruned} pruned) | {best_text} | ETA {eta / 60:.1f} min")

    def best_trial(self) -> optuna.trial.FrozenTrial | None:
        complete = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return max(complete, key=lambda trial: trial.value) if complete else None

    # -- results ---------------------------------------------------------------------------

    def trials_table(self) -> list[dict[str, Any]]:
        """One row per trial, for the artifact and ``trials.json``."""
        rows = []
        for trial in self.study.get_trials(deepcopy=False):
            rows.append({"trial": trial.number, "state": trial.state.name.lower(),
                         "value": None if trial.value is None else round(trial.value, 4),
                         "looks": len(trial.intermediate_values),
                         "minutes": round(trial.duration.total_seconds() / 60, 2) if trial.duration else None,
                         **{key: _readable(trial.params.get(key)) for key in self.distributions},
                         **{f"score {part['data']}": round(part["score"], 3)
                            for part in trial.user_attrs.get("files", []) if self.more_data}})
        return rows

    def importances(self) -> dict[str, float]:
        """Optuna's parameter importances over the complete trials; empty while too few.

        PED-ANOVA rather than Optuna's default fANOVA: fANOVA needs scikit-learn (a random
        forest), PED-ANOVA needs only numpy and is built for few trials."""
        complete = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(complete) < 2 or len({json.dumps(t.params, sort_keys=True) for t in complete}) < 2:
            return {}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                evaluator = optuna.importance.PedAnovaImportanceEvaluator()
                found = optuna.importance.get_param_importances(self.study, evaluator=evaluator)
            return {key: round(value, 4) for key, value in found.items()}
        except (RuntimeError, ValueError) as error:  # e.g. a parameter that never varied
            logger.info("No parameter importances yet: %s", error)
            return {}

    def overfitting(self) -> dict[str, Any] | None:
        """PBO over every finished trial (complete and pruned) on the study's validation bars, and the pick's
        deflated Sharpe over that trial count; None while fewer than two trials kept returns to compare.

        The columns are each trial's best model's per-bar validation returns on the study's bar file
        (the first, with ``more_data``): the very bars its score was taken on, cut to the bars every
        trial has (a trial observing more bars back starts deciding later in the split)."""
        columns: dict[int, np.ndarray] = {}
        for trial in self.finished():
            path = self.trial_dir(trial.number) / (self.data_path.stem if self.more_data else "") / \
                VALIDATION_RETURNS_FILE
            if path.is_file():
                columns[trial.number] = np.load(path)
        if len(columns) < 2:
            return None
        matrix = aligned_on_last_bars(list(columns.values()))
        if not (blocks := blocks_for(matrix.shape[0])):
            return None
        report = probability_of_backtest_overfitting(matrix, blocks).to_json()
        best = self.best_trial()
        if best is not None and best.number in columns:  # per-bar units: the deflation does not depend on them
            report["pick"] = {"trial": best.number, "deflated_sharpe": deflated_sharpe(
                sharpe_estimate(matrix[:, list(columns).index(best.number)], 1.0), len(columns))}
        report["trial_numbers"] = list(columns)
        return report

    def write_results(self) -> Path | None:
        """``trials.json``, ``importances.json`` and, once a trial is complete, ``best_config.yaml``."""
        write_json(self.root / "trials.json", {"study": self.name, "storage": self.storage,
                                               "trials": self.trials_table()})
        write_json(self.root / "importances.json", self.importances())
        write_json(self.root / "overfitting.json", self.overfitting())
        best = self.best_trial()
        if best is None:
            return None
        config = self.base.with_overrides(best.params, source=f"best trial {best.number}")
        scored = (f"validation {self.base.training.selection_metric}" if not self.more_data
                  else f"mean validation {self.base.training.selection_metric} over {1 + len(self.more_data)} files "
                       "(a fraction of the oracle's on known-answer markets)")
        header = (f"# rltrader tune {self.name}: trial {best.number}, the best of {len(self.finished())} finished "
                  f"trials by {scored} ({best.value:.3f}).\n"
                  f"# Searched: {', '.join(f'{key}={value!r}' for key, value in best.params.items())}.\n"
                  "# That score picked this config among many: judge it once on test, with\n"
                  f"#   rltrader train --data_path {self.data_path} --config {self.root / 'best_config.yaml'}\n")
        target = self.root / "best_config.yaml"
        write_text(target, header + yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
        return target

    def result(self, best_config: Path | None) -> StudyResult:
        """The study's standing: its best trial and ``best_config`` (what :meth:`write_results` wrote)."""
        best = self.best_trial()
        return StudyResult(study=self.name, root=str(self.root), finished=len(self.finished()),
                           best_trial=None if best is None else best.number,
                           best_value=None if best is None else best.value,
                           best_params=None if best is None else best.params,
                           best_config=None if best_config is None else str(best_config),
                           overfitting=self._written_overfitting())

    def _written_overfitting(self) -> dict[str, Any] | None:
        """What :meth:`write_results` wrote to ``overfitting.json`` (computed there once), else computed now."""
        try:
            return json.loads((self.root / "overfitting.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return self.overfitting()

    # -- without Prefect -------------------------------------------------------------------

    def run_serially(self) -> Path | None:
        """The whole study in this process, one trial after another (the flow runs them in parallel)."""
        pending = self.interrupted()
        while pending or self.wanted(0):
            spec = pending.pop(0) if pending else self.ask()
            logger.info(self.tell(run_trial(spec)))
        return self.write_results()


__all__ = ["FINISHED", "StudyResult", "Tuner", "default_storage", "study_dir"]
