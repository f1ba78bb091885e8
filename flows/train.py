"""The training pipeline as a Prefect flow: what ``rltrader train`` runs, and what the UI triggers.

It reads like the process: preprocess (cached) -> for each iteration: train with warm
start and adaptive timesteps, validate with the fast evaluator, keep the best (or, with
``parallel_candidates`` > 1, train several candidates side by side and keep the best of
them) -> score the best model once on the test split and write the summary. Every task
works from the run directory, so a failed task retries from its last checkpoint and a
crashed flow run, retried from the UI, walks past finished iterations.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from prefect import flow, get_client, get_run_logger
from prefect.runtime import flow_run as current_flow_run
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner

from flows.artifacts import publish_iterations, publish_summary, records_of, start_progress, update_progress
from rltrader.config import OPTIMIZATION_SWITCHES, Config, load_config, run_config
from rltrader.errors import UserInputError
from tasks.preprocess import run_preprocessing
from tasks.train import final_report_task, keep_best_candidate_task, train_candidate_task, train_iteration_task

DEFAULT_DATA = "data/XAUUSDm_15min.csv"


def _flow_run_name() -> str:
    parameters = current_flow_run.parameters
    seed = parameters.get("seed")
    return f"train {Path(parameters['data_path']).stem}" + (f" seed {seed}" if seed is not None else "")


TRAINING_PARAMETERS = ("seed", "iterations", "total_timesteps", "min_timesteps", "early_stopping_patience",
                       "convergence_threshold", "eval_freq", "checkpoint_freq")


def pipeline_config(parameters: Mapping[str, Any]) -> Config:
    """The run's config from ``train-pipeline`` parameters (missing ones take their defaults).

    File, then ``overrides`` and ``cache_dir``, then the profile, then the named values and
    switches: the order ``rltrader train`` applies its flags in, through the same
    :func:`~rltrader.config.run_config`. A switch set to False turns its optimization off;
    True leaves it as the config file says, as a missing ``--no-...`` flag does."""
    base = load_config(parameters.get("config")).with_overrides(
        {**(parameters.get("overrides") or {}), "cache.dir": parameters.get("cache_dir")},
        source="train-pipeline overrides")
    return run_config(base, parameters.get("profile"), {key: parameters.get(key) for key in TRAINING_PARAMETERS},
                      {name: False for name in OPTIMIZATION_SWITCHES if parameters.get(name, True) is False},
                      bool(parameters.get("use_original_training")), source="train-pipeline parameters")


def candidate_runner(workers: int, dask_address: str | None) -> TaskRunner[Any]:
    """``workers`` processes on this machine by default; an existing Dask cluster when its address is given."""
    if dask_address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=dask_address)
    return ProcessPoolTaskRunner(max_workers=workers)


@contextlib.contextmanager
def api_visible_to_workers() -> Iterator[None]:
    """Pin the API URL this flow talks to, so task runs in other processes report to it too.

    Without ``PREFECT_API_URL`` the flow uses a temporary server; the runners copy the
    settings context to their workers, where an unset URL would make each worker start a
    temporary server of its own (seconds each, and runs the UI never shows)."""
    if PREFECT_API_URL.value():
        yield
        return
    with get_client(sync_client=True) as client:
        url = str(client.api_url)
    with temporary_settings({PREFECT_API_URL: url}):
        yield


def _retrying(task: Any, config: Config) -> Any:
    return task.with_options(retries=config.orchestration.retries,
                             retry_delay_seconds=config.orchestration.retry_delay_seconds)


@flow(name="train-pipeline", flow_run_name=_flow_run_name, validate_parameters=True)
def train_pipeline(
    data_path: str = DEFAULT_DATA,
    config: str | None = None,
    profile: str | None = None,
    seed: int | None = None,
    iterations: int | None = None,
    total_timesteps: int | None = None,
    min_timesteps: int | None = None,
    early_stopping_patience: int | None = None,
    convergence_threshold: float | None = None,
    eval_freq: int | None = None,
    checkpoint_freq: int | None = None,
    adaptive_timesteps: bool = True,
    warm_start: bool = True,
    early_stopping: bool = True,
    progressive_training: bool = True,
    cache_environments: bool = True,
    fast_evaluation: bool = True,
    fast_engine: bool = True,
    use_original_training: bool = False,
    results_dir: str = "results",
    settings_file: str | None = None,
    parallel_candidates: int = 1,
    candidate_workers: int | None = None,
    dask_address: str | None = None,
    cache_dir: str | None = None,
    overrides: dict[str, Any] | None = None,
    run_dir: str | None = None,
) -> dict[str, Any]:
    """Train iteratively, keep the best model by validation score, report it against buy-and-hold.

    Parameters mirror ``rltrader train``'s flags: ``config`` is a YAML path, ``profile`` a
    name from its ``profiles:``, the booleans switch optimizations off, and the run goes to
    ``results_dir/<seed>/`` (a run there with the same settings is resumed).
    ``parallel_candidates`` trains that many candidates per iteration (seeds apart) in
    local processes, at most ``candidate_workers`` at once (default: all), or on the Dask
    cluster at ``dask_address``, and keeps the best. ``overrides`` sets any config key
    by its dotted name (``{"training.n_envs": 4}``), after the file and before the named
    parameters; ``run_dir`` replaces ``results_dir/<seed>``.
    """
    logger = get_run_logger()
    if parallel_candidates < 1:
        raise UserInputError(f"parallel_candidates must be 1 or more, got {parallel_candidates}")
    if candidate_workers is not None and candidate_workers < 1:
        raise UserInputError(f"candidate_workers must be 1 or more, got {candidate_workers}")
    settings = pipeline_config({
        "config": config, "profile": profile, "seed": seed, "iterations": iterations,
        "total_timesteps": total_timesteps, "min_timesteps": min_timesteps,
        "early_stopping_patience": early_stopping_patience, "convergence_threshold": convergence_threshold,
        "eval_freq": eval_freq, "checkpoint_freq": checkpoint_freq, "adaptive_timesteps": adaptive_timesteps,
        "warm_start": warm_start, "early_stopping": early_stopping, "progressive_training": progressive_training,
        "cache_environments": cache_environments, "fast_evaluation": fast_evaluation, "fast_engine": fast_engine,
        "use_original_training": use_original_training, "cache_dir": cache_dir, "overrides": overrides})
    planned = settings.training.iterations
    run_path = Path(run_dir) if run_dir else Path(results_dir) / str(settings.training.seed)
    logger.info("Run %s: %d iterations, seed %d, %s", run_path, planned, settings.training.seed,
                f"{parallel_candidates} candidates per iteration" if parallel_candidates > 1 else "one model")

    started = time.perf_counter()
    prepared = run_preprocessing(data_path, settings)
    preprocess_seconds = time.perf_counter() - started
    shared = {"config": settings.model_dump(mode="json"), "data_path": data_path, "prepared": prepared.to_dict(),
              "preprocess_seconds": preprocess_seconds, "run_dir": str(run_path), "settings_file": settings_file}

    records: list[dict[str, Any]] = records_of(run_path)[:planned]  # a retried run walks past these
    if records:
        logger.info("Resuming %s: %d of %d iterations already trained", run_path, len(records), planned)
    progress = start_progress(run_path, len(records), planned)
    workers = min(candidate_workers or parallel_candidates, parallel_candidates)
    runner = candidate_runner(workers, dask_address) if parallel_candidates > 1 else None
    with api_visible_to_workers(), runner or contextlib.nullcontext():
        for iteration in range(len(records), planned):
            if runner is None:
                record = _retrying(train_iteration_task, settings)(**shared, iteration=iteration)
            else:
                futures = [runner.submit(_retrying(train_candidate_task, settings),
                                         {**shared, "iteration": iteration, "candidate": candidate})
                           for candidate in range(parallel_candidates)]
                record = keep_best_candidate_task(str(run_path), iteration, [future.result() for future in futures])
            records.append(record)
            update_progress(progress, iteration + 1, planned)
            publish_iterations(run_path, records)

    summary = final_report_task(shared["config"], data_path, shared["prepared"], str(run_path))
    publish_summary(summary)
    logger.info("Done: best model %s, test Sharpe %.3f (buy-and-hold %.3f), speedup %.2fx (%s); report %s",
                summary["best_model"]["path"], summary["test"]["agent"]["sharpe"],
                summary["test"]["buy_and_hold"]["sharpe"], summary["total_speedup_achieved"],
                summary["speedup_basis"], summary["report"])
    return summary
