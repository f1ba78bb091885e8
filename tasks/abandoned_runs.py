"""Closing the Prefect run a killed command left open, when the same command resumes its work.

A command stopped by SIGTERM or Ctrl-C marks its own run Crashed. One killed with ``kill -9``, by
the out-of-memory killer or a power cut cannot: its flow run (and the task and subflow runs it had
open) would show "Running" in the UI for ever, next to the run that resumed and finished the work.

The run lock (:mod:`rltrader.runtime.run_lock`) already knows when that happened: the next command
takes the lock over from a holder that is gone. :class:`FlowRunOwner` records the holder's flow run
in the lock's holder file and, on a takeover, sets that run and everything it had open to Crashed
with a message naming the run that resumed it (the last line of its Logs tab says the same); the
resuming run's page gets a markdown artifact (``resumed-from``) that links back. Only runs of a dead
holder are touched: a live one keeps the lock, so it is never handed over, and a run already in a
final state keeps its state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect import get_client, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.actions import LogCreate
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
    TaskRunFilter,
    TaskRunFilterState,
    TaskRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.context import FlowRunContext
from prefect.exceptions import MissingContextError, ObjectNotFound
from prefect.states import Crashed

logger = logging.getLogger(__name__)

OPEN_STATES = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED, StateType.CANCELLING]
"""States a run leaves only by ending: a run in one of them whose process is gone never will."""

RESUMED_KEY = "resumed-from"


def flow_run_page(flow_run_id: UUID | str) -> str:
    """The run's page in the Prefect UI, relative to the UI's address (so it works on any server
    that shows this database: the command's temporary one left no UI, ``rltrader serve``'s has one)."""
    return f"/runs/flow-run/{flow_run_id}"


@dataclass(frozen=True)
class FlowRunOwner:
    """The flow run a command's process works for, as the run lock records and tells it.

    :param flow_run_id: the run that holds the lock
    :param flow_run_name: its name, as the UI lists it
    """

    flow_run_id: UUID
    flow_run_name: str

    def details(self) -> dict[str, Any]:
        return {"flow_run_id": str(self.flow_run_id), "flow_run_name": self.flow_run_name}

    def took_over(self, previous: dict[str, Any]) -> None:
        """Close the dead holder's run; a failure to reach it is a warning, never a reason not to resume."""
        dead = previous.get("flow_run_id")
        if not dead or dead == str(self.flow_run_id):
            return
        try:
            close_abandoned_run(UUID(dead), previous, self)
        except Exception as error:  # noqa: BLE001 - the work resumes whatever the UI's record says
            _logger().warning("Could not mark flow run %s Crashed (%s); it may still show Running in the UI",
                              dead, error)


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The run's logger (its lines show on the run's page in the UI), else this module's."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logger


def flow_run_owner() -> FlowRunOwner | None:
    """The flow run this code runs in (a flow's body, or a task called from it in this process); None outside one."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    return FlowRunOwner(context.flow_run.id, context.flow_run.name)


def crash_message(previous: dict[str, Any], resumed_by: FlowRunOwner) -> str:
    """What the dead run's page says: what happened to it, that its work was kept, and which run took it on."""
    process = f"pid {previous.get('pid')} on {previous.get('host')}" if previous.get("pid") else "its process"
    return (f"The command's process ({process}) died without ending this run (kill -9, out of memory or power "
            f"loss). Its work up to the last checkpoint was kept and resumed by flow run "
            f"'{resumed_by.flow_run_name}' ({resumed_by.flow_run_id}).")


def close_abandoned_run(flow_run_id: UUID, previous: dict[str, Any], resumed_by: FlowRunOwner) -> list[str]:
    """Set ``flow_run_id`` and its open task and subflow runs to Crashed, and link to it from ``resumed_by``'s page.

    :param flow_run_id: the run the dead holder worked for
    :param previous: the dead holder's record (pid, host, since, command)
    :param resumed_by: the run that took the lock over
    :return: the names of the runs marked Crashed; empty if none was open
    """
    message = crash_message(previous, resumed_by)
    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(flow_run_id)
        except ObjectNotFound:
            _logger().info("The run %s left by %s is not in this Prefect server's database; nothing to close",
                           flow_run_id, previous.get("command", "the previous command"))
            return []
        closed = _crash_open_runs(client, run, message)
        if closed:  # the last line of its Logs tab, where a person looks for why it ended
            client.create_logs([LogCreate(name="rltrader.resume", level=logging.WARNING, flow_run_id=run.id,
                                          timestamp=datetime.now(UTC),
                                          message=f"{message} Its page: {flow_run_page(resumed_by.flow_run_id)}")])
    if closed:
        _logger().info("Flow run '%s' (%s) was left open by a process that died: marked Crashed, with the task and "
                       "subflow runs it had open (%d runs in all). Its work resumes here.",
                       run.name, run.id, len(closed))
    state = (f"It is now **Crashed**, with the task and subflow runs it had open ({len(closed)} runs in all)."
             if closed else f"It had ended already ({run.state_name}).")
    create_markdown_artifact(
        markdown="\n".join([
            f"This run resumes the work of flow run [{run.name}]({flow_run_page(run.id)}), whose process died "
            f"without ending it (kill -9, out of memory or power loss). {state}", "",
            f"- process: pid {previous.get('pid')} on {previous.get('host')}, since {previous.get('since')}",
            f"- command: `{previous.get('command', '')}`"]),
        key=RESUMED_KEY, description=f"Resumes flow run {run.name}")
    return closed


def _crash_open_runs(client: Any, run: FlowRun, message: str) -> list[str]:
    """Crash ``run`` if it is open, then its open task runs and, recursively, its subflow runs' open ones."""
    closed: list[str] = []
    if run.state is not None and run.state.type in OPEN_STATES:
        client.set_flow_run_state(run.id, Crashed(message=message), force=True)
        closed.append(run.name)
    open_tasks = TaskRunFilter(state=TaskRunFilterState(type=TaskRunFilterStateType(any_=OPEN_STATES)))
    of_this_run = FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
    seen: set[UUID] = set()
    while True:  # the API returns at most 200 at a time; each one crashed leaves the filter
        batch = [task_run for task_run in client.read_task_runs(flow_run_filter=of_this_run, task_run_filter=open_tasks)
                 if task_run.id not in seen]
        if not batch:
            break
        for task_run in batch:
            seen.add(task_run.id)
            client.set_task_run_state(task_run.id, Crashed(message=message), force=True)
            closed.append(task_run.name)
    offset = 0
    while children := client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id])),
            offset=offset):
        for child in children:
            closed += _crash_open_runs(client, child, message)
        offset += len(children)
    return closed


__all__ = ["FlowRunOwner", "close_abandoned_run", "crash_message", "flow_run_owner", "flow_run_page"]
