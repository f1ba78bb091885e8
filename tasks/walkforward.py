"""Walk-forward as Prefect tasks: preparing every fold's data, and training one fold x seed.

The fold task gets its run as a typed spec and returns its typed outcome (never a model); a
retried attempt resumes the run's directory from its last checkpoint, and a run that
finished before is read back instead of trained again.
"""

from __future__ import annotations

import logging

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run as current_task_run

from rltrader.config import Config
from rltrader.records import FoldOutcome
from rltrader.runtime.allocator import relax_heap_trimming
from rltrader.walkforward.data import PreparedFolds, prepare_folds
from rltrader.walkforward.runs import FoldRunSpec, run_fold
from tasks.train import RETRY_OPTIONS, is_transient, set_console_level


def _fold_label() -> str:
    spec = current_task_run.parameters["spec"]
    return f"{'fold' if spec.test_groups is None else 'split'} {spec.fold + 1} seed {spec.seed}"


@task(name="prepare-folds", cache_policy=NO_CACHE, retry_condition_fn=is_transient, task_run_name="prepare folds")
def prepare_folds_task(data_path: str, config: Config) -> PreparedFolds:
    """Plan the folds and write each fold's features (computed once per file, normalized per fold)."""
    return PreparedFolds(*prepare_folds(data_path, config))


@task(name="train-fold", cache_policy=NO_CACHE, task_run_name=_fold_label, **RETRY_OPTIONS)
def train_fold_task(spec: FoldRunSpec, console_level: int = logging.WARNING) -> FoldOutcome:
    """Train one fold x seed (all optimizations, checkpoints, resume) and return its outcome.

    :param spec: the fold's run (its performance-mode file and the runs sharing the machine included)
    :param console_level: this worker's terminal logging (the flow prints one line per run)
    """
    set_console_level(console_level)
    relax_heap_trimming()  # Dask workers start with a heap setting that halves training speed
    return run_fold(spec)
