"""``rltrader walkforward`` as a Prefect flow: retrain on a moving window, trade the next unseen period, repeat.

The flow body is the analysis's steps: prepare the folds (features once per file,
normalization per fold) -> plan the runs (the plan checked against the directory's, runs
finished before read back) -> train the rest in a subflow on a worker pool (a process pool
here, ``DaskTaskRunner(address=)`` on a cluster; warm-started folds wait for the previous
fold of their seed), with a progress line and the fold table and aggregate in the UI after
each run -> stitch the test windows into one out-of-sample equity curve and write the
results. So a killed walk-forward resumes where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture, wait
from prefect.runtime import flow_run as current_flow_run

from flows.artifacts import markdown_artifact, table_artifact
from flows.fanout import (
    artifact_key,
    run_name,
    settled,
    with_configured_retries,
    worker_pool,
    workers_reporting_here,
)
from rltrader.config import Config, WalkForwardConfig
from rltrader.display.cpcv import cpcv_markdown
from rltrader.display.formatting import number
from rltrader.display.walkforward import aggregate_markdown, fold_line, fold_rows
from rltrader.env.account import account_terms
from rltrader.errors import UserInputError
from rltrader.jobs.requests import WalkForwardRequest
from rltrader.records import FoldOutcome, WalkForwardSummary
from rltrader.runtime.performance_mode import parse_settings
from rltrader.runtime.run_lock import run_directory_lock
from rltrader.training.spec import RunSpec
from rltrader.training.trust import config_file_key
from rltrader.walkforward.cpcv import CpcvSplit
from rltrader.walkforward.cpcv_report import cpcv_aggregate, path_returns, write_cpcv_results
from rltrader.walkforward.data import PreparedFolds
from rltrader.walkforward.report import aggregate, stitched_returns, warm_start_savings, write_results
from rltrader.walkforward.runs import FoldRunSpec, check_plan, finished_outcome, fold_run_dir, walk_plan
from rltrader.walkforward.schedule import FoldQueue
from tasks.abandoned_runs import flow_run_owner
from tasks.walkforward import prepare_folds_task, train_fold_task


def _label(what: str) -> Callable[[WalkForwardRequest], str]:
    return lambda request: f"{what} {request.walk_name}"


def fold_runs(request: WalkForwardRequest, base: Config, planned: PreparedFolds) -> list[FoldRunSpec]:
    """Every fold x seed run of the walk-forward, each a run spec in its own directory."""
    root, walk = request.root.resolve(), base.walk_forward
    settings_file = str(settings_path(request, base))
    runs = []
    for fold, (plan, prepared) in enumerate(zip(planned.folds, planned.prepared, strict=True)):
        cpcv = isinstance(plan, CpcvSplit)
        for seed in walk.seeds:
            previous = fold_run_dir(root, fold - 1, seed) / "best_model.zip"
            runs.append(FoldRunSpec(fold=fold, seed=seed, run=RunSpec(
                config=request.run_config(base, seed), data_path=request.data_path, prepared=prepared,
                run_dir=str(fold_run_dir(root, fold, seed, plan.name.split("_")[0] if cpcv else "fold")),
                settings_file=settings_file, workers=walk.parallel, trust_checks=False,
                initial_model=str(previous) if walk.warm_start_folds and fold > 0 else None),
                test_groups=[(group, *rows) for group, rows in zip(plan.test_groups, plan.test, strict=True)]
                if cpcv else None))
    return runs


def settings_path(request: WalkForwardRequest, base: Config) -> Path:
    return Path(request.settings_file or base.performance_mode.settings_file)


def _workers_now(base: Config, settings_file: Path) -> int:
    """``walk_forward.parallel`` in performance mode; quiet mode keeps one run going (the machine stays usable)."""
    return base.walk_forward.parallel if parse_settings(settings_file).mode == "performance" else 1


def publish(name: str, outcomes: list[FoldOutcome], planned: int, bars_per_year: float,
            flow_run_id: UUID | None = None, walk: WalkForwardConfig | None = None) -> None:
    """The fold table and the aggregate so far, as the UI's artifacts of this walk-forward (on
    ``flow_run_id``'s page: the walk-forward's run, when its runs' subflow publishes); a CPCV
    (``walk.scheme``) shows its paths."""
    key = artifact_key("walkforward", name)
    table_artifact(fold_rows(outcomes), f"{key}-folds", f"Folds of walk-forward {name}", flow_run_id)
    if walk is not None and walk.scheme == "cpcv":  # its paths, once one is complete
        figures = cpcv_aggregate(outcomes, path_returns(outcomes), bars_per_year, walk.groups, walk.test_groups)
        markdown_artifact(cpcv_markdown(name, figures, planned), f"{key}-summary", f"CPCV {name}: the paths",
                          flow_run_id)
        return
    returns = stitched_returns(outcomes)
    if len(returns) > 2:
        figures = aggregate(outcomes, returns, bars_per_year)
        markdown_artifact(aggregate_markdown(name, figures, planned, warm_start_savings(outcomes)),
                          f"{key}-summary", f"Walk-forward {name}: the aggregate", flow_run_id)


@flow(name="walk-forward-runs", flow_run_name=run_name(WalkForwardRequest, _label("runs of walk-forward"),
                                                       "walk-forward runs"))
def train_fold_runs(request: WalkForwardRequest, runs: list[FoldRunSpec], finished: list[FoldOutcome],
                    bars_per_year: float, report_to: UUID, fold_console_level: int = logging.WARNING
                    ) -> list[FoldOutcome]:
    """Keep as many runs training on this subflow's worker pool as the performance mode allows, starting
    each as soon as it may (warm folds after their previous fold); returns every run's outcome.

    :param request: the walk-forward
    :param runs: every fold x seed run, finished ones included
    :param finished: the outcomes of runs finished before (read back, not trained again)
    :param bars_per_year: annualizes the aggregate's Sharpe
    :param report_to: the walk-forward's run, whose page shows the fold table and the aggregate
    :param fold_console_level: what the workers print on their terminals
    """
    logger = get_run_logger()
    base = request.to_config(source="walk-forward request")
    queue = FoldQueue({(run.fold, run.seed): run for run in runs}, base.walk_forward.warm_start_folds)
    for outcome in finished:
        queue.finish((outcome.fold, outcome.seed), outcome, trained_here=False)
    train_fold = with_configured_retries(train_fold_task, base)
    folds = len({run.fold for run in runs})
    in_flight: dict[tuple[int, int], PrefectFuture[FoldOutcome]] = {}
    with workers_reporting_here():
        while not queue.done:
            workers = _workers_now(base, settings_path(request, base))
            for key in queue.ready()[:max(0, workers - len(in_flight))]:
                in_flight[key] = train_fold.submit(queue.start(key), fold_console_level)
            if not in_flight:
                raise UserInputError(f"{request.root}: no fold can start (a warm-started fold's previous fold "
                                     "is missing)")
            done = wait(list(in_flight.values()), timeout=2).done
            for key in [key for key, future in in_flight.items() if future in done]:
                outcome = settled(in_flight.pop(key))  # a failed run (retries spent) fails the flow
                queue.finish(key, outcome)
                logger.info(fold_line(outcome, folds, len(queue.finished), queue.planned,
                                      queue.eta_seconds(workers)))
                publish(request.walk_name, list(queue.finished.values()), queue.planned, bars_per_year, report_to,
                        base.walk_forward)
    return list(queue.finished.values())


@flow(name="walk-forward", flow_run_name=run_name(WalkForwardRequest, _label("walk-forward"), "walk-forward"),
      validate_parameters=True)
def walk_forward(request: WalkForwardRequest = WalkForwardRequest(),
                 fold_console_level: int = logging.INFO) -> WalkForwardSummary:
    """Train and test every fold x seed, then stitch the test windows into one out-of-sample curve.

    :param request: the walk-forward (:class:`~rltrader.jobs.requests.WalkForwardRequest`)
    :param fold_console_level: what the runs' worker processes print (``rltrader walkforward``
        passes WARNING unless --verbose; the UI gets every log line either way)
    """
    logger = get_run_logger()
    base = request.to_config(source="walk-forward request")
    walk, root = base.walk_forward, request.root
    with run_directory_lock(root, "pass another --name", owner=flow_run_owner()):  # one command per walk-forward
        planned = prepare_folds_task(request.data_path, base)
        check_plan(root, walk_plan(base, [fold.to_dict() for fold in planned.folds], planned.data_sha256,
                                   config_file_key(request.config)))
        runs = fold_runs(request, base, planned)
        finished = [outcome for run in runs if (outcome := finished_outcome(run)) is not None]
        logger.info("Walk-forward %s in %s: %d %s x %d seeds (%s%s); %d at once in performance mode, 1 in quiet "
                    "mode (now %s, from %s)%s", request.walk_name, root, len(planned.folds),
                    "splits" if walk.scheme == "cpcv" else "folds", len(walk.seeds),
                    f"cpcv, {walk.groups} groups, {walk.test_groups} tested per split" if walk.scheme == "cpcv"
                    else walk.scheme, ", warm-started folds" if walk.warm_start_folds else "", walk.parallel,
                    parse_settings(settings_path(request, base)).mode, settings_path(request, base),
                    f"; resuming, {len(finished)} runs already done" if finished else "")
        if finished:
            publish(request.walk_name, finished, len(runs), planned.bars_per_year, walk=walk)
        if len(finished) < len(runs):  # everything read back: no workers to start
            finished = train_fold_runs.with_options(task_runner=worker_pool(walk.parallel, request.dask_address))(
                request, runs, finished, planned.bars_per_year, UUID(current_flow_run.id), fold_console_level)
        account = account_terms(base, request.data_path).to_json()
        if walk.scheme == "cpcv":
            summary = write_cpcv_results(root, request.walk_name, finished, planned.bars_per_year, len(runs),
                                         walk.groups, walk.test_groups, account)
            logger.info("Walk-forward %s done: %d CPCV paths, median path Sharpe %s; results in %s", request.walk_name,
                        summary.aggregate["paths"], number(summary.aggregate["median_path"]["sharpe"], 2), root)
            return summary
        summary = write_results(root, request.walk_name, finished, planned.bars_per_year, base.env.initial_balance,
                                len(runs), account)
        logger.info("Walk-forward %s done: stitched Sharpe %s; results in %s", request.walk_name,
                    number(summary.aggregate["stitched_sharpe"], 2), root)
        return summary
