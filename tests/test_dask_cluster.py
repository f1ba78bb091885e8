"""A walk-forward on a Dask cluster started as users start one, and nothing Prefect left behind after it.

``dask scheduler`` and two ``dask worker`` processes from distributed's own command line, a walk-forward
through the ``rltrader`` command on them, then the workers and the scheduler stopped with SIGTERM (what a
terminal's Ctrl-C or systemd sends): no Prefect server may be running anywhere afterwards, looked up by
command line and by the ``PREFECT_HOME`` this test gives every process it starts. A worker that ran a
Prefect task without the flow's API address used to start a temporary server of its own, which outlived it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from processes import prefect_servers

from rltrader.walkforward.runs import fold_run_dir

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLE = PROJECT_ROOT / "data" / "XAUUSDm_15min.csv"
DASK = Path(sys.executable).parent / "dask"


def _stop(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM to the process's group, as a terminal or systemd stops it; SIGKILL if it lingers."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _wait_for_workers(scheduler_file: Path, count: int, timeout: float = 90) -> tuple[str, set[int]]:
    """The scheduler's address once ``count`` workers joined it, and the workers' pids."""
    from distributed import Client

    deadline = time.monotonic() + timeout
    while not scheduler_file.is_file():
        if time.monotonic() > deadline:
            raise AssertionError("the Dask scheduler wrote no scheduler file")
        time.sleep(0.2)
    address = json.loads(scheduler_file.read_text())["address"]
    with Client(address, timeout=30) as client:
        client.wait_for_workers(count, timeout=max(1.0, deadline - time.monotonic()))
        return address, set(client.run(os.getpid).values())


@pytest.mark.slow
def test_a_walk_forward_on_a_dask_cli_cluster_leaves_no_prefect_server(tmp_path):
    home = tmp_path / "prefect-home"
    env = {**os.environ, "PREFECT_HOME": str(home), "PYTHONPATH": str(PROJECT_ROOT)}
    env.pop("PREFECT_API_URL", None)
    scheduler_file = tmp_path / "scheduler.json"
    started = dict(cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   start_new_session=True)
    scheduler = subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                  "--no-dashboard", "--scheduler-file", str(scheduler_file)], **started)
    workers = [subprocess.Popen([str(DASK), "worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1",
                                 "--no-dashboard", "--name", f"worker-{n}"], **started) for n in range(2)]
    try:
        address, worker_pids = _wait_for_workers(scheduler_file, 2)
        settings = tmp_path / "settings.json"
        settings.write_text(json.dumps({"performance_mode": "performance"}))
        walk = subprocess.run(
            [sys.executable, "-m", "rltrader", "walkforward", "--data_path", str(SAMPLE), "--folds", "2",
             "--seeds", "1", "2", "--parallel", "2", "--profile", "smoke", "--results_dir", str(tmp_path / "results"),
             "--cache_dir", str(tmp_path / "cache"), "--settings_file", str(settings), "--dask_address", address],
            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert walk.returncode == 0, walk.stderr[-2000:]
        root = tmp_path / "results" / f"walkforward-{SAMPLE.stem}"
        assert len(json.loads((root / "summary.json").read_text())["fold_table"]) == 4
        run_pids = {json.loads((fold_run_dir(root, fold, seed) / "performance_mode.json").read_text())["pid"]
                    for fold in range(2) for seed in (1, 2)}
        assert run_pids <= worker_pids  # every run trained on the cluster
    finally:
        for worker in workers:
            _stop(worker)
        _stop(scheduler)
    time.sleep(1.0)  # a server the workers started would have been orphaned by now, not stopped
    assert prefect_servers(home) == {}, "a Prefect server outlived the walk-forward and its cluster"
