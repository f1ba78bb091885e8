"""A tuning trial as a Prefect task: one trial, trained where the flow's task runner puts it.

The task gets the trial as plain data and returns its outcome (never a model); it reaches
the study through the study's storage. A retried attempt resumes the trial's run
directory from its last checkpoint, as a retried training iteration does.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run as current_task_run

from rltrader.config import parse_config
from rltrader.runtime.allocator import relax_heap_trimming
from tasks.train import is_transient, mode_switcher, set_console_level


def _trial_label() -> str:
    return f"trial {current_task_run.parameters['spec']['number']}"


@task(name="tune-trial", cache_policy=NO_CACHE, retry_condition_fn=is_transient, task_run_name=_trial_label)
def tune_trial_task(spec: dict[str, Any], settings_file: str | None = None,
                    console_level: int = logging.WARNING) -> dict[str, Any]:
    """Train one trial (pruned early when it trails the median) and return its outcome as a dict.

    ``console_level`` is the worker's terminal logging (the UI gets every line regardless):
    the terminal shows one line per trial from the flow, not each trial's validations."""
    from rltrader.tuning.trial import TrialSpec, run_trial

    set_console_level(console_level)
    relax_heap_trimming()  # Dask workers start with a heap setting that halves training speed
    trial = TrialSpec.model_validate(spec)
    config = parse_config(trial.config, source=f"trial {trial.number}")
    return run_trial(trial, [mode_switcher(config, trial.run_dir, settings_file)]).model_dump()
