"""``rltrader tune`` as a Prefect flow: ask for trials, fan them out, tell their outcomes, keep the best.

It reads as the search runs: open the study (or resume it) -> run again any trial a killed
run left unfinished -> keep ``workers`` trials training on the task runner (a process
pool here, ``DaskTaskRunner(address=)`` on a cluster), asking TPE for the next trial as
each one ends -> write the trials table, the parameter importances and the best trial as
a config file that ``rltrader train --config`` takes. Each finished trial updates the
progress artifact and the trials table in the UI.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.futures import wait
from prefect.runtime import flow_run as current_flow_run

from flows.train import candidate_runner, workers_reporting_here
from rltrader.app.requests import TuneRequest
from rltrader.errors import UserInputError
from rltrader.runtime.run_lock import run_directory_lock
from rltrader.tuning.study import Tuner
from rltrader.tuning.trial import TrialOutcome
from tasks.tune import tune_trial_task


def _flow_run_name() -> str:
    try:
        request = TuneRequest.model_validate(current_flow_run.parameters.get("request") or {})
    except ValueError:
        return "tune (invalid request)"
    return f"tune {request.study_name}"


def _artifact_key(name: str) -> str:
    """Prefect keys allow lowercase letters, digits and dashes only."""
    return "tune-" + "".join(char if char.isalnum() else "-" for char in name.lower())


def publish(tuner: Tuner) -> None:
    """The trials table and the parameter importances, as the UI's artifacts of this study."""
    key = _artifact_key(tuner.name)
    create_table_artifact(tuner.trials_table(), key=f"{key}-trials", description=f"Trials of study {tuner.name}")
    importances = tuner.importances()
    best = tuner.best_trial()
    lines = [f"# Study {tuner.name}", "",
             f"{len(tuner.finished())} of {tuner.base.tune.trials} trials finished; objective: best validation "
             f"{tuner.base.training.selection_metric} of the trial (test never seen).", ""]
    if best is not None:
        lines += [f"Best: trial {best.number}, {best.value:.3f}, "
                  + ", ".join(f"`{key}` = {value:.5g}" if isinstance(value, float) else f"`{key}` = {value!r}"
                             for key, value in best.params.items()), ""]
    if importances:
        lines += ["| parameter | importance (PED-ANOVA) |", "|---|---|",
                  *(f"| `{key}` | {value:.3f} |" for key, value in importances.items())]
    else:
        lines.append("Parameter importances appear once two complete trials differ.")
    create_markdown_artifact("\n".join(lines), key=f"{key}-summary", description=f"Study {tuner.name}")


@flow(name="tune", flow_run_name=_flow_run_name, validate_parameters=True)
def tune_study(request: TuneRequest = TuneRequest(), trial_console_level: int = logging.INFO) -> dict[str, Any]:
    """Search ``tune.space`` with Optuna (TPE, median pruning) on validation; write the best config.

    ``trial_console_level``: what the trials' worker processes print (``rltrader tune`` passes
    WARNING unless --verbose; the UI gets every log line either way)."""
    base = request.to_config(source="tune request")
    with run_directory_lock(request.root, "pass another --name"):  # one command per study directory
        return _search(request, base, trial_console_level)


def _search(request: TuneRequest, base: Any, trial_console_level: int) -> dict[str, Any]:
    """The search itself, under the study directory's lock."""
    logger = get_run_logger()
    tuner = Tuner.open(request.study_name, base, request.data_path, request.results_dir)
    workers = base.tune.workers
    logger.info("Study %s in %s: %d trials, %d at once, storage %s", tuner.name, tuner.root, base.tune.trials,
                workers, tuner.storage)
    pending = tuner.interrupted()
    if pending:
        logger.info("Resuming %d interrupted trial(s): %s", len(pending), ", ".join(str(s.number) for s in pending))
    runner = candidate_runner(workers, request.dask_address)
    trial_task = tune_trial_task.with_options(retries=base.orchestration.retries,
                                              retry_delay_seconds=base.orchestration.retry_delay_seconds)
    in_flight: dict[int, Any] = {}
    with workers_reporting_here(runner):
        while pending or in_flight or tuner.wanted(0) > 0:
            while len(in_flight) < workers and (pending or tuner.wanted(len(in_flight)) > 0):
                spec = pending.pop(0) if pending else tuner.ask()
                in_flight[spec.number] = runner.submit(trial_task, {
                    "spec": spec.model_dump(), "settings_file": request.settings_file,
                    "console_level": trial_console_level})
            done = wait(list(in_flight.values()), timeout=2).done
            for number in [n for n, future in in_flight.items() if future in done]:
                future = in_flight.pop(number)
                try:
                    outcome = TrialOutcome.model_validate(future.result())
                except UserInputError:
                    raise  # bad data or config: every trial would fail the same way
                except Exception as error:  # noqa: BLE001 - one failed trial (retries spent) fails alone
                    logger.warning("Trial %d failed: %s", number, str(error).splitlines()[0][:200])
                    tuner.fail(number)
                    continue
                logger.info(tuner.tell(outcome))
                publish(tuner)
    best_config = tuner.write_results()
    publish(tuner)
    best = tuner.best_trial()
    return {"study": tuner.name, "root": str(tuner.root), "finished": len(tuner.finished()),
            "best_trial": None if best is None else best.number, "best_value": None if best is None else best.value,
            "best_params": None if best is None else best.params,
            "best_config": None if best_config is None else str(best_config)}
