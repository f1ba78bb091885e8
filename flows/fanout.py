"""What every flow that fans runs out shares: the worker pool, workers that report here, retries, names.

Training's candidates, walk-forward's fold x seed runs and tune's trials each train in a
subflow whose task runner is :func:`worker_pool` (a process pool on this machine, or an
existing Dask cluster), submit their task with ``task.submit``, and inside it call
:func:`workers_reporting_here` first. Retries sit on the task decorators; the numbers a
config sets (``orchestration.retries``, ``retry_delay_seconds``) are applied by
:func:`with_configured_retries`, the one place that reads them. Run names and artifact keys
come from :func:`run_name` and :func:`artifact_key`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from prefect import Task, get_client
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run as current_flow_run
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner
from pydantic import BaseModel

from rltrader.config import Config

TaskT = TypeVar("TaskT", bound=Task[..., Any])
ResultT = TypeVar("ResultT")


_IN_POOL_WORKER = {"flag": False}


def mark_pool_worker() -> None:
    """The initializer of every :class:`WorkerProcessPool` worker: this process is one of its workers."""
    _IN_POOL_WORKER["flag"] = True


class WorkerProcessPool(ProcessPoolTaskRunner):
    """Prefect's process pool for the fan-out subflows, except for what a worker re-enters.

    A task run in a worker process hydrates its flow's context there and enters a duplicate of the
    flow's task runner (so that a task could submit tasks of its own). Of a process pool that is a
    second pool per worker: a message queue, a forwarding thread and the semaphores behind them,
    which a worker stopped by a signal (Ctrl-C on a walk-forward or a study) leaves behind, and the
    resource tracker then warns about them after the command's last line. No training task submits
    tasks, so inside a worker the duplicate is a one-thread pool.

    :param max_workers: worker processes (runs trained at once)
    """

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__(max_workers=max_workers, initializer=mark_pool_worker)

    def duplicate(self) -> Any:
        if _IN_POOL_WORKER["flag"]:
            return ThreadPoolTaskRunner(max_workers=1)
        return super().duplicate()


def worker_pool(workers: int, dask_address: str | None) -> TaskRunner[Any]:
    """``workers`` processes on this machine by default; an existing Dask cluster when its address is given.

    :param workers: processes of the local pool (runs trained at once)
    :param dask_address: a Dask scheduler's address (``tcp://host:8786``); the cluster's workers
        train instead of a local pool
    """
    if dask_address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=dask_address)
    return WorkerProcessPool(max_workers=workers)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def workers_reporting_here() -> Iterator[None]:
    """Make every worker of the current flow's task runner report to this flow's API, none start a server.

    Without that, a worker (or a thread of one: Prefect's log and event senders) that finds no API
    address starts a temporary Prefect server of its own: seconds each, runs the UI never shows, and,
    on a Dask worker, a server that outlives the worker. So the address is pinned three ways: in the
    settings context the runners copy to their task runs; in the environment that process-pool
    workers (spawned at their first task, so after this) inherit, with temporary servers turned off;
    and on every Dask worker of the cluster through a worker plugin
    (:class:`flows.dask_workers.ReportToFlowApi`)."""
    url = PREFECT_API_URL.value()
    if not url:  # a flow on Prefect's own temporary server (tests): ask the client where it is
        with get_client(sync_client=True) as client:
            url = str(client.api_url)
    with temporary_settings({PREFECT_API_URL: url}), \
            _environment({"PREFECT_API_URL": url, "PREFECT_SERVER_EPHEMERAL_ENABLED": "false"}):
        context = FlowRunContext.get()
        runner = context.task_runner if context is not None else None
        if type(runner).__name__ == "DaskTaskRunner":
            from flows.dask_workers import ReportToFlowApi

            runner.client.register_plugin(ReportToFlowApi(url))  # type: ignore[attr-defined]
        yield


#: Seconds a broken worker pool waits for the stop signal that may have broken it.
STOP_ARRIVAL_S = 2.0


def settled(future: PrefectFuture[ResultT]) -> ResultT:
    """``future.result()``; a worker pool broken by the signal that stops this command surfaces as that stop.

    Ctrl-C or SIGTERM reaches the whole process group: the pool's workers may die of it and break the pool
    before the command's own handler interrupts this thread (``rltrader.runtime.interrupts``). The flow
    would then fail with ``BrokenProcessPool`` and Prefect would print its traceback. Waiting a moment in
    short sleeps lets the stop arrive and end the flow as a stop; a pool broken by anything else still
    raises, two seconds later."""
    try:
        return future.result()
    except BrokenProcessPool:
        deadline = time.monotonic() + STOP_ARRIVAL_S
        while time.monotonic() < deadline:
            time.sleep(0.05)  # the stop's KeyboardInterrupt is delivered between these sleeps
        raise


def with_configured_retries(task: TaskT, config: Config) -> TaskT:
    """``task`` with the retry count and delays of ``config.orchestration`` (its decorator holds the
    defaults and the retry condition); the one place a config's retry settings are read."""
    orchestration = config.orchestration
    return task.with_options(retries=orchestration.retries,  # type: ignore[return-value]
                             retry_delay_seconds=orchestration.retry_delay_seconds)


def artifact_key(prefix: str, name: str) -> str:
    """``prefix-name`` as a Prefect artifact key (lowercase letters, digits and dashes only)."""
    return f"{prefix}-" + "".join(char if char.isalnum() else "-" for char in name.lower())


def run_name(request_type: type[BaseModel], label: Callable[[Any], str], what: str) -> Callable[[], str]:
    """A ``flow_run_name`` callable: ``label(request)`` of the run's validated ``request`` parameter.

    :param request_type: the flow's request model
    :param label: the run's name from its request
    :param what: the flow's name, for a request the flow will refuse (its message says why)
    """

    def name() -> str:
        try:
            request = request_type.model_validate(current_flow_run.parameters.get("request") or {})
        except ValueError:  # refused before the run starts; its message says why, the name need not
            return f"{what} (invalid request)"
        return label(request)

    return name


__all__ = ["artifact_key", "run_name", "with_configured_retries", "worker_pool", "workers_reporting_here"]
