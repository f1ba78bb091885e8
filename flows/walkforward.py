"""``rltrader walkforward`` as a Prefect flow: retrain on a moving window, trade the next unseen period, repeat.

It reads as the analysis runs: plan the folds and prepare their data (features once per
file, normalization per fold) -> train every fold x seed on the task runner (a process
pool here, ``DaskTaskRunner(address=)`` on a cluster; warm-started folds wait for the
previous fold of their seed) -> after each run, a progress line and the fold table and
aggregate in the UI -> stitch the test windows into one out-of-sample equity curve and
write the results. Runs finished before are read back, so a killed walk-forward resumes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.futures import wait
from prefect.runtime import flow_run as current_flow_run

from flows.train import candidate_runner, workers_reporting_here
from rltrader.app.requests import WalkForwardRequest
from rltrader.config import Config
from rltrader.display.formatting import minutes, number, percent
from rltrader.env.account import account_terms
from rltrader.errors import UserInputError
from rltrader.runtime.performance_mode import parse_settings
from rltrader.runtime.run_lock import run_directory_lock
from rltrader.walkforward.report import aggregate, aggregate_markdown, fold_rows, stitched_returns, warm_start_savings
from rltrader.walkforward.report import write_results as write_walk_forward
from rltrader.walkforward.runs import (
    FoldOutcome,
    FoldRunSpec,
    check_plan,
    finished_outcome,
    fold_run_dir,
    walk_plan,
)
from rltrader.walkforward.schedule import FoldQueue
from tasks.walkforward import prepare_folds_task, train_fold_task


def _flow_run_name() -> str:
    try:
        request = WalkForwardRequest.model_validate(current_flow_run.parameters.get("request") or {})
    except ValueError:
        return "walk-forward (invalid request)"
    return f"walk-forward {request.walk_name}"


def artifact_key(name: str) -> str:
    """Prefect keys allow lowercase letters, digits and dashes only."""
    return "walkforward-" + "".join(char if char.isalnum() else "-" for char in name.lower())


def _specs(request: WalkForwardRequest, base: Config, prepared: list[dict[str, Any]]) -> dict[tuple[int, int],
                                                                                               FoldRunSpec]:
    root, walk = request.root.resolve(), base.walk_forward
    specs = {}
    for fold, fold_data in enumerate(prepared):
        for seed in walk.seeds:
            previous = fold_run_dir(root, fold - 1, seed) / "best_model.zip"
            specs[fold, seed] = FoldRunSpec(
                fold=fold, seed=seed, config=request.run_config(base, seed).model_dump(mode="json"),
                data_path=request.data_path, prepared=fold_data, run_dir=str(fold_run_dir(root, fold, seed)),
                initial_model=str(previous) if walk.warm_start_folds and fold > 0 else None)
    return specs


def _workers_now(base: Config, settings_file: Path) -> int:
    """``walk_forward.parallel`` in performance mode; quiet mode keeps one run going (the machine stays usable)."""
    return base.walk_forward.parallel if parse_settings(settings_file).mode == "performance" else 1


def _fold_line(outcome: FoldOutcome, queue: FoldQueue, folds: int, workers: int) -> str:
    eta = queue.eta_seconds(workers)
    agent, hold = outcome.agent, outcome.buy_and_hold
    return (f"Fold {outcome.fold + 1}/{folds} seed {outcome.seed} ({outcome.test_start[:10]} to "
            f"{outcome.test_end[:10]}): test Sharpe {number(agent['sharpe'], 2)} vs buy-and-hold "
            f"{number(hold['sharpe'], 2)}, return {percent(agent['total_return'])} vs {percent(hold['total_return'])}; "
            f"{outcome.timesteps:,} timesteps in {outcome.seconds:.0f} s. {len(queue.finished)} of {queue.planned} "
            f"runs done" + ("" if queue.done or eta is None else f", ETA {minutes(eta)}"))


def publish(name: str, queue: FoldQueue, bars_per_year: float) -> None:
    """The fold table and the aggregate so far, as the UI's artifacts of this walk-forward."""
    key = artifact_key(name)
    outcomes = list(queue.finished.values())
    create_table_artifact(fold_rows(outcomes), key=f"{key}-folds", description=f"Folds of walk-forward {name}")
    returns = stitched_returns(outcomes)
    if len(returns) > 2:
        figures = aggregate(outcomes, returns, bars_per_year)
        create_markdown_artifact(aggregate_markdown(name, figures, queue.planned, warm_start_savings(outcomes)),
                                 key=f"{key}-summary", description=f"Walk-forward {name}: the aggregate")


def train_runs(queue: FoldQueue, request: WalkForwardRequest, base: Config, settings_file: Path, n_folds: int,
               bars_per_year: float, fold_console_level: int) -> None:
    """Keep as many runs training as the performance mode allows, starting each as soon as it may
    (warm folds after their previous fold), until every run in ``queue`` has finished."""
    if queue.done:
        return  # everything was read back: no workers to start
    logger = get_run_logger()
    walk = base.walk_forward
    runner = candidate_runner(walk.parallel, request.dask_address)
    fold_task = train_fold_task.with_options(retries=base.orchestration.retries,
                                             retry_delay_seconds=base.orchestration.retry_delay_seconds)
    in_flight: dict[tuple[int, int], Any] = {}
    with workers_reporting_here(runner):
        while not queue.done:
            workers = _workers_now(base, settings_file)
            for key in queue.ready()[:max(0, workers - len(in_flight))]:
                in_flight[key] = runner.submit(fold_task, {"spec": queue.start(key).model_dump(),
                                                           "settings_file": str(settings_file),
                                                           "workers": walk.parallel,
                                                           "console_level": fold_console_level})
            if not in_flight:
                raise UserInputError(f"{request.root}: no fold can start (a warm-started fold's previous fold "
                                     "is missing)")
            finished = wait(list(in_flight.values()), timeout=2).done
            for key in [key for key, future in in_flight.items() if future in finished]:
                outcome = FoldOutcome.model_validate(in_flight.pop(key).result())  # a failed run fails the flow
                queue.finish(key, outcome)
                logger.info(_fold_line(outcome, queue, n_folds, workers))
                publish(request.walk_name, queue, bars_per_year)


@flow(name="walk-forward", flow_run_name=_flow_run_name, validate_parameters=True)
def walk_forward(request: WalkForwardRequest = WalkForwardRequest(),
                 fold_console_level: int = logging.INFO) -> dict[str, Any]:
    """Train and test every fold x seed, then stitch the test windows into one out-of-sample curve.

    ``fold_console_level``: what the runs' worker processes print (``rltrader walkforward``
    passes WARNING unless --verbose; the UI gets every log line either way)."""
    base = request.to_config(source="walk-forward request")
    planned = prepare_folds_task(request.data_path, base.model_dump(mode="json"))
    with run_directory_lock(request.root, "pass another --name"):  # one command per walk-forward directory
        return _walk(request, base, planned, fold_console_level)


def _walk(request: WalkForwardRequest, base: Config, planned: dict[str, Any],
          fold_console_level: int) -> dict[str, Any]:
    """Check the plan, train what is not trained yet, stitch and write: under the directory's lock."""
    logger = get_run_logger()
    walk, root = base.walk_forward, request.root
    check_plan(root, walk_plan(base, planned["folds"], planned["prepared"][0]["metadata"]["source"]["sha256"]))
    queue = FoldQueue(_specs(request, base, planned["prepared"]), walk.warm_start_folds)
    bars_per_year = float(planned["prepared"][0]["metadata"]["bars"]["bars_per_year"])
    n_folds = len(planned["folds"])
    for key, spec in queue.specs.items():
        if (outcome := finished_outcome(spec)) is not None:
            queue.finish(key, outcome, trained_here=False)
    settings_file = Path(request.settings_file or base.performance_mode.settings_file)
    logger.info("Walk-forward %s in %s: %d folds x %d seeds (%s%s); %d at once in performance mode, 1 in quiet "
                "mode (now %s, from %s)%s", request.walk_name, root, n_folds, len(walk.seeds), walk.scheme,
                ", warm-started folds" if walk.warm_start_folds else "", walk.parallel,
                parse_settings(settings_file).mode, settings_file,
                f"; resuming, {len(queue.finished)} runs already done" if queue.finished else "")
    if queue.finished:
        publish(request.walk_name, queue, bars_per_year)
    train_runs(queue, request, base, settings_file, n_folds, bars_per_year, fold_console_level)
    summary = write_walk_forward(root, request.walk_name, list(queue.finished.values()), bars_per_year,
                                 base.env.initial_balance, queue.planned,
                                 account_terms(base, request.data_path).to_json())
    logger.info("Walk-forward %s done: stitched Sharpe %s; results in %s", request.walk_name,
                number(summary["aggregate"]["stitched_sharpe"], 2), root)
    return {**summary, "root": str(root)}
