"""``rltrader tune`` as a Prefect flow: ask for trials, fan them out, tell their outcomes, keep the best.

The flow body is the search's steps: lock the study's directory -> train the trials in a
subflow on a worker pool (a process pool here, ``DaskTaskRunner(address=)`` on a cluster):
first any trial a killed run left unfinished, then ``workers`` at a time, asking TPE for the
next trial as each one ends -> write the trials table, the parameter importances and the
best trial as a config file that ``rltrader train --config`` takes. Each finished trial
updates the trials table and the study's summary in the UI.
"""

from __future__ import annotations

import logging
from concurrent.futures.process import BrokenProcessPool
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
from rltrader.config import Config
from rltrader.display.tuning import study_markdown
from rltrader.errors import UserInputError
from rltrader.jobs.requests import TuneRequest
from rltrader.runtime.run_lock import run_directory_lock
from rltrader.tuning.study import StudyResult, Tuner
from rltrader.tuning.trial import TrialOutcome
from tasks.abandoned_runs import flow_run_owner
from tasks.tune import tune_trial_task


def open_study(request: TuneRequest, base: Config) -> Tuner:
    """The request's study, its trials following the performance mode of the request's settings file."""
    return Tuner.open(request.study_name, base, request.data_path, request.results_dir,
                      settings_file=request.settings_file, follow_performance_mode=True, more_data=request.more_data)


def publish(tuner: Tuner, flow_run_id: UUID | None = None) -> None:
    """The trials table and the study's summary, as the UI's artifacts of this study (on ``flow_run_id``'s
    page: the study's run, when its trials' subflow publishes)."""
    key = artifact_key("tune", tuner.name)
    table_artifact(tuner.trials_table(), f"{key}-trials", f"Trials of study {tuner.name}", flow_run_id)
    best = tuner.best_trial()
    markdown = study_markdown(tuner.name, len(tuner.finished()), tuner.base.tune.trials,
                              tuner.base.training.selection_metric,
                              None if best is None else (best.number, best.value, best.params), tuner.importances(),
                              tuner.overfitting())
    markdown_artifact(markdown, f"{key}-summary", f"Study {tuner.name}", flow_run_id)


@flow(name="tune-trials", flow_run_name=run_name(TuneRequest, lambda request: f"trials of {request.study_name}",
                                                  "tune trials"))
def train_trials(request: TuneRequest, report_to: UUID, trial_console_level: int = logging.WARNING) -> int:
    """Keep ``tune.workers`` trials training on this subflow's worker pool until the study has its trials;
    returns the trials told this session.

    :param request: the study
    :param report_to: the study's run, whose page shows the trials table and the summary
    :param trial_console_level: what the trials' workers print on their terminals
    """
    logger = get_run_logger()
    tuner = open_study(request, request.to_config(source="tune request"))
    workers = tuner.base.tune.workers
    logger.info("Study %s in %s: %d trials, %d at once, storage %s", tuner.name, tuner.root, tuner.base.tune.trials,
                workers, tuner.storage)
    pending = tuner.interrupted()
    if pending:
        logger.info("Resuming %d interrupted trial(s): %s", len(pending), ", ".join(str(s.number) for s in pending))
    train_trial = with_configured_retries(tune_trial_task, tuner.base)
    in_flight: dict[int, PrefectFuture[TrialOutcome]] = {}
    with workers_reporting_here():
        while pending or in_flight or tuner.wanted(0) > 0:
            while len(in_flight) < workers and (pending or tuner.wanted(len(in_flight)) > 0):
                spec = pending.pop(0) if pending else tuner.ask()
                in_flight[spec.number] = train_trial.submit(spec, trial_console_level)
            done = wait(list(in_flight.values()), timeout=2).done
            for number in [n for n, future in in_flight.items() if future in done]:
                future = in_flight.pop(number)
                try:
                    outcome = settled(future)
                except (UserInputError, BrokenProcessPool):
                    raise  # bad data or config, or a dead worker pool: every trial would fail the same way
                except Exception as error:  # noqa: BLE001 - one failed trial (retries spent) fails alone
                    logger.warning("Trial %d failed: %s", number, str(error).splitlines()[0][:200])
                    tuner.fail(number)
                    continue
                logger.info(tuner.tell(outcome))
                publish(tuner, report_to)
    return tuner.told_this_session


@flow(name="tune", flow_run_name=run_name(TuneRequest, lambda request: f"tune {request.study_name}", "tune"),
      validate_parameters=True)
def tune_study(request: TuneRequest = TuneRequest(), trial_console_level: int = logging.INFO) -> StudyResult:
    """Search ``tune.space`` with Optuna (TPE, median pruning) on validation; write the best config.

    :param request: the study (:class:`~rltrader.jobs.requests.TuneRequest`)
    :param trial_console_level: what the trials' worker processes print (``rltrader tune`` passes
        WARNING unless --verbose; the UI gets every log line either way)
    """
    base = request.to_config(source="tune request")
    with run_directory_lock(request.root, "pass another --name", owner=flow_run_owner()):  # one command per study
        open_study(request, base)  # a study of this name with other data or space is refused before workers start
        train_trials.with_options(task_runner=worker_pool(base.tune.workers, request.dask_address))(
            request, UUID(current_flow_run.id), trial_console_level)
        tuner = open_study(request, base)
        best_config = tuner.write_results()
        publish(tuner)
        return tuner.result(best_config)
