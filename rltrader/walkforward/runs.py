"""One fold x seed of a walk-forward: an ordinary training run on the fold's data, in its own directory.

Each run is the real trainer with every optimization, resumable and retried like any run:
its directory (``<walk-forward>/fold_02/seed_42/``) holds checkpoints, the run state and
its summary. A finished run is read back, never trained again, so a killed walk-forward
resumes where it stopped. With warm-started folds, fold k+1 begins from fold k's best
model of the same seed (the run spec's ``initial_model``).

Everything a worker needs arrives as a typed value (:class:`FoldRunSpec`, which holds the
run's :class:`~rltrader.training.spec.RunSpec`) and it returns one (:class:`FoldOutcome`):
the flow's task runner may put it in another process, or on a Dask worker on another machine.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from rltrader.atomic import write_json
from rltrader.config import FOLD_PROFILE_OF_OLD_PLANS, Config
from rltrader.errors import UserInputError
from rltrader.records import FoldOutcome, RunSummary
from rltrader.training.run_state import RunState
from rltrader.training.spec import RunSpec
from rltrader.training.summary import load_summary
from rltrader.training.trainer import Trainer
from rltrader.walkforward.cpcv_runs import finished_split, run_cpcv_split
from rltrader.walkforward.looks import validation_curve

logger = logging.getLogger(__name__)

PLAN_FILE = "plan.json"


def fold_run_dir(root: Path, fold: int, seed: int, unit: str = "fold") -> Path:
    """``<walk-forward>/fold_02/seed_42`` (a CPCV split: ``split_02``)."""
    return Path(root) / f"{unit}_{fold:02d}" / f"seed_{seed}"


class FoldRunSpec(BaseModel):
    """What a worker needs to train fold ``fold`` with ``seed``: the fold's place and its run.

    :param fold: the fold's number (0-based)
    :param seed: the run's seed (also ``run.config.training.seed``)
    :param run: the training run itself, on the fold's prepared data, in the fold's directory,
        warm-started from the previous fold's best model when folds are warm-started
    :param test_groups: a CPCV split's test groups, ``(group, start, stop)`` rows of its prepared data,
        each scored on its own (:mod:`rltrader.walkforward.cpcv_runs`); None for a fold (one test window)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    fold: int
    seed: int
    run: RunSpec
    test_groups: list[tuple[int, int, int]] | None = None

    @property
    def run_dir(self) -> str:
        return self.run.run_dir

    @property
    def initial_model(self) -> str | None:
        return self.run.initial_model


_TEST_FIGURES = ("total_return", "sharpe", "sharpe_se", "sharpe_interval", "max_drawdown", "trades", "exposure",
                 "costs_paid", "null_percentile", "edge_captured")


def _figures(metrics: dict[str, Any]) -> dict[str, Any]:
    return {key: metrics.get(key) for key in _TEST_FIGURES if key in metrics}


def outcome_of(spec: FoldRunSpec, state: RunState, summary: RunSummary) -> FoldOutcome:
    metrics = json.loads((Path(spec.run_dir) / "report" / "test" / "metrics.json").read_text(encoding="utf-8"))
    test = summary.test
    return FoldOutcome(
        fold=spec.fold, seed=spec.seed, run_dir=spec.run_dir, warm_started_from=spec.initial_model,
        test_start=str(metrics["start"]), test_end=str(metrics["end"]), test_bars=int(metrics["bars"]),
        agent=_figures(dict(test.agent)), buy_and_hold=_figures(dict(test.buy_and_hold)),
        oracle=_figures(dict(test.oracle)) if test.oracle is not None else None,
        edge_captured=dict(test.agent).get("edge_captured"), best_validation=summary.best_model.score,
        looks=summary.trials or 0, timesteps=summary.total_timesteps, seconds=summary.total_time_seconds,
        curve=validation_curve(state))


def finished_outcome(spec: FoldRunSpec) -> FoldOutcome | None:
    """The outcome of a run that finished before (a resumed walk-forward skips it), else None."""
    run_dir = Path(spec.run_dir)
    if spec.test_groups is not None:
        return finished_split(run_dir)
    state = RunState.read(run_dir / "run_state.json")
    if state is None or not state.completed or not (run_dir / "optimization_summary.json").is_file():
        return None
    return outcome_of(spec, state, load_summary(run_dir))


def run_fold(spec: FoldRunSpec) -> FoldOutcome:
    """Train (or resume) fold ``spec.fold`` with ``spec.seed``, score its best model on its test window."""
    done = finished_outcome(spec)
    if done is not None:
        return done
    trainer = Trainer.from_spec(spec.run)
    if spec.test_groups is not None:
        return run_cpcv_split(spec.fold, spec.seed, trainer, spec.test_groups)
    summary = trainer.run()
    return outcome_of(spec, trainer.state, summary)


def walk_plan(config: Config, folds: list[dict[str, Any]], data_sha256: str,
              config_file: str | None = None) -> dict[str, Any]:
    """What a walk-forward's results directory belongs to: the data, the folds, how they train (their profile: folds
    of two budgets would be two experiments in one table; a CPCV also names its config file: a model trained with
    the same file beside it carries the CPCV in its trust report)."""
    walk = config.walk_forward
    plan = {"data_sha256": data_sha256, "folds": folds, "scheme": walk.scheme,
            "warm_start_folds": walk.warm_start_folds, "seeds": list(walk.seeds), "profile": walk.profile or "none"}
    return {**plan, "config_file": config_file} if walk.scheme == "cpcv" else plan


def check_plan(root: Path, plan: dict[str, Any]) -> None:
    """Write the walk-forward's plan, or refuse to resume one planned differently (it would mix two experiments)."""
    path = Path(root) / PLAN_FILE
    if path.is_file():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            raise UserInputError(f"{path}: unreadable; move {root} away or pass another --name") from None
        saved.setdefault("profile", FOLD_PROFILE_OF_OLD_PLANS)
        for key in sorted(set(saved) | set(plan)):
            if key != "seeds" and saved.get(key) != plan.get(key):
                raise UserInputError(f"{root}: holds a walk-forward with other {key.replace('_', ' ')} "
                                     f"({saved.get(key)!r}, now {plan.get(key)!r}); re-run with the same settings "
                                     "to resume, or pass another --name")
        plan = {**plan, "seeds": sorted(set(saved.get("seeds", [])) | set(plan["seeds"]))}
    write_json(path, plan)


__all__ = ["FoldRunSpec", "check_plan", "finished_outcome", "fold_run_dir", "run_fold",
           "validation_curve", "walk_plan"]
