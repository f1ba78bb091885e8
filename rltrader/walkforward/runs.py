"""One fold x seed of a walk-forward: an ordinary training run on the fold's data, in its own directory.

Each run is the real trainer with every optimization, resumable and retried like any run:
its directory (``<walk-forward>/fold_02/seed_42/``) holds checkpoints, the run state and
its summary. A finished run is read back, never trained again, so a killed walk-forward
resumes where it stopped. With warm-started folds, fold k+1 begins from fold k's best
model of the same seed (``Trainer(initial_model=...)``).

Everything a worker needs arrives as plain data (:class:`FoldRunSpec`) and it returns
plain data (:class:`FoldOutcome`): the flow's task runner may put it in another process,
or on a Dask worker on another machine.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from rltrader.atomic import write_json
from rltrader.config import Config, parse_config
from rltrader.errors import UserInputError
from rltrader.features.preparation import PreparedData
from rltrader.records import RunSummary
from rltrader.training.run_state import RunState
from rltrader.training.summary import load_summary
from rltrader.training.trainer import Trainer

logger = logging.getLogger(__name__)

PLAN_FILE = "plan.json"


def fold_run_dir(root: Path, fold: int, seed: int) -> Path:
    return Path(root) / f"fold_{fold:02d}" / f"seed_{seed}"


class FoldRunSpec(BaseModel):
    """What a worker needs to train fold ``fold`` with ``seed`` (JSON-safe, for any task runner)."""

    fold: int
    seed: int
    config: dict[str, Any]  # the run's full config, as model_dump(mode="json")
    data_path: str
    prepared: dict[str, Any]  # the fold's PreparedData.to_dict()
    run_dir: str
    initial_model: str | None = None  # the previous fold's best model (warm-started folds)


class LookPoint(BaseModel):
    """The best validation score a run had reached after this many timesteps and seconds."""

    timesteps: int
    seconds: float
    best_score: float


class FoldOutcome(BaseModel):
    """A finished fold x seed: its test figures (the fold's best model, seen by test once) and its cost."""

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

    @property
    def equity_path(self) -> Path:
        return Path(self.run_dir) / "report" / "test" / "equity.parquet"


_TEST_FIGURES = ("total_return", "sharpe", "sharpe_se", "sharpe_interval", "max_drawdown", "trades", "exposure",
                 "costs_paid", "null_percentile", "edge_captured")


def _figures(metrics: dict[str, Any]) -> dict[str, Any]:
    return {key: metrics.get(key) for key in _TEST_FIGURES if key in metrics}


def validation_curve(state: RunState) -> list[LookPoint]:
    """Every validation look of the run in order, with the run's timesteps and seconds so far."""
    points, timesteps, seconds, best = [], 0, 0.0, float("-inf")
    for record in state.iterations:
        for look in record.validations:
            best = max(best, look.score)
            points.append(LookPoint(timesteps=timesteps + look.timesteps, seconds=round(seconds + look.wall_seconds, 3),
                                    best_score=best))
        timesteps += record.timesteps
        seconds += record.wall_seconds
    return points


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
    state = RunState.read(run_dir / "run_state.json")
    if state is None or not state.completed or not (run_dir / "optimization_summary.json").is_file():
        return None
    return outcome_of(spec, state, load_summary(run_dir))


def run_fold(spec: FoldRunSpec, update_hooks: Sequence[Any] = ()) -> FoldOutcome:
    """Train (or resume) fold ``spec.fold`` with ``spec.seed``, score its best model on its test window."""
    done = finished_outcome(spec)
    if done is not None:
        return done
    config = parse_config(spec.config, source=f"fold {spec.fold + 1} seed {spec.seed}")
    trainer = Trainer(config, spec.data_path, spec.run_dir, update_hooks=update_hooks,
                      initial_model=spec.initial_model)
    trainer.open(PreparedData.from_dict(spec.prepared), log_resume=False)
    for iteration in range(trainer.state.next_iteration, config.training.iterations):
        trainer.train_iteration(iteration)
    summary = trainer.finish()
    return outcome_of(spec, trainer.state, summary)


def walk_plan(config: Config, folds: list[dict[str, Any]], data_sha256: str) -> dict[str, Any]:
    """What a walk-forward's results directory belongs to: the data, the folds, how they train."""
    walk = config.walk_forward
    return {"data_sha256": data_sha256, "folds": folds, "scheme": walk.scheme,
            "warm_start_folds": walk.warm_start_folds, "seeds": list(walk.seeds)}


def check_plan(root: Path, plan: dict[str, Any]) -> None:
    """Write the walk-forward's plan, or refuse to resume one planned differently (it would mix two experiments)."""
    path = Path(root) / PLAN_FILE
    if path.is_file():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            raise UserInputError(f"{path}: unreadable; move {root} away or pass another --name") from None
        for key in sorted(set(saved) | set(plan)):
            if key != "seeds" and saved.get(key) != plan.get(key):
                raise UserInputError(f"{root}: holds a walk-forward with other {key.replace('_', ' ')} "
                                     f"({saved.get(key)!r}, now {plan.get(key)!r}); re-run with the same settings "
                                     "to resume, or pass another --name")
        plan = {**plan, "seeds": sorted(set(saved.get("seeds", [])) | set(plan["seeds"]))}
    write_json(path, plan)


__all__ = ["FoldOutcome", "FoldRunSpec", "LookPoint", "check_plan", "finished_outcome", "fold_run_dir", "run_fold",
           "validation_curve", "walk_plan"]
