"""The training pipeline as a Prefect flow: what ``rltrader train`` runs, and what the UI triggers.

It reads like the process: preprocess (cached) -> the run spec -> for each iteration: train
with warm start and adaptive timesteps, validate with the fast evaluator, keep the best (or,
with ``parallel_candidates`` > 1, train several candidates side by side in a subflow on a
worker pool and keep the best of them) -> score the best model once on the test split and
write the summary. Every task works from the run directory, so a failed task retries from
its last checkpoint and a crashed flow run, retried from the UI, walks past finished
iterations. Once the bars are known good the run directory is locked, so a second trainer on
it stops before writing.
"""

from __future__ import annotations

import time
from pathlib import Path
from uuid import UUID

from prefect import flow, get_run_logger, unmapped
from prefect.runtime import flow_run as current_flow_run

from flows.artifacts import publish_iterations, publish_summary, start_progress, update_progress
from flows.fanout import run_name, with_configured_retries, worker_pool, workers_reporting_here
from rltrader.jobs.requests import TrainRequest
from rltrader.records import IterationRecord, RunSummary
from rltrader.runtime.run_lock import run_directory_lock
from rltrader.training.run_state import RunState
from rltrader.training.spec import RunSpec
from rltrader.training.trust import config_file_key, study_of
from tasks.abandoned_runs import flow_run_owner
from tasks.preprocess import run_preprocessing
from tasks.train import final_report_task, keep_best_candidate_task, train_candidate_task, train_iteration_task


def _run_label(request: TrainRequest) -> str:
    return f"train {Path(request.data_path).stem}" + (f" seed {request.seed}" if request.seed is not None else "")


@flow(name="train-candidates", flow_run_name="candidates of {spec.run_dir}")
def train_with_candidates(spec: RunSpec, records: list[IterationRecord], candidates: int, keep_candidates: int,
                          progress: UUID, report_to: UUID) -> list[IterationRecord]:
    """Train the run's remaining iterations, each as ``candidates`` forks side by side on this subflow's
    worker pool (one pool for every iteration), adopting the best of each.

    :param spec: the run the candidates fork
    :param records: the iterations already trained (a resumed run walks past them)
    :param candidates: how many forks of each iteration train at once (seeds ``SEED_STRIDE`` apart)
    :param keep_candidates: forks kept on disk after each adoption (the best ones)
    :param progress: the parent run's progress artifact, updated after each iteration
    :param report_to: the parent run, whose page shows the iterations table
    """
    planned = spec.config.training.iterations
    train_candidate = with_configured_retries(train_candidate_task, spec.config)
    with workers_reporting_here():
        for iteration in range(len(records), planned):
            results = train_candidate.map(unmapped(spec), iteration, range(candidates))
            records = [*records, keep_best_candidate_task(spec.run_dir, iteration, results, keep_candidates)]
            update_progress(progress, iteration + 1, planned)
            publish_iterations(Path(spec.run_dir), records, report_to)
    return records


@flow(name="train-pipeline", flow_run_name=run_name(TrainRequest, _run_label, "train"), validate_parameters=True)
def train_pipeline(request: TrainRequest = TrainRequest()) -> RunSummary:
    """Train iteratively, keep the best model by validation score, report it against buy-and-hold.

    :param request: what ``rltrader train``'s flags hold (one field per flag, the same names;
        :class:`~rltrader.jobs.requests.TrainRequest`), plus ``candidate_workers``,
        ``dask_address``, ``overrides`` and ``run_dir``. The run goes to ``results_dir/<seed>/``;
        a run there with the same settings is resumed.
    """
    logger = get_run_logger()
    settings = request.to_config(source="train-pipeline request")
    planned, candidates = settings.training.iterations, request.parallel_candidates
    run_path = request.run_path(settings.training.seed)
    logger.info("Run %s: %d iterations, seed %d, %s", run_path, planned, settings.training.seed,
                f"{candidates} candidates per iteration" if candidates > 1 else "one model")

    # one trainer per run directory; a second exits naming this one, a dead one's run is closed (taken before
    # preprocessing: a run killed there is closed too)
    with run_directory_lock(run_path, owner=flow_run_owner()):
        started = time.perf_counter()
        prepared = run_preprocessing(request.data_path, settings)
        spec = RunSpec(config=settings, data_path=request.data_path, run_dir=str(run_path), prepared=prepared,
                       preprocess_seconds=time.perf_counter() - started, settings_file=request.settings_file,
                       study_dir=study_of(request.config), config_file=config_file_key(request.config))
        saved = RunState.read(run_path / "run_state.json")
        records = saved.iterations[:planned] if saved else []  # a retried run walks past these
        if records:
            logger.info("Resuming %s: %d of %d iterations already trained", run_path, len(records), planned)
        progress = start_progress(run_path, len(records), planned)
        if candidates == 1:
            train_iteration = with_configured_retries(train_iteration_task, settings)
            for iteration in range(len(records), planned):
                records.append(train_iteration(spec, iteration))
                update_progress(progress, iteration + 1, planned)
                publish_iterations(run_path, records)
        else:
            pool = worker_pool(min(request.candidate_workers or candidates, candidates), request.dask_address)
            train_with_candidates.with_options(task_runner=pool)(spec, records, candidates, request.keep_candidates,
                                                                 progress, UUID(current_flow_run.id))

        summary = final_report_task(spec)
        publish_summary(summary)
        logger.info("Done: best model %s, test Sharpe %s (buy-and-hold %s), speedup %.2fx (%s); report %s",
                    summary.best_model.path, summary.test.agent.get("sharpe"), summary.test.buy_and_hold.get("sharpe"),
                    summary.total_speedup_achieved, summary.speedup_basis, summary.report)
        return summary
