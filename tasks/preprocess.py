"""Cached preprocessing as a Prefect task.

Prefect's default cache policy hashes the *path string* and is scoped to one flow run;
here the key is the file's content hash + the settings that shape the features + the
feature-code version (``rltrader.features.preparation.preprocessing_key``), and the record lives
in ``<cache_dir>/prefect`` so a hit survives new processes and servers. The cached value
is the small :class:`~rltrader.features.preparation.PreparedData` record; the parquet it points
to is checked before trusting the record, and a missing one is rebuilt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext

from rltrader.config import Config, parse_config
from rltrader.features.cache import PREFECT_RECORDS_DIR, FeatureStore
from rltrader.features.preparation import PreparedData, preprocess, preprocessing_key

CACHE_KEY_PREFIX = "preprocess-"


def preprocessing_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    config = parse_config(parameters["config"], source="preprocess task")
    return CACHE_KEY_PREFIX + preprocessing_key(parameters["data_path"], config)


@task(
    name="preprocess",
    task_run_name="preprocess {data_path}",
    cache_key_fn=preprocessing_cache_key,
    persist_result=True,
    result_serializer="json",
)
def preprocess_task(data_path: str, config: dict[str, Any], use_cache: bool = True) -> dict[str, Any]:
    """Load, validate and featurize ``data_path``; returns :meth:`PreparedData.to_dict`.

    A rejected file must leave the cache as it was. Prefect persists a failed task's exception
    as a result record in the task's result storage, here ``<cache_dir>/prefect``, whenever the
    run persists results (this one must, for the cache); so a failing run turns persistence off
    for itself before the exception leaves. The exception still reaches the caller and the UI
    through the task's state."""
    try:
        return preprocess(data_path, parse_config(config, source="preprocess task"), use_cache=use_cache).to_dict()
    except Exception:
        context = TaskRunContext.get()
        if context is not None:
            context.persist_result = False
        raise


#: The same work with Prefect's cache off (the original method, ``--no-cache_environments``): a task of its own,
#: as ``with_options`` cannot take the cache key function away (and Prefect warns twice when both are set).
uncached_preprocess_task = task(preprocess_task.fn, name="preprocess", task_run_name="preprocess {data_path}",
                                cache_policy=NO_CACHE, persist_result=False)


def preprocessing_task(data_path: str, config: Config, use_cache: bool) -> Any:
    """The task to run: Prefect's cache under the cache directory, refreshed when its parquet is gone; or the
    uncached task."""
    if not use_cache:
        return uncached_preprocess_task
    configured = preprocess_task.with_options(result_storage=Path(config.cache.dir) / PREFECT_RECORDS_DIR)
    if FeatureStore(config.cache.dir).lookup(preprocessing_key(data_path, config)) is None:
        configured = configured.with_options(refresh_cache=True)
    return configured


def run_preprocessing(data_path: str | Path, config: Config, use_cache: bool | None = None) -> PreparedData:
    """Call :func:`preprocess_task` with the right cache behaviour and report hit or miss.

    - cache off: no Prefect cache record is read or written, and features are recomputed;
    - record present but its parquet deleted or damaged: ``refresh_cache`` rebuilds both;
    - otherwise Prefect serves the record (state ``Cached``) without running the task.
    """
    use_cache = config.optimizations.cache_environments if use_cache is None else use_cache
    data_path = str(data_path)
    configured = preprocessing_task(data_path, config, use_cache)
    state = configured(data_path, config.model_dump(mode="json"), use_cache, return_state=True)
    prepared = PreparedData.from_dict(state.result())
    hit = prepared.cache_hit or state.name == "Cached"
    return PreparedData(prepared.parquet_path, prepared.metadata, cache_hit=hit)
