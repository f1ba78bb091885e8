"""Walk-forward as Prefect tasks: preparing every fold's data, and training one fold x seed.

The fold task gets its run as plain data and returns its outcome (never a model); a
retried attempt resumes the run's directory from its last checkpoint, and a run that
finished before is read back instead of trained again.
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


def _fold_label() -> str:
    spec = current_task_run.parameters["spec"]
    return f"fold {spec['fold'] + 1} seed {spec['seed']}"


@task(name="prepare-folds", cache_policy=NO_CACHE, retry_condition_fn=is_transient, task_run_name="prepare folds")
def prepare_folds_task(data_path: str, config: dict[str, Any]) -> dict[str, Any]:
    """Plan the folds and write each fold's features (computed once per file, normalized per fold)."""
    from rltrader.walkforward.data import prepare_folds

    folds, prepared = prepare_folds(data_path, parse_config(config, source="prepare-folds task"))
    return {"folds": [fold.to_dict() for fold in folds], "prepared": [each.to_dict() for each in prepared]}


@task(name="train-fold", cache_policy=NO_CACHE, retry_condition_fn=is_transient, task_run_name=_fold_label)
def train_fold_task(spec: dict[str, Any], settings_file: str | None = None, workers: int = 1,
                    console_level: int = logging.WARNING) -> dict[str, Any]:
    """Train one fold x seed (all optimizations, checkpoints, resume) and return its outcome as a dict.

    ``workers``: runs sharing the machine (performance mode shares its cores among them);
    ``console_level``: this worker's terminal logging (the flow prints one line per run)."""
    from rltrader.walkforward.runs import FoldRunSpec, run_fold

    set_console_level(console_level)
    relax_heap_trimming()  # Dask workers start with a heap setting that halves training speed
    run = FoldRunSpec.model_validate(spec)
    config = parse_config(run.config, source=f"fold {run.fold + 1} seed {run.seed}")
    return run_fold(run, [mode_switcher(config, run.run_dir, settings_file, workers)]).model_dump()
