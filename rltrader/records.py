"""Typed records of a training run: what each step writes and every reader reads.

The trainer writes them as JSON (``iterations/iter_XX/metrics.json``, ``best_model.json``,
checkpoint sidecars, ``optimization_summary.json``, ``comparison.json``, and inside
``run_state.json``, whose own model is :class:`rltrader.training.run_state.RunState`), the
flow passes them between tasks and processes, and the terminal, the report and the
Prefect artifacts display them (:mod:`rltrader.display`). One model per record means one
spelling of every field; the JSON keys are the ones earlier versions wrote, so their
files still load.

For scripts written when these were plain dicts, a record can still be read by key
(``summary["test"]``); new code uses the attributes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

Metrics = dict[str, Any]
"""One policy's metrics on one split (``rltrader.evaluation.metrics.compute_metrics``), by name."""


class Record(BaseModel):
    """A JSON record with typed fields; unknown keys are refused (a misspelt field is a bug)."""

    model_config = ConfigDict(extra="forbid")

    def __getitem__(self, key: str) -> Any:
        """Read a field by name, as the dicts these records replace were read (scripts, notebooks)."""
        if key not in type(self).model_fields:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in type(self).model_fields else default

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``json.dumps`` (floats stay floats: an infinite score stays infinite)."""
        return self.model_dump()


class Hyperparameters(Record):
    """The phase-dependent hyperparameters in force for one iteration (``rltrader.training.phases``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phase: str
    learning_rate: float
    n_epochs: int
    ent_coef: float
    clip_range: float


class Validation(Record):
    """One validation inside an iteration."""

    timesteps: int
    score: float
    new_best: bool
    total_return: float | None = None  # the look's validation return (edge captured on known-answer markets)
    wall_seconds: float | None = None  # time into the iteration when the look was taken (time-to-quality)


class CandidateEntry(Record):
    """One parallel candidate of an iteration, as the adopted record lists them."""

    candidate: int
    seed: int
    peak_score: float
    timesteps: int
    wall_seconds: float
    evaluations: int = 0  # validation looks the candidate took (trials of the run)


class IterationSummary(Record):
    """An iteration as the run's summary lists it (:class:`IterationRecord` holds the rest)."""

    iteration: int
    phase: str
    seed: int
    budget_timesteps: int
    timesteps: int
    timesteps_saved: int
    early_stopped: bool
    warm_started: bool
    validation_score: float | None
    wall_seconds: float
    timesteps_per_second: float | None


class IterationRecord(IterationSummary):
    """A finished iteration: ``run_state.json``'s ``iterations`` and ``iterations/iter_XX/metrics.json``."""

    hyperparameters: Hyperparameters
    evaluations: int
    evaluation_seconds: float
    validation_metrics: Metrics | None
    best_score_after: float | None
    resumed_at: int
    performance_modes: list[str]
    validations: list[Validation]
    candidate: int | None = None  # with parallel candidates: the adopted one
    candidates: list[CandidateEntry] | None = None
    candidates_timesteps_total: int | None = None


class CandidateResult(IterationRecord):
    """A candidate's iteration record as its task returns it, with where its fork lives."""

    candidate_dir: str
    peak_score: float  # the best validation score the candidate reached


class BestModel(Record):
    """``best_model.json``: which model is best and what it scored, with the hash of the zip it describes."""

    iteration: int | None = None
    timesteps: int | None = None
    score: float
    metric: str
    model_sha256: str
    validation_metrics: Metrics | None = None


class CheckpointState(Record):
    """A checkpoint's sidecar: where the iteration was when its model was saved."""

    timesteps_done: int
    budget_timesteps: int
    seed: int
    phase: str
    warm_started: bool
    tracker: dict[str, Any]
    last_validation_at: int
    evaluations: int
    evaluation_seconds: float
    validations: list[Validation]
    wall_seconds: float
    iteration: int | None = None
    model_sha256: str | None = None


class SplitOutcome(Record):
    """The best model and buy-and-hold on one split."""

    agent: Metrics
    buy_and_hold: Metrics
    oracle: Metrics | None = None  # on a known-answer market: the policy that knows the planted edge


class BestModelSummary(Record):
    """The summary's view of the best model: its record, less the metrics, plus where the zip is."""

    iteration: int | None = None
    timesteps: int | None = None
    score: float | None = None
    metric: str | None = None
    model_sha256: str | None = None
    path: str


class OriginalThroughput(Record):
    """Stock sb3-contrib's (or SB3's) training cost on this machine and config: what the speedup estimate
    takes the original method to need (:mod:`rltrader.training.calibration`)."""

    timesteps_per_second: float  # steady: a rollout and its update, away from a reset
    first_update_extra_seconds: float  # what a rollout after a reset and its update cost on top (the first timed)
    engine: str  # "stock sb3-contrib RecurrentPPO" or "stock stable-baselines3 PPO"
    timed_timesteps: int  # per rollout; the first after a reset and the median of three more timed
    batch_size: int
    n_epochs: int  # the run's epochs, which the timed update is scaled to
    timed_epochs: int  # the slow update's (every update's, in a calibration before 2026-12-07)
    torch_threads: int
    mode: str | None = None  # the performance mode it ran under, where a hook set one
    machine: str
    calibrated_at: str
    key: str
    n_steps: int | None = None  # steps per account per rollout (a calibration before 2026-12-07: None)
    episode_steps: int | None = None  # steps between the env's resets; None: only each iteration's first counted
    reset_update_extra_seconds: float | None = None  # a later reset's slow update on top; None: as the first

    def reset_rollouts(self, timesteps: int) -> int:
        """How many of one ``learn(timesteps)``'s rollouts hold an episode start: its first, then one per
        ``episode_steps`` (the accounts step and reset together; drawdown resets are not counted)."""
        if not self.n_steps or not self.episode_steps:
            return 1
        steps = math.ceil(timesteps / self.timed_timesteps) * self.n_steps  # per account
        return len({start // self.n_steps for start in range(0, steps, self.episode_steps)})

    def iteration_seconds(self, timesteps: int) -> float:
        """What one ``learn()`` of ``timesteps`` would take the original method, training only: stock
        sb3-contrib's update steps through each sequence that holds an episode start one timestep at a time
        in Python, so every rollout with a reset pays the measured extra, not only the first."""
        later = self.first_update_extra_seconds if self.reset_update_extra_seconds is None \
            else self.reset_update_extra_seconds  # without the first rollout's own set-up
        return (timesteps / self.timesteps_per_second + self.first_update_extra_seconds
                + (self.reset_rollouts(timesteps) - 1) * later)

    def basis(self) -> str:
        """The estimate's basis in words, for the live line, the summary and the artifact."""
        mode = f", {self.mode} mode" if self.mode else ""
        timed = "" if self.timed_epochs == self.n_epochs else (
            f" scaled from {self.timed_epochs}" if self.reset_update_extra_seconds is None  # all scaled, before
            else f", the slow update timed at {self.timed_epochs} and scaled")
        resets = ("each rollout that holds an episode start" if self.episode_steps
                  else "its first update after reset in each iteration")
        return (f"the original method's fixed budget at {self.timesteps_per_second:,.0f} timesteps/s plus "
                f"{self.first_update_extra_seconds:.1f} s for {resets}, "
                f"{self.engine} timed on this machine and config ({self.machine}; batch {self.batch_size}, "
                f"{self.n_epochs} epochs{timed}, {self.torch_threads} threads{mode}); "
                "its validations and drawdown resets not counted")


class RunSummary(Record):
    """``optimization_summary.json``: the run's outcome, its speedup and where its files are."""

    optimization_completed: bool
    method: str
    optimizations: dict[str, bool]
    seed: int
    total_speedup_achieved: float
    speedup_basis: str
    total_timesteps: int
    total_timesteps_saved: int
    early_stops: int
    warm_starts: int
    avg_iteration_time_minutes: float | None
    estimated_time_saved_hours: float
    total_time_seconds: float
    preprocess_seconds: float
    report_seconds: float
    best_model: BestModelSummary
    validation: SplitOutcome
    test: SplitOutcome
    iterations: list[IterationSummary]
    report: str
    trials: int | None = None  # every validation look of every iteration and candidate (the deflated Sharpe's N)
    account: dict[str, Any] | None = None  # currency, instrument, sizing and conversion of the money figures
    original_throughput: OriginalThroughput | None = None  # the estimate's basis (speedup_basis estimated_...)


class MethodFigures(Record):
    """One side of a comparison of two runs (benchmark mode, ``rltrader compare``)."""

    total_time_seconds: float
    iteration_wall_seconds: list[float]
    total_timesteps: int
    early_stops: int
    warm_starts: int
    best_validation_score: float | None
    validation_sharpe: float | None
    test_sharpe: float | None
    test_total_return: float | None
    test_buy_and_hold_sharpe: float | None
    summary: str
    test_sharpe_interval: list[float] | None = None
    test_edge_captured: float | None = None  # on a known-answer market
    validation_looks: int | None = None  # how many looks the kept model was the best of


class Comparison(Record):
    """``comparison.json`` of benchmark mode: both methods on the same data, config and seed."""

    seed: int
    speedup: float
    original: MethodFigures
    optimized: MethodFigures
    timesteps_ratio: float


class SeedPair(Record):
    """One seed of a quality comparison: both methods' figures and the speedup."""

    seed: int
    speedup: float
    original: MethodFigures
    optimized: MethodFigures


class QualityComparison(Record):
    """``rltrader compare`` and benchmark mode: time and quality of original and optimized runs over
    one or more seeds, judged on the test split, which selected neither method's model."""

    speedup: float  # total original time over total optimized time
    quality_metric: str  # the per-seed test figure compared: test Sharpe, or edge captured on known-answer markets
    differences: list[float]  # optimized - original, per seed
    mean_difference: float | None
    difference_interval: list[float] | None  # 90% Student t interval of the mean; None for one seed
    quality_tolerance: float  # held when the interval's lower end is above -tolerance
    quality_held: bool
    selection_metric: str | None
    pairs: list[SeedPair]


class LookPoint(Record):
    """The best validation score a run had reached after this many timesteps and seconds."""

    timesteps: int
    seconds: float
    best_score: float


class FoldOutcome(Record):
    """A finished fold x seed: its test figures (the fold's best model, seen by test once) and its cost.

    For a CPCV split, ``fold`` is the split's number, the figures are over its test groups together,
    and ``groups`` holds each group's figures and equity file."""

    fold: int
    seed: int
    run_dir: str
    warm_started_from: str | None
    test_start: str
    test_end: str
    test_bars: int
    agent: dict[str, Any]
    buy_and_hold: dict[str, Any]
    oracle: dict[str, Any] | None
    edge_captured: float | None
    best_validation: float | None
    looks: int
    timesteps: int
    seconds: float
    curve: list[LookPoint]  # best validation so far at each look: "how long to reach a score"
    groups: list[dict[str, Any]] | None = None  # a CPCV split's test groups, each scored on its own

    @property
    def equity_path(self) -> Path:
        return Path(self.run_dir) / "report" / "test" / "equity.parquet"


class WalkForwardSummary(Record):
    """A finished walk-forward (``summary.json``): the aggregate, the fold table, where the files are.

    :param name: the walk-forward's name
    :param planned_runs: folds x seeds
    :param account: the account terms every fold traded on
    :param aggregate: the stitched figures (``rltrader.walkforward.report.aggregate``)
    :param warm_start: warm-started folds against the cold first fold, when folds were warm-started
    :param fold_table: one row per fold and seed, as displayed
    :param files: the stitched equity, its picture and ``folds.json``
    :param root: the walk-forward's directory
    """

    name: str
    planned_runs: int
    account: dict[str, Any] | None = None
    aggregate: dict[str, Any]
    warm_start: dict[str, Any] | None = None
    fold_table: list[dict[str, Any]]
    files: dict[str, str]
    root: str | None = None

class ResumePoint(BaseModel):
    """What a run directory holds of earlier work, before a command goes on with it.

    :param run_dir: the run's directory
    :param finished_iterations: iterations trained and recorded
    :param checkpoint_timesteps: timesteps of the next iteration's newest intact checkpoint (None: none)
    :param finished: the run completed (its summary is written): only its report is redone
    """

    model_config = ConfigDict(frozen=True)

    run_dir: Path
    finished_iterations: int
    checkpoint_timesteps: int | None
    finished: bool


__all__ = [
    "ResumePoint",
    "BestModel",
    "BestModelSummary",
    "CandidateEntry",
    "CandidateResult",
    "CheckpointState",
    "FoldOutcome",
    "Comparison",
    "Hyperparameters",
    "IterationRecord",
    "LookPoint",
    "IterationSummary",
    "MethodFigures",
    "Metrics",
    "OriginalThroughput",
    "QualityComparison",
    "Record",
    "RunSummary",
    "SeedPair",
    "SplitOutcome",
    "Validation",
    "WalkForwardSummary",
]
