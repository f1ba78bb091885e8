"""The training pipeline as a Prefect flow: what ``rltrader train`` runs, and what the UI triggers.

It reads like the process: preprocess (cached) -> for each iteration: train with warm
start and adaptive timesteps, validate with the fast evaluator, keep the best (or, with
``parallel_candidates`` > 1, train several candidates side by side and keep the best of
them) -> score the best model once on the test split and write the summary. Every task
works from the run directory, so a failed task retries from its last checkpoint and a
crashed flow run, retried from the UI, walks past finished iterations. Once the bars are
known good the run directory is locked, so a second trainer on it stops before writing.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefect import flow, get_client, get_run_logger
from prefect.runtime import flow_run as current_flow_run
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner

from flows.artifacts import publish_iterations, publish_summary, start_progress, update_progress
from rltrader.app.requests import TrainRequest
from rltrader.config import Config
from rltrader.records import RunSummary
from rltrader.runtime.run_lock import run_directory_lock
from rltrader.training.run_state import RunState
from tasks.preprocess import run_preprocessing
from tasks.train import final_report_task, keep_best_candidate_task, train_candidate_task, train_iteration_task


def _flow_run_name() -> str:
    try:
        request = TrainRequest.model_validate(current_flow_run.parameters.get("request") or {})
    except ValueError:  # refused before the run starts; its message says why, the name need not
        return "train (invalid request)"
    seed = request.seed
    return f"train {Path(request.data_path).stem}" + (f" seed {seed}" if seed is not None else "")


def candidate_runner(workers: int, dask_address: str | None) -> TaskRunner[Any]:
    """``workers`` processes on this machine by default; an existing Dask cluster when its address is given."""
    if dask_address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=dask_address)
    return ProcessPoolTaskRunner(max_workers=workers)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def workers_reporting_here(runner: TaskRunner[Any] | None) -> Iterator[None]:
    """Start ``runner`` (if any) with every worker reporting to this flow's API, none starting a server.

    Without that, a worker (or a thread of one: Prefect's log and event senders) that finds no API
    address starts a temporary Prefect server of its own: seconds each, runs the UI never shows, and,
    on a Dask worker, a server that outlives the worker. So the address is pinned three ways: in the
    settings context the runners copy to their task runs; in the environment that process-pool
    workers spawned here inherit, with temporary servers turned off; and on every Dask worker of the
    cluster through a worker plugin (:class:`flows.dask_workers.ReportToFlowApi`)."""
    url = PREFECT_API_URL.value()
    if not url:  # a flow on Prefect's own temporary server (tests): ask the client where it is
        with get_client(sync_client=True) as client:
            url = str(client.api_url)
    with temporary_settings({PREFECT_API_URL: url}), \
            _environment({"PREFECT_API_URL": url, "PREFECT_SERVER_EPHEMERAL_ENABLED": "false"}):
        if runner is None:
            yield
            return
        with runner:
            if type(runner).__name__ == "DaskTaskRunner":
                from flows.dask_workers import ReportToFlowApi

                runner.client.register_plugin(ReportToFlowApi(url))
            yield


def _retrying(task: Any, config: Config) -> Any:
    return task.with_options(retries=config.orchestration.retries,
                             retry_delay_seconds=config.orchestration.retry_delay_seconds)


@flow(name="train-pipeline", flow_run_name=_flow_run_name, validate_parameters=True)
def train_pipeline(request: TrainRequest = TrainRequest()) -> RunSummary:
    """Train iteratively, keep the best model by validation score, report it against buy-and-hold.

    ``request`` holds what ``rltrader train``'s flags hold (one field per flag, the same
    names; :class:`~rltrader.app.requests.TrainRequest`), plus ``candidate_workers``,
    ``dask_address``, ``overrides`` and ``run_dir``. The run goes to
    ``results_dir/<seed>/``; a run there with the same settings is resumed.
    """
    logger = get_run_logger()
    settings = request.to_config(source="train-pipeline request")
    planned = settings.training.iterations
    run_path = request.run_path(settings.training.seed)
    candidates = request.parallel_candidates
    logger.info("Run %s: %d iterations, seed %d, %s", run_path, planned, settings.training.seed,
                f"{candidates} candidates per iteration" if candidates > 1 else "one model")

    started = time.perf_counter()
    prepared = run_preprocessing(request.data_path, settings)
    preprocess_seconds = time.perf_counter() - started
    shared = {"config": settings.model_dump(mode="json"), "data_path": request.data_path,
              "prepared": prepared.to_dict(), "preprocess_seconds": preprocess_seconds, "run_dir": str(run_path),
              "settings_file": request.settings_file}

    with run_directory_lock(run_path):  # one trainer per run directory; a second exits naming this one
        saved = RunState.read(run_path / "run_state.json")
        records = saved.iterations[:planned] if saved else []  # a retried run walks past these
        if records:
            logger.info("Resuming %s: %d of %d iterations already trained", run_path, len(records), planned)
        progress = start_progress(run_path, len(records), planned)
        workers = min(request.candidate_workers or candidates, candidates)
        runner = candidate_runner(workers, request.dask_address) if candidates > 1 else None
        with workers_reporting_here(runner):
            for iteration in range(len(records), planned):
                if runner is None:
                    record = _retrying(train_iteration_task, settings)(**shared, iteration=iteration)
                else:
                    futures = [runner.submit(_retrying(train_candidate_task, settings),
                                             {**shared, "iteration": iteration, "candidate": candidate})
                               for candidate in range(candidates)]
                    record = keep_best_candidate_task(str(run_path), iteration, [future.result() for future in futures],
                                                      request.keep_candidates)
                records.append(record)
                update_progress(progress, iteration + 1, planned)
                publish_iterations(run_path, records)

        summary = final_report_task(shared["config"], request.data_path, shared["prepared"], str(run_path))
        publish_summary(summary)
        logger.info("Done: best model %s, test Sharpe %s (buy-and-hold %s), speedup %.2fx (%s); report %s",
                    summary.best_model.path, summary.test.agent.get("sharpe"), summary.test.buy_and_hold.get("sharpe"),
                    summary.total_speedup_achieved, summary.speedup_basis, summary.report)
        return summary
