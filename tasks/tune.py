"""A tuning trial as a Prefect task: one trial, trained where the flow's task runner puts it.

The task gets the trial as a typed spec and returns its typed outcome (never a model); it
reaches the study through the study's storage. A retried attempt resumes the trial's run
directory from its last checkpoint, as a retried training iteration does.
"""

from __future__ import annotations

import logging

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run as current_task_run

from rltrader.runtime.allocator import relax_heap_trimming
from rltrader.tuning.trial import TrialOutcome, TrialSpec, run_trial
from tasks.train import RETRY_OPTIONS, set_console_level


def _trial_label() -> str:
    return f"trial {current_task_run.parameters['spec'].number}"


@task(name="tune-trial", cache_policy=NO_CACHE, task_run_name=_trial_label, **RETRY_OPTIONS)
def tune_trial_task(spec: TrialSpec, console_level: int = logging.WARNING) -> TrialOutcome:
    """Train one trial (pruned early when it trails the median) and return its outcome.

    :param spec: the trial (its run's performance-mode file included)
    :param console_level: the worker's terminal logging (the UI gets every line regardless): the
        terminal shows one line per trial from the flow, not each trial's validations
    """
    set_console_level(console_level)
    relax_heap_trimming()  # Dask workers start with a heap setting that halves training speed
    return run_trial(spec)
