"""Walk-forward: fold planning, per-fold normalization, warm-started folds, resume after a kill, learning.

Budgets are tiny (the ``smoke`` profile) except in the known-answer test, which needs
enough training to learn; what is asserted is behaviour, never speed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from prefect_records import prefect_flow_runs

from rltrader.app.cli import main
from rltrader.config import SplitConfig, WalkForwardConfig, load_config
from rltrader.data import load_bars
from rltrader.data.synthetic import KnownAnswerMarket, write_market
from rltrader.errors import DataError, UserInputError
from rltrader.features.cache import FeatureStore
from rltrader.training.run_state import RunState
from rltrader.training.spec import RunSpec
from rltrader.walkforward.data import prepare_folds
from rltrader.walkforward.folds import plan_folds
from rltrader.walkforward.runs import FoldRunSpec, check_plan, fold_run_dir, run_fold, walk_plan

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "XAUUSDm_15min.csv"


def _config(cache: Path, **walk: object):
    overrides = {"cache.dir": str(cache), "walk_forward.profile": "smoke", "walk_forward.folds": 3}
    overrides.update({f"walk_forward.{key}": value for key, value in walk.items()})
    return load_config().with_overrides(overrides)


WALKS = [
    {"folds": folds, "scheme": scheme} for folds in (1, 3, 8) for scheme in ("rolling", "anchored")
] + [
    {"folds": None, "train_bars": 800, "test_bars": 200, "scheme": "rolling"},
    {"folds": 3, "train_bars": 800, "test_bars": 250, "validation_bars": 150, "scheme": "anchored"},
]


@pytest.mark.parametrize("walk", WALKS, ids=lambda walk: "-".join(f"{k}={v}" for k, v in walk.items()))
@pytest.mark.parametrize("gap", [1, 7])
def test_folds_never_test_on_their_own_training_rows_and_tile_the_end_of_the_file(walk, gap):
    rows = 5_000
    folds = plan_folds(rows, WalkForwardConfig(**walk), SplitConfig(), gap, window=1)
    assert len(folds) == walk["folds"] if walk["folds"] else len(folds) == (rows - 800 - 200 - 2 * gap) // 200
    for fold in folds:
        train, validation, test = (set(range(*span)) for span in (fold.train, fold.validation, fold.test))
        assert not train & test and not train & validation and not validation & test
        assert fold.train[1] + gap <= fold.validation[0] and fold.validation[1] + gap <= fold.test[0]
        assert min(len(train), len(validation), len(test)) >= 100
        assert fold.train[0] == 0 if walk["scheme"] == "anchored" else fold.train[1] - fold.train[0] == \
            folds[0].train[1] - folds[0].train[0]
    assert all(before.test[1] == after.test[0] for before, after in zip(folds, folds[1:], strict=False))  # back to back
    assert folds[-1].test[1] == rows  # the most recent bars are tested


def test_folds_that_do_not_fit_are_refused_saying_what_to_change():
    with pytest.raises(DataError, match="walk_forward: 80 folds .* lower walk_forward.folds"):
        plan_folds(5_000, WalkForwardConfig(folds=80), SplitConfig(), 1, window=1)
    with pytest.raises(DataError, match="need 4,702 bars, the file has 3,000"):
        plan_folds(3_000, WalkForwardConfig(folds=8, train_bars=2000, test_bars=300), SplitConfig(), 1, window=1)


def test_a_bad_fold_plan_exits_2_in_one_line_and_writes_nothing(tmp_path, capsys):
    code = main(["walkforward", "--data_path", str(SAMPLE), "--folds", "500", "--results_dir", str(tmp_path / "r"),
                 "--cache_dir", str(tmp_path / "cache")])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "lower walk_forward.folds" in error
    assert not (tmp_path / "cache").exists() and not (tmp_path / "r").exists()


def test_a_results_directory_planned_otherwise_is_refused_naming_what_differs(tmp_path, capsys):
    flags = ["walkforward", "--data_path", str(SAMPLE), "--folds", "2", "--name", "x", "--results_dir",
             str(tmp_path), "--cache_dir", str(tmp_path / "cache"), "--profile", "smoke"]
    folds, prepared = prepare_folds(SAMPLE, _config(tmp_path / "cache", folds=2))
    plan = walk_plan(_config(tmp_path / "cache", folds=2), [fold.to_dict() for fold in folds],
                     prepared[0].metadata["source"]["sha256"])
    check_plan(tmp_path / "walkforward-x", plan)
    assert main([*flags, "--warm_start_folds"]) == 2
    assert "holds a walk-forward with other warm start folds (False, now True)" in capsys.readouterr().err
    assert main([*flags[:4], "3", *flags[5:]]) == 2
    assert "with other folds" in capsys.readouterr().err
    # the folds' training budget is part of the plan: folds of two budgets would be two experiments in one table
    assert main(flags[:-2]) == 2
    assert "holds a walk-forward with other profile ('smoke', now 'none')" in capsys.readouterr().err


def test_a_plan_written_before_the_profile_joined_it_reads_as_the_quick_folds_it_trained(tmp_path):
    folds, prepared = prepare_folds(SAMPLE, _config(tmp_path / "cache", folds=2))
    root, sha = tmp_path / "walkforward-old", prepared[0].metadata["source"]["sha256"]
    old = walk_plan(_config(tmp_path / "cache", folds=2, profile="quick"), [fold.to_dict() for fold in folds], sha)
    root.mkdir()
    (root / "plan.json").write_text(json.dumps({key: value for key, value in old.items() if key != "profile"}))
    check_plan(root, old)  # resumed as it was trained: on quick
    (root / "plan.json").write_text(json.dumps({key: value for key, value in old.items() if key != "profile"}))
    with pytest.raises(UserInputError, match="other profile \\('quick', now 'none'\\)"):
        check_plan(root, walk_plan(_config(tmp_path / "cache", folds=2, profile=None),
                                   [fold.to_dict() for fold in folds], sha))


def test_each_folds_statistics_come_from_its_own_training_rows(tmp_path):
    config = _config(tmp_path / "cache")
    folds, prepared = prepare_folds(SAMPLE, config)
    assert [each.metadata["fold"]["index"] for each in prepared] == [0, 1, 2]

    # every bar after fold 1's training window changes (prices +10%): fold 1's statistics must not
    bars = load_bars(SAMPLE).bars
    raw = pd.read_csv(SAMPLE)
    assert len(raw) == len(bars)
    cut = bars.index.get_loc(pd.Timestamp(prepared[0].metadata["splits"]["train"]["end"])) + 1
    for column in ("open", "high", "low", "close"):
        raw.loc[cut:, column] = (raw.loc[cut:, column] * 1.1).round(2)
    altered = tmp_path / "altered.csv"
    raw.to_csv(altered, index=False)
    refolds, reprepared = prepare_folds(altered, config.with_overrides({"cache.dir": str(tmp_path / "cache2")}))

    assert refolds == folds
    assert reprepared[0].metadata["features"]["normalization"] == prepared[0].metadata["features"]["normalization"]
    columns = prepared[0].feature_columns
    train = slice(*prepared[0].split_rows("train"))
    pd.testing.assert_frame_equal(reprepared[0].load()[columns].iloc[train], prepared[0].load()[columns].iloc[train],
                                  check_exact=True)
    assert reprepared[2].metadata["features"]["normalization"] != prepared[2].metadata["features"]["normalization"]


def test_features_are_computed_once_per_file_and_each_fold_is_cached(tmp_path):
    config = _config(tmp_path / "cache")
    _, first = prepare_folds(SAMPLE, config)
    entries = FeatureStore(tmp_path / "cache").contents()
    assert len(entries) == 1 + 3  # the raw features once, a normalized file per fold
    _, again = prepare_folds(SAMPLE, config)
    assert all(each.cache_hit for each in again) and not any(each.cache_hit for each in first)
    assert FeatureStore(tmp_path / "cache").contents() == entries


def test_a_warm_started_fold_loads_the_previous_folds_best_model(tmp_path, monkeypatch):
    config = _config(tmp_path / "cache", folds=2)
    _, prepared = prepare_folds(SAMPLE, config)
    run_config = config.with_profile("smoke")
    root = tmp_path / "walk"

    def spec(fold: int, initial_model: str | None) -> FoldRunSpec:
        return FoldRunSpec(fold=fold, seed=42, run=RunSpec(
            config=run_config, data_path=str(SAMPLE), prepared=prepared[fold], run_dir=str(fold_run_dir(root, fold, 42)),
            initial_model=initial_model, follow_performance_mode=False))

    first = run_fold(spec(0, None))
    previous_best = fold_run_dir(root, 0, 42) / "best_model.zip"
    loaded: list[Path] = []
    import rltrader.training.trainer as trainer_module

    real_load = trainer_module.load_for_training
    monkeypatch.setattr(trainer_module, "load_for_training",
                        lambda path, *args, **kwargs: loaded.append(Path(path)) or real_load(path, *args, **kwargs))
    second = run_fold(spec(1, str(previous_best)))

    assert loaded[0] == previous_best  # the first thing fold 2 loads is fold 1's best model
    first_state = RunState.read(fold_run_dir(root, 0, 42) / "run_state.json")
    second_state = RunState.read(fold_run_dir(root, 1, 42) / "run_state.json")
    assert not first_state.iterations[0].warm_started and second_state.iterations[0].warm_started
    assert second.warm_started_from == str(previous_best) and first.warm_started_from is None
    assert second.test_start > first.test_end


@pytest.mark.parametrize(("written", "workers"), [("performance", 3), ("quiet", 1), (None, 1)])
def test_runs_go_in_parallel_in_performance_mode_only(tmp_path, written, workers):
    from flows.walkforward import _workers_now

    settings = tmp_path / "settings.json"
    if written:
        settings.write_text(json.dumps({"performance_mode": written}))
    assert _workers_now(_config(tmp_path / "cache", parallel=3), settings) == workers


def test_warm_started_folds_wait_for_the_previous_fold_of_their_seed():
    from rltrader.walkforward.schedule import FoldQueue

    specs = {(fold, seed): None for fold in range(3) for seed in (1, 2)}
    warm, cold = FoldQueue(specs, warm=True), FoldQueue(dict(specs), warm=False)
    assert cold.ready() == sorted(specs)
    assert warm.ready() == [(0, 1), (0, 2)]
    warm.start((0, 1))
    warm.finish((0, 1), None)
    assert warm.ready() == [(0, 2), (1, 1)]


@pytest.mark.slow
def test_a_killed_walk_forward_resumes_without_retraining_finished_folds(tmp_path):
    """SIGKILL of the whole command (its process group) once the first fold is done, then the same command."""
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"performance_mode": "quiet"}))
    command = [sys.executable, "-m", "rltrader", "walkforward", "--data_path", str(SAMPLE), "--folds", "3",
               "--profile", "smoke", "--name", "killed", "--results_dir", str(tmp_path / "results"),
               "--cache_dir", str(tmp_path / "cache"), "--settings_file", str(settings)]
    root = tmp_path / "results" / "walkforward-killed"
    first_done = fold_run_dir(root, 0, 42) / "optimization_summary.json"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home")}  # both commands' runs, read back below
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                               env=env)
    deadline = time.monotonic() + 240
    while not first_done.is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert first_done.is_file() and process.poll() is None
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = {path: path.stat().st_mtime_ns for path in fold_run_dir(root, 0, 42).rglob("*") if path.is_file()}
    assert not (root / "summary.json").exists()

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=400, env=env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming, 1 runs already done" in rerun.stderr + rerun.stdout
    runs = prefect_flow_runs(tmp_path / "prefect-home" / "prefect.db")  # the killed run and its subflow: Crashed
    assert [(run["name"], run["state"]) for run in runs] == [
        ("walk-forward killed", "CRASHED"), ("runs of walk-forward killed", "CRASHED"),
        ("walk-forward killed", "COMPLETED"), ("runs of walk-forward killed", "COMPLETED")], runs
    assert "resumed by flow run 'walk-forward killed'" in runs[1]["message"]
    assert {path: path.stat().st_mtime_ns for path in finished} == finished  # fold 1 was not trained again
    summary = json.loads((root / "summary.json").read_text())
    assert [row["fold"] for row in summary["fold_table"]] == [1, 2, 3]
    stitched = pd.read_parquet(root / "stitched_equity.parquet")
    assert stitched["timestamp"].is_monotonic_increasing and stitched["fold"].tolist() == sorted(stitched["fold"])
    assert len(stitched) == summary["aggregate"]["stitched_bars"] and (root / "stitched_equity.png").is_file()
    assert "Stitched out-of-sample Sharpe" in rerun.stdout
    assert summary["account"]["sizing"] == "equity_fraction" and summary["account"]["instrument"]["symbol"] == "XAUUSD"
    assert "Account USD 10,000 trading XAUUSD" in rerun.stdout


@pytest.mark.slow
def test_on_a_momentum_market_a_four_fold_walk_forward_captures_edge_in_most_folds(prefect_harness, tmp_path):
    from flows.walkforward import walk_forward
    from rltrader.jobs.requests import WalkForwardRequest

    market = tmp_path / "momentum.csv"
    write_market(KnownAnswerMarket(kind="momentum", bars=12_000, seed=5, phi=0.3), market)
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"performance_mode": "performance"}))
    result = walk_forward(WalkForwardRequest(data_path=str(market), folds=4, parallel=2, profile="bench",
                                             results_dir=str(tmp_path / "results"), cache_dir=str(tmp_path / "cache"),
                                             settings_file=str(settings)))
    edges = [row["edge"] for row in result["fold_table"]]
    aggregate = result["aggregate"]
    assert aggregate["fraction_capturing_edge"] >= 0.75, edges  # 3 of 4 folds or more
    assert aggregate["edge_captured_mean"] > 0.1 and aggregate["stitched_sharpe_ci"][0] > 0, result["aggregate"]
    assert aggregate["oracle"]["sharpe"] > aggregate["stitched_sharpe"]  # the planted edge bounds what is learnable


@pytest.mark.slow
def test_runs_fan_out_on_a_dask_cluster(prefect_harness, tmp_path):
    from distributed import Client, LocalCluster

    from flows.walkforward import walk_forward
    from rltrader.jobs.requests import WalkForwardRequest

    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"performance_mode": "performance"}))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        worker_pids = set(client.run(os.getpid).values())
        result = walk_forward(WalkForwardRequest(data_path=str(SAMPLE), folds=2, seeds=[1, 2], parallel=2,
                                                 profile="smoke", results_dir=str(tmp_path / "results"),
                                                 cache_dir=str(tmp_path / "cache"), settings_file=str(settings),
                                                 dask_address=cluster.scheduler_address))
    root = Path(result["root"])
    run_pids = {json.loads((fold_run_dir(root, fold, seed) / "performance_mode.json").read_text())["pid"]
                for fold in range(2) for seed in (1, 2)}
    assert run_pids <= worker_pids and len(run_pids) == 2  # every run trained on the cluster, on both workers
    assert len(result["fold_table"]) == 4
