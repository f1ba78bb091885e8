"""Parallel candidates: forks that train one iteration each, and adoption of the best.

The domain part (fork, adopt) runs in-process with scripted scores; the flow part runs
two candidates per iteration on a local Dask cluster of two worker processes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rltrader.config import load_config
from rltrader.training.candidates import SEED_STRIDE, adopt_best_candidate, candidate_dir, peak_score, train_candidate
from rltrader.training.spec import RunSpec

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "XAUUSDm_15min.csv"


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    cache = tmp_path_factory.mktemp("candidates-cache")
    return load_config().with_profile("smoke").with_overrides({"cache.dir": str(cache), "training.iterations": 2})


def _spec(config, run_dir):
    return RunSpec(config=config, data_path=str(SAMPLE), run_dir=str(run_dir), follow_performance_mode=False)


def test_candidates_fork_train_apart_and_the_best_is_adopted(tiny_config, tmp_path):
    run_dir = tmp_path / "run"
    first = [train_candidate(_spec(tiny_config, run_dir), 0, candidate) for candidate in (0, 1)]
    assert [result["seed"] for result in first] == [42, 42 + SEED_STRIDE]
    assert not (run_dir / "run_state.json").exists()  # nothing reaches the run before adoption
    winner = max(first, key=lambda result: result["peak_score"])
    winner_model = (Path(winner["candidate_dir"]) / "best_model.zip").read_bytes()
    record = adopt_best_candidate(run_dir, 0, first, keep=1)
    assert record["candidate"] == winner["candidate"]
    assert [entry["peak_score"] for entry in record["candidates"]] == [result["peak_score"] for result in first]
    best = json.loads((run_dir / "best_model.json").read_text())
    assert best["score"] == pytest.approx(winner["peak_score"])
    assert (run_dir / "best_model.zip").read_bytes() == winner_model
    # keep=1: the winner's fork stays on disk, the loser's is pruned
    assert sorted(path.name for path in candidate_dir(run_dir, 0, 0).parent.iterdir()) == [f"cand_{winner['candidate']}"]

    # iteration 2 forks from the adopted state: both candidates warm-start from that best model
    second = [train_candidate(_spec(tiny_config, run_dir), 1, candidate) for candidate in (0, 1)]
    assert all(result["warm_started"] for result in second)
    assert candidate_dir(run_dir, 1, 0) != candidate_dir(run_dir, 0, 0)
    adopt_best_candidate(run_dir, 1, second)  # keep=0, the default: only the figures stay
    assert not candidate_dir(run_dir, 1, 0).parent.exists()
    state = json.loads((run_dir / "run_state.json").read_text())
    assert [entry["iteration"] for entry in state["iterations"]] == [0, 1]
    assert state["best"]["score"] == pytest.approx(max(peak_score(r) for r in first + second))
    # adopting again (a retried flow) changes nothing
    assert adopt_best_candidate(run_dir, 1, second)["candidate"] == state["iterations"][1]["candidate"]


def test_a_finished_candidate_is_not_trained_again(tiny_config, tmp_path):
    run_dir = tmp_path / "run"
    once = train_candidate(_spec(tiny_config, run_dir), 0, 1)
    model = Path(once["candidate_dir"]) / "iterations" / "iter_00" / "model.zip"
    stamp = model.stat().st_mtime_ns
    again = train_candidate(_spec(tiny_config, run_dir), 0, 1)
    assert again["wall_seconds"] == once["wall_seconds"] and model.stat().st_mtime_ns == stamp


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_parallel_candidates_on_a_local_dask_cluster(tmp_path):
    from distributed import LocalCluster

    from flows.train import train_pipeline
    from rltrader.jobs.requests import TrainRequest

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        request = TrainRequest(data_path=str(SAMPLE), profile="smoke", results_dir=str(tmp_path / "results"),
                               settings_file=str(tmp_path / "settings.json"), cache_dir=str(tmp_path / "cache"),
                               parallel_candidates=2, dask_address=cluster.scheduler_address)
        state = train_pipeline(request, return_state=True)
        workers = {worker["id"] for worker in cluster.scheduler_info["workers"].values()}
    assert state.is_completed(), state.message
    assert len(workers) == 2
    run_dir = tmp_path / "results" / "42"
    records = json.loads((run_dir / "run_state.json").read_text())["iterations"]
    assert len(records) == 2
    for record in records:
        scores = {entry["candidate"]: entry["peak_score"] for entry in record["candidates"]}
        assert sorted(scores) == [0, 1]
        assert record["candidate"] == max(scores, key=scores.get)
    assert not (run_dir / "candidates").exists() or not any((run_dir / "candidates").iterdir())  # pruned
    summary = state.result()
    assert summary["best_model"]["score"] == pytest.approx(
        max(entry["peak_score"] for record in records for entry in record["candidates"]))


@pytest.mark.parametrize("environment, expected", [({"MALLOC_TRIM_THRESHOLD_": "65536"}, "True True"),
                                                    ({}, "False False")])
def test_a_dask_nanny_heap_setting_is_undone_once_per_process(environment, expected):
    import os
    import subprocess
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("glibc's mallopt is a Linux matter")
    script = ("from rltrader.runtime.allocator import relax_heap_trimming\n"
              "print(relax_heap_trimming(), relax_heap_trimming())\n")
    env = {key: value for key, value in os.environ.items() if key != "MALLOC_TRIM_THRESHOLD_"}
    output = subprocess.run([sys.executable, "-c", script], env={**env, **environment}, capture_output=True,
                            text=True, check=True).stdout
    assert output.strip() == expected


@pytest.mark.parametrize("environment, expected", [({}, "True True"), ({"MALLOC_MMAP_THRESHOLD_": "1048576"}, "False")])
def test_training_processes_fix_the_heap_thresholds_unless_the_user_set_them(environment, expected):
    import os
    import subprocess
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("glibc's mallopt is a Linux matter")
    script = ("from rltrader.runtime.allocator import fix_heap_thresholds\n"
              "first = fix_heap_thresholds()\n"
              "print(first, fix_heap_thresholds()) if first else print(first)\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    output = subprocess.run([sys.executable, "-c", script], env={**env, **environment}, capture_output=True,
                            text=True, check=True).stdout
    assert output.strip() == expected
