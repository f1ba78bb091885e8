"""The iterative RecurrentPPO trainer: the product's core loop, top to bottom.

One run = preprocess once, then ``training.iterations`` iterations, each of which trains
on the training split, is scored on the validation split, and may replace the best model;
at the end the best model meets the test split once, next to the baselines. The
optimizations are switches on this one loop (``Config.optimizations`` and
``optimizations.cache_environments`` among them), so the original method is the same
code with every switch off:

- adaptive timesteps: later iterations train fewer timesteps (``budget.py``);
- warm start: iteration i > 0 continues from the best model so far, re-seeded;
- early stopping: validate every ``eval_freq`` timesteps and stop a converged iteration
  (``convergence.py``); without it the model is validated once, at the iteration's end;
- progressive training: phase hyperparameters through SB3's schedules (``phases.py``);
- cached preprocessing: features are read from the cache instead of recomputed;
- fast evaluation: the compiled actor instead of ``model.predict`` per bar;
- fast engine: every minibatch on the fused LSTM path (:mod:`rltrader.engine`), same math.

Crash safety: checkpoints at update boundaries (``checkpoints.py``) and the run state at
iteration ends (``run_state.py``); the same call on the same ``run_dir`` resumes.

Every model logs SB3's own training diagnostics (``diagnostics.py``), and every update
is recorded with the settings it ran with (:mod:`rltrader.runtime.update_metrics`).

``run()`` is the whole loop; the Prefect flow drives the same steps one task each:
``open()``, ``train_iteration(i)`` per iteration, ``finish()``. Every step reads what it
needs from ``run_dir``, so a step retried in a new process carries on where the last left.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rltrader.atomic import remove_stray_temp_files, write_json, write_text
from rltrader.bundle import describe, read_bundle, write_bundle
from rltrader.config import Config
from rltrader.display.lines import iteration_line
from rltrader.display.markdown import run_report
from rltrader.display.trust import trust_markdown
from rltrader.env import MarketData
from rltrader.env.vec_env import VecTradingEnv
from rltrader.errors import UserInputError
from rltrader.evaluation.report import EvaluationReport, evaluate_model, write_report
from rltrader.features.preparation import PreparedData, preprocess
from rltrader.records import BestModel, CheckpointState, IterationRecord, RunSummary, SplitOutcome, Validation
from rltrader.runtime.allocator import fix_heap_thresholds
from rltrader.runtime.faults import maybe_inject_fault
from rltrader.runtime.hooks import UpdateHook, as_hooks
from rltrader.runtime.update_metrics import UpdateMetrics
from rltrader.training.budget import iteration_budget, original_budget
from rltrader.training.calibration import original_throughput
from rltrader.training.callbacks import IterationCallback
from rltrader.training.checkpoints import CheckpointStore, save_model_atomically, sha256_of
from rltrader.training.convergence import ConvergenceTracker
from rltrader.training.diagnostics import run_logger
from rltrader.training.models import build_model, load_for_training
from rltrader.training.phases import (
    apply_hyperparameters,
    hyperparameters_for,
    reset_for_new_window,
    unused_settings,
)
from rltrader.training.risk_aversion import SharpeRiskAversion
from rltrader.training.run_state import RunState, count_trials, fingerprint
from rltrader.training.spec import RunSpec
from rltrader.training.summary import TEST, build_summary, speedup_so_far
from rltrader.training.trust import (
    cost_stress,
    cpcv_figures,
    selection_figures,
    split_figures,
    stream_parity,
    study_figures,
)
from rltrader.training.validation import ValidationResult, Validator

logger = logging.getLogger(__name__)

TRAIN = "train"


def is_out_of_memory(error: BaseException) -> bool:
    """torch's GPU OOM, Python's MemoryError, or the CPU allocator's RuntimeError."""
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    message = str(error).lower()
    return "out of memory" in message or "can't allocate memory" in message


@dataclass(frozen=True)
class RunPaths:
    """Where one run keeps its files: ``results/<seed>/`` by default."""

    root: Path

    @property
    def state(self) -> Path:
        return self.root / "run_state.json"

    @property
    def best_model(self) -> Path:
        return self.root / "best_model.zip"

    @property
    def best_state(self) -> Path:
        return self.root / "best_model.json"

    @property
    def summary(self) -> Path:
        return self.root / "optimization_summary.json"

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def bundle(self) -> Path:
        return self.root / "bundle"

    def iteration_dir(self, iteration: int) -> Path:
        return self.root / "iterations" / f"iter_{iteration:02d}"


def method_name(config: Config) -> str:
    switches = config.optimizations.model_dump().values()
    return "original" if not any(switches) else "optimized" if all(switches) else "custom"


@dataclass
class _IterationProgress:
    """Mutable bookkeeping of the iteration being trained."""

    iteration: int
    seed: int
    budget: int
    warm_started: bool
    phase: str
    last_validation_at: int = 0
    last_checkpoint_at: int = 0
    evaluations: int = 0
    evaluation_seconds: float = 0.0
    last_result: ValidationResult | None = None
    stopped_at: int | None = None
    history: list[Validation] = field(default_factory=list)
    resumed_at: int = 0
    elapsed_before: float = 0.0
    clock_start: float = field(default_factory=time.perf_counter)

    @property
    def wall_seconds(self) -> float:
        """Time spent on this iteration, including the part before a resume."""
        return self.elapsed_before + time.perf_counter() - self.clock_start


class Trainer:
    """Runs (or resumes) one training run in ``run_dir``; see the module docstring."""

    def __init__(self, config: Config, data_path: str | Path, run_dir: str | Path,
                 update_hooks: Sequence[UpdateHook | Callable[[Any, int], None]] = (), seed_offset: int = 0,
                 validation_hooks: Sequence[Callable[[int, float, Any, int], None]] = (),
                 initial_model: str | Path | None = None, prepared: PreparedData | None = None,
                 preprocess_seconds: float = 0.0, reset_from_initial: float | None = None,
                 trust_checks: bool = True, study_dir: str | None = None, config_file: str | None = None) -> None:
        """Entry points build a :class:`~rltrader.training.spec.RunSpec` and call :meth:`from_spec`;
        this constructor takes the same values one by one (and hooks, which are not data).

        :param config: the run's full configuration
        :param data_path: the bar file the run trains on
        :param run_dir: the run's directory; the same call on the same directory resumes
        :param update_hooks: run before every update (:mod:`rltrader.runtime.hooks`): the
            performance-mode switch, a test's fault injector
        :param seed_offset: shifts every iteration's seed: parallel candidates of one iteration
            differ by it (candidate 0 has offset 0, so it is exactly the serial run)
        :param validation_hooks: called after every validation look with the look's number in the
            run (0, 1, ...), the best score so far, the model and the timesteps the run has
            trained; an exception raised there (a pruned tuning trial) ends training
        :param initial_model: the first iteration continues from this saved model instead of a
            fresh one (a walk-forward fold warm-started from the previous fold's best)
        :param prepared: the preprocessed data, when a step before prepared it; None preprocesses
            in :meth:`open`
        :param preprocess_seconds: what preparing ``prepared`` took, counted in the run's total
        :param reset_from_initial: the first iteration starts from ``initial_model``'s weights with a fresh
            optimizer and an entropy coefficient of at least this (a challenger's warm_reset start)
        :param trust_checks: the final report also stresses costs and checks the live stream's parity
            (:mod:`rltrader.training.trust`); off for walk-forward folds
        :param study_dir: the tune study that chose the config (its PBO joins the trust report)
        :param config_file: the config file the run's settings came from (a CPCV of the same file joins the
            trust report)
        """
        self.config = config
        self.training = config.training
        self.switches = config.optimizations
        self.data_path = Path(data_path)
        self.paths = RunPaths(Path(run_dir))
        self.update_hooks = as_hooks(update_hooks)
        self.method = method_name(config)
        self.seed_offset = seed_offset
        self.validation_hooks = tuple(validation_hooks)
        self.initial_model = Path(initial_model) if initial_model is not None else None
        self.prepared = prepared
        self.preprocess_seconds = preprocess_seconds
        self.reset_from_initial = reset_from_initial
        self.trust_checks = trust_checks
        self.study_dir = study_dir
        self.config_file = config_file
        self.checkpoints = CheckpointStore(self.paths.root, keep=self.training.keep_checkpoints)

    @classmethod
    def from_spec(cls, spec: RunSpec, validation_hooks: Sequence[Callable[[int, float, Any, int], None]] = (),
                  extra_hooks: Sequence[UpdateHook] = ()) -> Trainer:
        """The trainer of ``spec``: how every entry point runs a training.

        :param spec: the run (:class:`~rltrader.training.spec.RunSpec`)
        :param validation_hooks: as in the constructor (a tuning trial's pruning report)
        :param extra_hooks: update hooks beside the spec's own performance-mode switch
        """
        return cls(spec.config, spec.data_path, spec.run_dir, [*spec.update_hooks(), *extra_hooks],
                   seed_offset=spec.seed_offset, validation_hooks=validation_hooks,
                   initial_model=spec.initial_model, prepared=spec.prepared,
                   preprocess_seconds=spec.preprocess_seconds, reset_from_initial=spec.reset_from_initial,
                   trust_checks=spec.trust_checks, study_dir=spec.study_dir, config_file=spec.config_file)

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> RunSummary:
        """Train every unfinished iteration, then report the best model; returns the summary."""
        return self.train().finish()

    def train(self, log_resume: bool = True) -> Trainer:
        """Open the run and train every unfinished iteration, without the final report (a tuning
        trial stops here: no number it is scored on has seen the test split)."""
        self.open(log_resume=log_resume)
        for iteration in range(self.state.next_iteration, self.training.iterations):
            self.train_iteration(iteration)
        return self

    def open(self, prepared: PreparedData | None = None, preprocess_seconds: float | None = None,
             log_resume: bool = True) -> Trainer:
        """Load the data and the run's saved state.

        Preprocesses unless the data was prepared before (``prepared`` here or in the
        constructor: the flow's cached task already did it, and passes the seconds it took so
        the summary's total stays honest). The flow opens a trainer per task and says once
        itself what it resumes: ``log_resume=False``."""
        fix_heap_thresholds()  # training speed otherwise depends on the process's allocation history
        for unused in unused_settings(self.training, self.switches.progressive_training):
            logger.warning("Progressive training replaces %s", unused)
        prepared = prepared if prepared is not None else self.prepared
        preprocess_seconds = self.preprocess_seconds if preprocess_seconds is None else preprocess_seconds
        if prepared is None:
            started = time.perf_counter()
            prepared = preprocess(self.data_path, self.config)
            preprocess_seconds = time.perf_counter() - started
        self.prepared = prepared
        self.market = MarketData.from_prepared(prepared, self.config, self.data_path)
        expected = fingerprint(self.config, prepared.metadata["source"]["sha256"], prepared.metadata.get("fold"))
        self.state = RunState.load_or_create(self.paths.state, expected, self.method)
        for stray in remove_stray_temp_files(self.paths.root):
            logger.info("Removed %s, left half-written by an interrupted run", stray)
        if not self.state.iterations:
            self.state.preprocess_seconds = preprocess_seconds
        self.tracker = ConvergenceTracker.from_dict(self.state.tracker, *self._stopping_rule())
        self.validator = Validator(self.market, self.config.env, self.training.selection_metric,
                                   "fast" if self.switches.fast_evaluation else "reference")
        self.env = VecTradingEnv(self.market, TRAIN, self.config.env, self.training.n_envs)
        self.risk_aversion = SharpeRiskAversion(self.env, self.config.env.risk_aversion_gain,
                                                self.config.env.risk_aversion)
        self._load_best_record()
        self._reconcile_with_best()
        if self.method != "original" and self.state.original_throughput is None:  # the speedup estimate's basis
            self.state.original_throughput = original_throughput(
                self.config, self.market, [hook for hook in self.update_hooks if hook.sets_runtime])
        if self.state.next_iteration and log_resume:
            logger.info("Resuming %s: %d of %d iterations already trained",
                        self.paths.root, self.state.next_iteration, self.training.iterations)
        return self

    def _stopping_rule(self) -> tuple[int, float, float]:
        patience = self.training.early_stopping_patience if self.switches.early_stopping else 0
        return patience, self.training.convergence_threshold, self.training.early_stopping_smoothing

    # -- one iteration ---------------------------------------------------------------------

    def train_iteration(self, iteration: int) -> IterationRecord:
        """Train, validate and keep the best of ``iteration``; returns its record.

        An iteration already recorded is not trained again: its record is returned, so a
        retried flow run walks past finished work. Iterations go in order because each
        warm-starts from the best model the previous ones left.
        """
        if iteration < self.state.next_iteration:
            logger.info("Iteration %d/%d already trained; skipping it", iteration + 1, self.training.iterations)
            return self.state.iterations[iteration]
        if iteration > self.state.next_iteration:
            raise UserInputError(f"{self.paths.root}: iteration {iteration + 1} asked for, but only "
                                 f"{self.state.next_iteration} are trained; iterations run in order")
        self._run_iteration(iteration)
        return self.state.iterations[iteration]

    def _run_iteration(self, iteration: int) -> None:
        hyper = hyperparameters_for(iteration, self.training, self.switches.progressive_training)
        budget = iteration_budget(iteration, self.training, self.switches.adaptive_timesteps)
        seed = self.training.seed + self.seed_offset + iteration
        model, progress = self._start_or_resume(iteration, seed, budget, hyper.phase)
        apply_hyperparameters(model, hyper)
        if iteration == 0 and progress.warm_started and self.reset_from_initial is not None:
            reset_for_new_window(model, self.reset_from_initial, fresh_optimizer=progress.last_checkpoint_at == 0)
        model.batch_size = self.training.batch_size  # a checkpoint may hold a performance-mode batch
        logger.info("Iteration %d/%d [%s] %s, %s timesteps, seed %d", iteration + 1, self.training.iterations,
                    hyper.phase, ("warm start from " + ("the best model" if iteration else str(self.initial_model)))
                    if progress.warm_started else "fresh model",
                    f"{budget - progress.last_checkpoint_at:,}" + (" remaining" if progress.last_checkpoint_at else ""),
                    seed)

        recorder = UpdateMetrics(self.paths.root, self._applied_mode)  # last: it records what the others set
        callback = IterationCallback(progress.last_checkpoint_at,
                                     lambda done: self._at_update_boundary(model, progress, done),
                                     [*self.update_hooks, self.risk_aversion, recorder])
        timesteps_before = sum(record.timesteps for record in self.state.iterations) + progress.last_checkpoint_at
        model.set_logger(run_logger(self.paths.root, timesteps_before))
        train_started = time.perf_counter()
        try:
            model.learn(total_timesteps=budget - progress.last_checkpoint_at, callback=callback,
                        reset_num_timesteps=True)
        except (torch.OutOfMemoryError, MemoryError, RuntimeError) as error:
            model.logger.close()
            if not is_out_of_memory(error) or not self._recover_from_out_of_memory(iteration, error):
                raise
            return self._run_iteration(iteration)  # from the last checkpoint, under the hooks' new settings
        model.logger.close()
        train_seconds = time.perf_counter() - train_started
        timesteps = progress.stopped_at if progress.stopped_at is not None else callback.timesteps_done
        if progress.stopped_at is None and (progress.last_result is None or progress.last_validation_at != timesteps):
            self._validate(model, progress, timesteps)

        iteration_dir = self.paths.iteration_dir(iteration)
        save_model_atomically(model, iteration_dir / "model.zip")
        result = progress.last_result
        record = IterationRecord(
            iteration=iteration,
            phase=hyper.phase,
            hyperparameters=hyper,
            seed=seed,
            budget_timesteps=budget,
            timesteps=timesteps,
            timesteps_saved=original_budget(self.training) - timesteps,
            early_stopped=progress.stopped_at is not None,
            warm_started=progress.warm_started,
            evaluations=progress.evaluations,
            evaluation_seconds=round(progress.evaluation_seconds, 3),
            validation_score=result.score if result else None,
            validation_metrics=result.metrics if result else None,
            best_score_after=self.tracker.to_dict()["best_score"],
            timesteps_per_second=round((timesteps - progress.resumed_at) / train_seconds, 1)
            if train_seconds > 0 else None,
            wall_seconds=round(progress.wall_seconds, 3),
            resumed_at=progress.resumed_at,
            performance_modes=[mode for hook in self.update_hooks for mode in hook.modes_used],
            validations=progress.history,
        )
        write_json(iteration_dir / "metrics.json", record.to_json())
        self.state.iterations.append(record)
        self.state.tracker = self.tracker.to_dict()
        self.state.save(self.paths.state)
        self.checkpoints.clear(iteration)
        logger.info(iteration_line(self.state.iterations, self.training.iterations, self.training.selection_metric,
                                   self.state.best.score if self.state.best else None,
                                   speedup_so_far(self.state, self.training), self.state.original_throughput))

    def _applied_mode(self) -> str | None:
        """The performance mode a hook put in force, if any (the update recorder writes it down)."""
        return next((mode for hook in self.update_hooks if (mode := hook.applied_mode())), None)

    def _recover_from_out_of_memory(self, iteration: int, error: BaseException) -> bool:
        """Let the hooks shrink the work (performance -> quiet); False if none could."""
        recovered = [hook for hook in self.update_hooks if hook.recover_from_out_of_memory()]
        if not recovered:
            return False
        checkpoint = self.checkpoints.latest(iteration)
        where = f"its checkpoint at {checkpoint.timesteps:,} timesteps" if checkpoint else "its start"
        logger.warning("Out of memory in performance mode (%s): falling back to quiet mode; iteration %d "
                       "resumes from %s", str(error).splitlines()[0][:120], iteration + 1, where)
        # validations after the checkpoint are lost with the model; the tracker goes back with it
        self.tracker = ConvergenceTracker.from_dict(self.state.tracker, *self._stopping_rule())
        self._reconcile_with_best()
        return True

    def _start_or_resume(self, iteration: int, seed: int, budget: int,
                         phase: str) -> tuple[Any, _IterationProgress]:
        """The model to train and its progress: a checkpoint, a warm start, or a fresh model."""
        checkpoint = self.checkpoints.latest(iteration)
        if checkpoint is not None:
            saved = checkpoint.state
            # a resumed segment gets its own seed: repeating the lost segment's exploration helps nobody
            model = load_for_training(checkpoint.model_path, self.env, seed + checkpoint.timesteps,
                                      self.switches.fast_engine)
            self.tracker = ConvergenceTracker.from_dict(saved.tracker, *self._stopping_rule())
            self._reconcile_with_best()
            progress = _IterationProgress(iteration, seed, budget, saved.warm_started, phase,
                                          last_validation_at=saved.last_validation_at,
                                          last_checkpoint_at=checkpoint.timesteps,
                                          evaluations=saved.evaluations, evaluation_seconds=saved.evaluation_seconds,
                                          history=list(saved.validations), resumed_at=checkpoint.timesteps,
                                          elapsed_before=saved.wall_seconds)
            logger.info("Iteration %d resumes from its checkpoint at %s timesteps", iteration + 1,
                        f"{checkpoint.timesteps:,}")
            return model, progress
        warm = self.switches.warm_start and iteration > 0 and self.state.best is not None
        start_from = self.paths.best_model if warm else self.initial_model if iteration == 0 else None
        if start_from is not None:
            if not start_from.is_file():
                raise UserInputError(f"{start_from}: the model to start from is missing; train it first")
            model = load_for_training(start_from, self.env, seed, self.switches.fast_engine)
        else:
            model = build_model(self.env, self.training, hyperparameters_for(iteration, self.training,
                                self.switches.progressive_training), seed, self.switches.fast_engine)
        return model, _IterationProgress(iteration, seed, budget, start_from is not None, phase)

    def _load_best_record(self) -> None:
        """``best_model.json`` is written right after each new best and is the authority on it.

        If a kill fell between writing the zip and its record, the hashes disagree: the
        zip on disk is then re-scored, so the record always describes the file.
        """
        if not self.paths.best_model.is_file():
            self.state.best = None
            return
        best_state = self.paths.best_state
        saved = json.loads(best_state.read_text(encoding="utf-8")) if best_state.is_file() else {}
        digest = sha256_of(self.paths.best_model)
        if saved.get("model_sha256") != digest:
            logger.warning("%s does not match its record; re-scoring it on validation", self.paths.best_model)
            result = self.validator(load_for_training(self.paths.best_model, self.env, self.training.seed))
            saved = {**saved, "score": result.score, "metric": self.training.selection_metric,
                     "model_sha256": digest, "validation_metrics": result.metrics}
            write_json(self.paths.best_state, saved)
        self.state.best = BestModel.model_validate(saved)

    def _reconcile_with_best(self) -> None:
        """A kill between saving a new best model and the next checkpoint leaves the tracker
        behind the best model's score; the best model's own record wins."""
        if self.state.best is not None:
            self.tracker.best_score = max(self.tracker.best_score, self.state.best.score)

    # -- between updates -------------------------------------------------------------------

    def _at_update_boundary(self, model: Any, progress: _IterationProgress, done: int) -> bool:
        """Validate and checkpoint when due; return False to stop a converged iteration."""
        keep_going = True
        if self.switches.early_stopping and done - progress.last_validation_at >= self.training.eval_freq:
            self._validate(model, progress, done)
            if self.tracker.converged:
                progress.stopped_at = done
                keep_going = False
                logger.info("  early stop at %s timesteps: no %s gain above %g in %d validations",
                            f"{done:,}", self.training.selection_metric, self.training.convergence_threshold,
                            self.tracker.patience)
        if keep_going and (done - progress.last_checkpoint_at >= self.training.checkpoint_freq
                           or progress.last_validation_at == done):
            self._checkpoint(model, progress, done)
            maybe_inject_fault(self.paths.root, progress.iteration)
        return keep_going

    def _validate(self, model: Any, progress: _IterationProgress, done: int) -> None:
        result = self.validator(model)
        progress.last_result, progress.last_validation_at = result, done
        progress.evaluations += 1
        progress.evaluation_seconds += result.seconds
        improved = self.tracker.update(result.score)
        if improved:
            self._save_best(model, progress, done, result)
        progress.history.append(Validation(timesteps=done, score=result.score, new_best=improved,
                                           total_return=result.metrics.get("total_return"),
                                           wall_seconds=round(progress.wall_seconds, 3)))
        logger.info("  validation at %s timesteps: %s %.3f (best %.3f%s)", f"{done:,}",
                    self.training.selection_metric, result.score, self.tracker.best_score,
                    ", new best" if improved else
                    f", {self.tracker.evaluations_without_improvement} without gain, patience {self.tracker.patience}"
                    if self.tracker.patience else "")
        if self.validation_hooks:
            looks = sum(record.evaluations for record in self.state.iterations) + progress.evaluations - 1
            trained = sum(record.timesteps for record in self.state.iterations) + done
            for hook in self.validation_hooks:
                hook(looks, self.tracker.best_score, model, trained)

    def _save_best(self, model: Any, progress: _IterationProgress, done: int, result: ValidationResult) -> None:
        digest = save_model_atomically(model, self.paths.best_model)
        self.state.best = BestModel(iteration=progress.iteration, timesteps=done, score=result.score,
                                    metric=self.training.selection_metric, model_sha256=digest,
                                    validation_metrics=result.metrics)
        write_json(self.paths.best_state, self.state.best.to_json())

    def _checkpoint(self, model: Any, progress: _IterationProgress, done: int) -> None:
        progress.last_checkpoint_at = done
        self.checkpoints.save(model, progress.iteration, CheckpointState(
            timesteps_done=done, budget_timesteps=progress.budget, seed=progress.seed, phase=progress.phase,
            warm_started=progress.warm_started, tracker=self.tracker.to_dict(),
            last_validation_at=progress.last_validation_at, evaluations=progress.evaluations,
            evaluation_seconds=progress.evaluation_seconds, validations=progress.history,
            wall_seconds=progress.wall_seconds))

    # -- the end ---------------------------------------------------------------------------

    def finish(self) -> RunSummary:
        """Score the best model on validation and, once, on test; write the report and the summary."""
        if self.state.next_iteration < self.training.iterations:
            raise UserInputError(f"{self.paths.root}: {self.state.next_iteration} of {self.training.iterations} "
                                 "iterations trained; train the rest before the final report")
        if self.state.best is None:
            raise UserInputError(f"{self.paths.root}: no model was kept; nothing to report")
        started = time.perf_counter()
        reports = self._score_best_model()
        for split, report in reports.items():
            write_report(report, self.paths.report / split)
        scores = {split: SplitOutcome(agent=report.metrics["agent"], buy_and_hold=report.metrics["buy_and_hold"],
                                      oracle=report.metrics.get("oracle"))
                  for split, report in reports.items()}
        report_seconds = time.perf_counter() - started
        self.state.completed = True
        self.state.save(self.paths.state)
        summary = build_summary(self.state, self.config, scores, report_seconds, self.paths.best_model,
                                self.paths.report / "report.md", reports[TEST].info.get("account"))
        write_json(self.paths.summary, summary.to_json())
        trust = self._write_bundle(summary, reports)
        write_text(self.paths.report / "report.md", run_report(self.method, self.training.seed, self.state.best,
                                                                  reports, count_trials(self.state.iterations))
                   + trust_markdown(trust))
        return summary

    def _write_bundle(self, summary: RunSummary, reports: dict[str, EvaluationReport]) -> dict[str, Any]:
        """The best model as a self-contained bundle (``bundle/``): what using it needs, nothing else, and the
        trust report that judges it (:mod:`rltrader.training.trust`); returns the trust report."""
        assert self.prepared is not None  # open() sets it
        figures = {"validation": summary.validation.model_dump(mode="json"),
                   "test": summary.test.model_dump(mode="json")}
        description = describe(self.config, self.prepared, self.data_path, self.paths.best_model, figures, self.method)
        trust: dict[str, Any] = {"test": split_figures(reports[TEST]), "selection": selection_figures(
            reports["validation"])}
        if self.trust_checks:
            write_bundle(self.paths.bundle, self.paths.best_model, description)  # parity streams the bundle itself
            trust.update(self._trust_checks(reports))
        description = description.model_copy(update={"trust": trust})
        write_bundle(self.paths.bundle, self.paths.best_model, description)
        return trust

    def _trust_checks(self, reports: dict[str, EvaluationReport]) -> dict[str, Any]:
        """Cost stress, the live stream's parity, and what a study or a CPCV beside the run says of it."""
        assert self.prepared is not None
        model = load_for_training(self.paths.best_model, self.env, self.training.seed)
        evaluator = "fast" if self.switches.fast_evaluation else "reference"
        checks: dict[str, Any] = {
            "cost_stress": cost_stress(model, self.prepared, self.config, self.data_path, self.training.seed,
                                       evaluator),
            "parity": stream_parity(read_bundle(self.paths.bundle), self.data_path, self.market, reports[TEST])}
        if checks["parity"].get("action_mismatches"):
            logger.warning("The live stream disagrees with the backtest on %d of %d test bars (first at %s): "
                           "please report this", checks["parity"]["action_mismatches"], checks["parity"]["bars"],
                           checks["parity"]["first_mismatch"])
        if self.study_dir is not None:
            checks["study"] = study_figures(Path(self.study_dir))
        cpcv = cpcv_figures(self.paths.root.parent, str(self.prepared.metadata["source"]["sha256"]), self.config_file)
        if cpcv is not None:
            checks["cpcv"] = cpcv
        return checks

    def _score_best_model(self) -> dict[str, EvaluationReport]:
        """The best model on validation (deflated by every look the run took) and, once, on the test split."""
        evaluator = "fast" if self.switches.fast_evaluation else "reference"
        model = load_for_training(self.paths.best_model, self.env, self.training.seed)
        trials = {"validation": count_trials(self.state.iterations), TEST: None}
        return {split: evaluate_model(model, self.market, split, self.config.env, seed=self.training.seed,
                                      evaluator=evaluator, trials=looks)
                for split, looks in trials.items()}
