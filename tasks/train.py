"""Training as Prefect tasks: one iteration, one candidate, adopting the best candidate, the report.

Each task rebuilds its :class:`~rltrader.training.Trainer` from the run directory and
returns the iteration's record (a typed record of paths and metrics, never a model). That is
what makes retries resume: a retried attempt, in this process or a new one, finds the
checkpoints and run state the failed attempt left and trains on from the last checkpoint.

Retries are on the decorators (the config's ``orchestration:`` numbers are applied by
:func:`flows.fanout.with_configured_retries`) and cover transient failures; :func:`is_transient` refuses to retry a
:class:`~rltrader.errors.UserInputError` (bad data, bad config, a results directory of
another experiment), which would only fail the same way again.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.runtime import task_run as current_task_run
from prefect.states import State

from rltrader.config import OrchestrationConfig
from rltrader.errors import UserInputError
from rltrader.records import CandidateResult, IterationRecord, RunSummary
from rltrader.runtime.allocator import relax_heap_trimming
from rltrader.training.candidates import adopt_best_candidate, train_candidate
from rltrader.training.spec import RunSpec
from rltrader.training.trainer import Trainer


def is_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry anything but a user error (its message says what to fix; retrying cannot)."""
    try:
        state.result()
    except UserInputError:
        return False
    except Exception:  # noqa: BLE001 - any other failure may pass on a second try
        return True
    return True


def _iteration_label() -> str:
    parameters = current_task_run.parameters
    label = f"iteration {parameters['iteration'] + 1}"
    return label + (f" candidate {parameters['candidate']}" if "candidate" in parameters else "")


def set_console_level(level: int) -> None:
    """What this worker prints on its terminal (Prefect's console handlers); the UI still gets every line.

    Below INFO's every-line view, Prefect's records of a user's mistake stay off this worker's terminal
    too: the command that started it prints the mistake once (``tasks.console``)."""
    from tasks.console import console_handlers, hide_user_error_records

    for handler in console_handlers():
        handler.setLevel(level)
    hide_user_error_records(2 if level <= logging.INFO else 1)


_RETRIES = OrchestrationConfig()  # the decorators' defaults; a run's config applies its own (flows.fanout)
RETRY_OPTIONS: dict[str, Any] = {"retries": _RETRIES.retries, "retry_delay_seconds": _RETRIES.retry_delay_seconds,
                                 "retry_condition_fn": is_transient}
"""Retries of every training task: a failure retries from the run directory's last checkpoint, a
user's mistake never (:func:`is_transient`)."""


@task(name="train-iteration", cache_policy=NO_CACHE, task_run_name=_iteration_label, **RETRY_OPTIONS)
def train_iteration_task(spec: RunSpec, iteration: int) -> IterationRecord:
    """Train one iteration (warm start, adaptive timesteps, early stopping on fast validation),
    keep its best model if it beats the run's; returns the iteration's record.

    Validation runs inside training, every ``eval_freq`` timesteps, because early stopping
    and keeping the best snapshot both need it there; a finished iteration is skipped."""
    return Trainer.from_spec(spec).open(log_resume=False).train_iteration(iteration)


@task(name="train-candidate", cache_policy=NO_CACHE, task_run_name=_iteration_label, **RETRY_OPTIONS)
def train_candidate_task(spec: RunSpec, iteration: int, candidate: int) -> CandidateResult:
    """Train ``iteration`` as candidate ``candidate``, in its own fork of the run."""
    relax_heap_trimming()  # Dask workers start with a heap setting that halves training speed
    return train_candidate(spec, iteration, candidate)


@task(name="keep-best-candidate", cache_policy=NO_CACHE, task_run_name=lambda: f"{_iteration_label()} keep best")
def keep_best_candidate_task(run_dir: str, iteration: int, results: list[CandidateResult],
                             keep_candidates: int = 0) -> IterationRecord:
    """Adopt the candidate with the highest validation score as the run's iteration; prune the other forks."""
    return adopt_best_candidate(run_dir, iteration, results, keep_candidates)


@task(name="final-report", cache_policy=NO_CACHE, task_run_name="final report")
def final_report_task(spec: RunSpec) -> RunSummary:
    """Score the best model on validation and, once, on the test split; write the report and summary."""
    return Trainer.from_spec(spec.model_copy(update={"follow_performance_mode": False})) \
        .open(log_resume=False).finish()
