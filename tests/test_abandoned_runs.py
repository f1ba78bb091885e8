"""A run whose process died (``kill -9``, power loss) is not left "Running" in the user's Prefect UI: the
command that takes its run directory over marks it Crashed, with its open task and subflow runs, naming the
run that resumed the work, and that run's page links back. A run whose process is alive is never touched.

In this process on the test harness's server (the runs a killed command leaves are made through the API,
as the dead process had left them), and end to end by ``kill -9`` of ``rltrader train`` in
``tests/test_training.py``.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path
from uuid import UUID

import pytest
from prefect import flow, get_client, task
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId
from prefect.runtime import flow_run as current_flow_run
from prefect.states import Completed, Running

from rltrader.runtime.run_lock import HOLDER_FILE, LOCK_FILE, RunDirectoryInUse, run_directory_lock
from tasks.abandoned_runs import RESUMED_KEY, flow_run_owner, flow_run_page

pytestmark = pytest.mark.usefixtures("prefect_harness")


@flow(name="killed-command")
def _killed_command() -> None:
    """Stands for the command that was killed: only its runs' records are made, never run."""


@task(name="killed-step")
def _killed_step() -> None:
    """Stands for the killed command's tasks."""


@flow(name="resuming-command", flow_run_name="resuming {name}")
def _resuming_command(run_dir: str, name: str) -> str:
    """The same command again: takes the run directory, as every command's flow does; returns its run's id."""
    with run_directory_lock(run_dir, owner=flow_run_owner()):
        return str(current_flow_run.id)


def _left_by_a_killed_command(client, name: str) -> dict[str, UUID]:
    """The runs a command killed mid-work leaves behind: itself and a task Running, a task Completed, and a
    subflow (with its own task) Running."""
    run = client.create_flow_run(_killed_command, name=name, state=Running())
    running = client.create_task_run(_killed_step, run.id, "0", name="step running", state=Running())
    finished = client.create_task_run(_killed_step, run.id, "1", name="step finished", state=Completed())
    subflow_task = client.create_task_run(_killed_step, run.id, "2", name="subflow call", state=Running())
    subflow = client.create_flow_run(_killed_command, name=f"sub of {name}", parent_task_run_id=subflow_task.id,
                                     state=Running())
    sub_step = client.create_task_run(_killed_step, subflow.id, "0", name="sub step", state=Running())
    return {"run": run.id, "running": running.id, "finished": finished.id, "subflow_task": subflow_task.id,
            "subflow": subflow.id, "sub_step": sub_step.id}


def _holder_file(run_dir: Path, flow_run_id: UUID, pid: int) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / HOLDER_FILE).write_text(json.dumps({
        "pid": pid, "host": socket.gethostname(), "since": "2026-12-06T00:00:00+00:00",
        "command": "rltrader train --data_path data/XAUUSDm_15min.csv", "flow_run_id": str(flow_run_id),
        "flow_run_name": "killed"}))


def test_the_resuming_command_crashes_the_dead_run_and_what_it_left_open_and_links_back(tmp_path):
    run_dir = tmp_path / "42"
    with get_client(sync_client=True) as client:
        left = _left_by_a_killed_command(client, "killed train")
    _holder_file(run_dir, left["run"], pid=999_999)  # as a kill -9 leaves it: the kernel freed the lock

    resumed_id = UUID(_resuming_command(str(run_dir), "train"))

    with get_client(sync_client=True) as client:
        dead = client.read_flow_run(left["run"])
        resumed = client.read_flow_run(resumed_id)
        states = {key: (client.read_flow_run(run_id) if key in ("run", "subflow")
                        else client.read_task_run(run_id)).state for key, run_id in left.items()}
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[resumed_id])))
        logs = [log.message for log in client.read_logs(log_filter=LogFilter(
            flow_run_id=LogFilterFlowRunId(any_=[left["run"]])))]
    assert resumed.state.is_completed() and resumed.name == "resuming train"
    assert {key: state.type.value for key, state in states.items()} == {
        "run": "CRASHED", "running": "CRASHED", "finished": "COMPLETED", "subflow_task": "CRASHED",
        "subflow": "CRASHED", "sub_step": "CRASHED"}  # a task that had finished keeps its state
    message = dead.state.message
    assert f"pid 999999 on {socket.gethostname()}" in message
    assert f"resumed by flow run 'resuming train' ({resumed_id})" in message
    assert states["sub_step"].message == message
    assert logs == [f"{message} Its page: {flow_run_page(resumed_id)}"]  # its Logs tab says so too
    [artifact] = artifacts
    assert artifact.key == RESUMED_KEY and f"[killed train]({flow_run_page(left['run'])})" in artifact.data
    assert "(5 runs in all)" in artifact.data  # the run, 2 of its tasks, the subflow and its task


def test_a_run_that_had_ended_keeps_its_state_and_a_run_elsewhere_is_left_alone(tmp_path):
    with get_client(sync_client=True) as client:
        ended = client.create_flow_run(_killed_command, name="ended", state=Completed())
    _holder_file(tmp_path / "a", ended.id, pid=999_999)
    _resuming_command(str(tmp_path / "a"), "a")
    missing = UUID("00000000-0000-4000-8000-000000000001")  # a run of another server's database
    _holder_file(tmp_path / "b", missing, pid=999_999)
    assert _resuming_command(str(tmp_path / "b"), "b")  # resumes all the same
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(ended.id).state.is_completed()


HOLD_FOR_A_RUN = ("import json, os, socket, sys, time\nfrom filelock import FileLock\n"
                  "lock = FileLock(os.path.join(sys.argv[1], 'run.lock'), timeout=0)\nlock.acquire()\n"
                  "open(os.path.join(sys.argv[1], 'run.lock.json'), 'w').write(json.dumps({'pid': os.getpid(), "
                  "'host': socket.gethostname(), 'flow_run_id': sys.argv[2]}))\nprint('held', flush=True)\n"
                  "time.sleep(120)\n")


def test_a_run_whose_process_is_alive_is_never_marked(tmp_path):
    run_dir = tmp_path / "42"
    run_dir.mkdir()
    with get_client(sync_client=True) as client:
        alive = client.create_flow_run(_killed_command, name="alive", state=Running())
    holder = subprocess.Popen([sys.executable, "-c", HOLD_FOR_A_RUN, str(run_dir), str(alive.id)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirectoryInUse):
            _resuming_command(str(run_dir), "too early")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(alive.id).state.is_running()
    assert (run_dir / LOCK_FILE).is_file()
