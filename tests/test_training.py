"""The iterative trainer: each optimization on and off, resume after a crash, reproducibility.

Budgets are tiny (the ``smoke`` profile: 32-unit LSTM, 512-timestep rollouts), so a run
takes seconds; what is asserted is behaviour (timesteps, reloads, stops, hyperparameters
in the optimizer, files), never speed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from prefect_records import prefect_flow_runs

from rltrader.app.cli import main
from rltrader.config import load_config
from rltrader.errors import ConfigError, UserInputError
from rltrader.training.budget import iteration_budget, rounded_to_rollouts
from rltrader.training.checkpoints import CheckpointStore
from rltrader.training.convergence import ConvergenceTracker
from rltrader.training.phases import hyperparameters_for, phase_for
from rltrader.training.trainer import Trainer
from rltrader.training.validation import ValidationResult

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "XAUUSDm_15min.csv"


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    cache = tmp_path_factory.mktemp("training-cache")
    return load_config().with_profile("smoke").with_overrides({"cache.dir": str(cache)})


def _run(config, run_dir: Path, **kwargs: Any) -> dict[str, Any]:
    return Trainer(config, SAMPLE, run_dir, **kwargs).run()


class ScriptedScores:
    """Stands in for the validator: returns the next score of a script, whatever the model."""

    def __init__(self, scores):
        self.scores = list(scores)
        self.calls = 0

    def __call__(self, model):
        score = self.scores[min(self.calls, len(self.scores) - 1)]
        self.calls += 1
        return ValidationResult(score, {"sharpe": score}, 0.0)


def _script_validator(monkeypatch, scores) -> ScriptedScores:
    scripted = ScriptedScores(scores)
    monkeypatch.setattr("rltrader.training.trainer.Validator", lambda *args, **kwargs: scripted)
    return scripted


# -- pure pieces ---------------------------------------------------------------------------

def test_adaptive_budget_decays_by_five_percent_down_to_the_floor_in_whole_rollouts(tiny_config):
    training = tiny_config.with_overrides({"training.total_timesteps": 50_000, "training.min_timesteps": 15_000,
                                           "training.n_envs": 8, "training.n_steps": 256,
                                           "training.batch_size": 512}).training
    budgets = [iteration_budget(i, training, adaptive=True) for i in range(30)]
    assert budgets[0] == rounded_to_rollouts(50_000, 2048) == 51_200
    assert budgets[1] == rounded_to_rollouts(47_500, 2048)
    assert all(b % 2048 == 0 for b in budgets)
    assert all(later <= earlier for earlier, later in zip(budgets, budgets[1:], strict=False))
    assert budgets[-1] == rounded_to_rollouts(15_000, 2048)
    assert {iteration_budget(i, training, adaptive=False) for i in range(30)} == {51_200}


def test_convergence_tracker_stops_on_flat_scores_not_on_improving_ones():
    flat = ConvergenceTracker(patience=3, threshold=0.01)
    stops = []
    for score in [1.0, 1.0, 1.005, 0.9]:
        flat.update(score)
        stops.append(flat.converged)
    assert stops == [False, False, False, True]
    assert flat.best_score == 1.005  # a small gain is still the model worth keeping

    improving = ConvergenceTracker(patience=3, threshold=0.01)
    for score in np.linspace(0, 2, 10):
        improving.update(float(score))
        assert not improving.converged
    disabled = ConvergenceTracker(patience=0, threshold=0.01)
    for _ in range(10):
        disabled.update(0.0)
    assert not disabled.converged
    restored = ConvergenceTracker.from_dict(flat.to_dict(), 3, 0.01)
    assert restored == flat


def test_smoothed_early_stopping_rides_out_one_lucky_look_and_ignores_one_lucky_uptick():
    """Looks that jump by several Sharpe units around a rising trend: raw patience stops after the spike,
    smoothed patience keeps training while the trend rises; a lone uptick on a plateau does not reset it."""
    rising_after_spike = [1.0, 5.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    raw, smoothed = (ConvergenceTracker(patience=3, threshold=0.01, smoothing=weight) for weight in (1.0, 0.5))
    raw_stops, smoothed_stops = [], []
    for score in rising_after_spike:
        raw.update(score)
        smoothed.update(score)
        raw_stops.append(raw.converged)
        smoothed_stops.append(smoothed.converged)
    assert raw_stops.index(True) == 4 and not any(smoothed_stops)
    assert smoothed.best_score == 7.0 and raw.best_score == 7.0  # the kept model is still the best raw look

    plateau = ConvergenceTracker(patience=3, threshold=0.5, smoothing=0.5)
    for score in [5.0, 5.0, 5.0, 5.9, 5.0, 5.0]:  # one uptick of 0.9: its smoothed effect is 0.45, within the threshold
        plateau.update(score)
    assert plateau.converged and plateau.best_score == 5.9
    assert ConvergenceTracker.from_dict(plateau.to_dict(), 3, 0.5, 0.5) == plateau
    old_checkpoint = {"best_score": 5.0, "evaluations_without_improvement": 1}  # saved before smoothing existed
    resumed = ConvergenceTracker.from_dict(old_checkpoint, 3, 0.5, 0.5)
    assert resumed.smoothed_score == 5.0 and resumed.best_smoothed_score == 5.0


def test_phases_follow_the_fraction_of_iterations_and_switch_off(tiny_config):
    training = tiny_config.with_overrides({"training.iterations": 8}).training
    names = [phase_for(i, 8, training.phases).name for i in range(8)]
    assert names == ["explore"] * 3 + ["refine"] * 3 + ["fine_tune"] * 2
    assert hyperparameters_for(7, training, progressive=True).learning_rate == training.phases[2].learning_rate
    base = hyperparameters_for(7, training, progressive=False)
    assert (base.phase, base.learning_rate, base.n_epochs) == ("base", training.learning_rate, training.n_epochs)


def test_profiles_apply_by_name_and_unknown_ones_are_refused(tiny_config):
    ultra = load_config().with_profile("ultra_fast").training
    assert (ultra.learning_rate, ultra.n_epochs, ultra.ent_coef) == (3e-3, 3, 0.1)
    with pytest.raises(ConfigError, match="profile 'nope' is not defined.*ultra_fast"):
        load_config().with_profile("nope")
    with pytest.raises(ConfigError, match="batch_size 300 must divide"):
        tiny_config.with_overrides({"training.batch_size": 300})


# -- the loop, optimization by optimization ------------------------------------------------

def test_adaptive_timesteps_on_and_off(tiny_config, tmp_path):
    config = tiny_config.with_overrides({"training.iterations": 3, "training.total_timesteps": 2048,
                                         "training.min_timesteps": 1024, "training.timestep_decay": 0.3,
                                         "optimizations.early_stopping": False})
    adaptive = _run(config, tmp_path / "a")
    fixed = _run(config.with_overrides({"optimizations.adaptive_timesteps": False}), tmp_path / "b")
    assert [it["timesteps"] for it in adaptive["iterations"]] == [2048, 1536, 1024]
    assert [it["timesteps"] for it in fixed["iterations"]] == [2048, 2048, 2048]
    assert adaptive["total_timesteps_saved"] == 512 + 1024 and fixed["total_timesteps_saved"] == 0


class _Recorder:
    """Update hook: what the model looks like just before each update."""

    def __init__(self):
        self.calls: list[dict[str, Any]] = []

    def __call__(self, model, timesteps_done):
        self.calls.append({
            "seed": model.seed,
            "timesteps": timesteps_done,
            "optimizer_lr": model.policy.optimizer.param_groups[0]["lr"],
            "n_epochs": model.n_epochs,
            "ent_coef": model.ent_coef,
            "clip_range": model.clip_range(1.0),
            "params": torch.nn.utils.parameters_to_vector(model.policy.parameters()).detach().clone(),
        })


def test_warm_start_reloads_the_best_model_and_phases_reach_the_optimizer(tiny_config, tmp_path):
    config = tiny_config.with_overrides({"optimizations.early_stopping": False})
    recorder = _Recorder()
    summary = _run(config, tmp_path / "warm", update_hooks=[recorder])
    by_seed = {seed: [c for c in recorder.calls if c["seed"] == seed] for seed in (42, 43)}
    # iteration 1 (seed 43) starts from the best model's weights, not from scratch
    from rltrader.evaluation.loading import load_model

    # without early stopping iteration 0 is validated once, at its end: its final model was the best when
    # iteration 1 began (whichever iteration holds best_model.zip at the end of the run)
    best = load_model(tmp_path / "warm" / "iterations" / "iter_00" / "model.zip")
    assert summary["iterations"][1]["warm_started"] and summary["warm_starts"] == 1
    assert len(json.loads((tmp_path / "warm" / "run_state.json").read_text())["iterations"][0]["validations"]) == 1
    best_params = torch.nn.utils.parameters_to_vector(best.policy.parameters())
    assert torch.equal(by_seed[43][0]["params"], best_params)
    # phase hyperparameters are in force at every update, the optimizer's learning rate included
    explore, refine = config.training.phases[0], config.training.phases[1]
    for seed, phase in ((42, explore), (43, refine)):
        for call in by_seed[seed]:
            assert call["optimizer_lr"] == pytest.approx(phase.learning_rate)
            assert (call["n_epochs"], call["ent_coef"], call["clip_range"]) == (
                phase.n_epochs, phase.ent_coef, phase.clip_range)

    cold = _Recorder()
    fresh = _run(config.with_overrides({"optimizations.warm_start": False,
                                        "optimizations.progressive_training": False}), tmp_path / "cold",
                 update_hooks=[cold])
    assert fresh["warm_starts"] == 0
    first_of_43 = next(c for c in cold.calls if c["seed"] == 43)
    assert not torch.equal(first_of_43["params"], best_params)
    assert all(c["optimizer_lr"] == pytest.approx(config.training.learning_rate) for c in cold.calls)
    assert {c["n_epochs"] for c in cold.calls} == {config.training.n_epochs}


def test_early_stopping_fires_on_a_flat_score_and_not_on_an_improving_one(tiny_config, tmp_path, monkeypatch):
    config = tiny_config.with_overrides({"training.iterations": 2, "training.early_stopping_patience": 2,
                                         "optimizations.adaptive_timesteps": False})
    _script_validator(monkeypatch, [1.0])  # never improves after the first validation
    flat = _run(config, tmp_path / "flat")
    assert [it["early_stopped"] for it in flat["iterations"]] == [True, True]
    assert flat["early_stops"] == 2
    # iteration 0: validations at 512 (first, a new best), 1024 and 1536 (no gain) -> stops at 1536;
    # the counter persists, so iteration 1 stops at its first validation without gain
    assert [it["timesteps"] for it in flat["iterations"]] == [1536, 512]

    _script_validator(monkeypatch, list(np.arange(1.0, 20.0)))
    improving = _run(config, tmp_path / "improving")
    assert improving["early_stops"] == 0
    assert [it["timesteps"] for it in improving["iterations"]] == [2048, 2048]


def test_original_method_turns_every_optimization_off(tiny_config, tmp_path):
    config = tiny_config.with_overrides({"training.iterations": 2, "training.total_timesteps": 1536,
                                         "training.min_timesteps": 512, "training.timestep_decay": 0.5})
    summary = _run(config.original_method(), tmp_path / "original")
    assert summary["method"] == "original" and not any(summary["optimizations"].values())
    assert [it["timesteps"] for it in summary["iterations"]] == [1536, 1536]
    assert summary["warm_starts"] == 0 and summary["early_stops"] == 0
    assert [it["phase"] for it in summary["iterations"]] == ["base", "base"]
    assert all(len(it["validations"]) == 1 for it in json.loads(
        (tmp_path / "original" / "run_state.json").read_text())["iterations"])
    assert summary["total_speedup_achieved"] == 1.0


# -- crash safety ---------------------------------------------------------------------------

class SimulatedCrash(RuntimeError):
    pass


def _crash_at(seed: int, timesteps: int):
    def hook(model, timesteps_done):
        if model.seed == seed and timesteps_done >= timesteps:
            raise SimulatedCrash(f"killed at {timesteps_done}")
    return hook


def test_resume_after_a_crash_continues_the_iteration_and_skips_finished_ones(tiny_config, tmp_path):
    config = tiny_config.with_overrides({"training.iterations": 2, "optimizations.early_stopping": False,
                                         "optimizations.adaptive_timesteps": False})
    run_dir = tmp_path / "run"
    with pytest.raises(SimulatedCrash):
        _run(config, run_dir, update_hooks=[_crash_at(43, 1536)])  # iteration 1, after 3 updates
    state = json.loads((run_dir / "run_state.json").read_text())
    assert len(state["iterations"]) == 1 and not state["completed"]
    finished = run_dir / "iterations" / "iter_00" / "model.zip"
    before = finished.stat().st_mtime_ns
    assert CheckpointStore(run_dir).latest(1).timesteps == 1024

    resumed = _run(config, run_dir)
    assert resumed["optimization_completed"] and len(resumed["iterations"]) == 2
    assert finished.stat().st_mtime_ns == before  # iteration 0 was not retrained
    second = json.loads((run_dir / "run_state.json").read_text())["iterations"][1]
    assert second["resumed_at"] == 1024 and second["timesteps"] == 2048
    assert not (run_dir / "checkpoints" / "iter_01").exists()
    assert not list(run_dir.rglob(".tmp-*"))


def test_a_torn_checkpoint_is_ignored_for_the_previous_one(tiny_config, tmp_path):
    config = tiny_config.with_overrides({"training.iterations": 1, "optimizations.early_stopping": False,
                                         "training.checkpoint_freq": 512})
    run_dir = tmp_path / "run"
    with pytest.raises(SimulatedCrash):
        _run(config, run_dir, update_hooks=[_crash_at(42, 1536)])
    store = CheckpointStore(run_dir)
    newest = store.latest(0)
    assert newest.timesteps == 1536 - 512  # the boundary at 1536 comes after the hook fired
    data = newest.model_path.read_bytes()
    newest.model_path.write_bytes(data[: len(data) // 2])  # a kill in the middle of writing
    assert store.latest(0).timesteps == newest.timesteps - 512
    summary = _run(config, run_dir)
    assert summary["optimization_completed"] and summary["iterations"][0]["timesteps"] == 2048
    assert json.loads((run_dir / "run_state.json").read_text())["iterations"][0]["resumed_at"] == 512


def test_resuming_with_other_settings_is_refused_naming_the_key(tiny_config, tmp_path):
    config = tiny_config.with_overrides({"training.iterations": 1, "training.total_timesteps": 1024})
    _run(config, tmp_path / "run")
    with pytest.raises(UserInputError, match=r"training\.n_epochs was 4, now 3.*another --results_dir"):
        _run(config.with_overrides({"training.n_epochs": 3}), tmp_path / "run")


def test_same_seed_and_config_give_the_same_summary(tiny_config, tmp_path):
    config = tiny_config.with_overrides({"training.iterations": 2, "training.total_timesteps": 1536})
    first, second = (_run(config, tmp_path / name) for name in ("a", "b"))
    keys = ("iteration", "timesteps", "early_stopped", "warm_started", "validation_score", "seed")
    assert [{k: it[k] for k in keys} for it in first["iterations"]] == \
        [{k: it[k] for k in keys} for it in second["iterations"]]
    assert first["test"] == second["test"] and first["best_model"]["score"] == second["best_model"]["score"]
    assert first["best_model"]["model_sha256"] != "" and math.isfinite(first["best_model"]["score"])


# -- the command ------------------------------------------------------------------------------

@pytest.mark.usefixtures("prefect_harness")  # the command trains through the Prefect flow
def test_train_command_writes_the_results_directory(tiny_config, tmp_path, capsys):
    cache = str(tiny_config.cache.dir)
    settings = tmp_path / "settings.json"  # performance: every core, no lowered priority for later tests
    settings.write_text('{"performance_mode": "performance"}')
    rc = main(["train", "--data_path", str(SAMPLE), "--profile", "smoke", "--iterations", "1", "--settings_file",
               str(settings), "--total_timesteps", "1024", "--results_dir", str(tmp_path), "--seed", "7",
               "--cache_dir", cache])
    assert rc == 0
    run_dir = tmp_path / "7"
    assert json.loads((run_dir / "performance_mode.json").read_text())["mode"] == "performance"
    summary = json.loads((run_dir / "optimization_summary.json").read_text())
    for key in ("optimization_completed", "total_speedup_achieved", "total_timesteps_saved", "early_stops",
                "warm_starts", "avg_iteration_time_minutes", "estimated_time_saved_hours"):
        assert key in summary
    assert summary["optimization_completed"] and summary["seed"] == 7
    for name in ("best_model.zip", "best_model.json", "run_state.json", "iterations/iter_00/model.zip",
                 "iterations/iter_00/metrics.json", "report/report.md", "report/test/equity.png",
                 "report/validation/equity.png"):
        assert (run_dir / name).is_file(), name
    assert "Buy and hold" in (run_dir / "report" / "report.md").read_text()
    assert summary["account"]["sizing"] == "equity_fraction" and summary["account"]["currency"] == "USD"
    account = "Account USD 10,000 trading XAUUSD (XAU/USD, 100 units per lot); sizing equity_fraction"
    assert account in (run_dir / "report" / "report.md").read_text()
    out = capsys.readouterr().out
    assert "Iterations (optimized method, seed 7)" in out and "buy-and-hold test" in out
    assert account in " ".join(out.split())  # under the final table (rich may wrap it)
    assert "Iteration 1/1 [explore] done:" in out  # verbose 1 without a terminal: one line per iteration
    assert "Sharpe 95% interval" in out and "Rank among 1,000 random" in out and "validation looks" in out

    rc = main(["train", "--data_path", str(SAMPLE), "--iterations", "0", "--results_dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "training.iterations" in err


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_benchmark_mode_judges_quality_on_test_over_several_seeds(tiny_config, tmp_path, capsys):
    settings = tmp_path / "settings.json"
    settings.write_text('{"performance_mode": "performance"}')
    rc = main(["train", "--benchmark_mode", "--benchmark_seeds", "2", "--data_path", str(SAMPLE), "--profile", "smoke",
               "--iterations", "1", "--total_timesteps", "1024", "--settings_file", str(settings), "--seed", "5",
               "--results_dir", str(tmp_path), "--cache_dir", str(tiny_config.cache.dir), "--verbose", "0"])
    assert rc == 0
    quality = json.loads((tmp_path / "benchmark-5" / "quality.json").read_text())
    assert [pair["seed"] for pair in quality["pairs"]] == [5, 1005]
    for seed, pair in zip((5, 1005), quality["pairs"], strict=True):
        comparison = json.loads((tmp_path / f"benchmark-{seed}" / "comparison.json").read_text())
        assert comparison["seed"] == seed and comparison["original"]["test_sharpe"] == pair["original"]["test_sharpe"]
        assert pair["original"]["validation_looks"] == 1 and pair["optimized"]["validation_looks"] >= 1
    assert quality["quality_metric"] == "test_sharpe" and len(quality["difference_interval"]) == 2
    out = capsys.readouterr().out
    assert "Original vs optimized over 2 seeds" in out and "90% interval" in out


def test_benchmark_mode_runs_both_methods_on_the_same_seed(tiny_config, tmp_path):
    from rltrader.training.benchmark import run_benchmark

    config = tiny_config.with_overrides({"training.iterations": 2, "training.total_timesteps": 1024,
                                         "training.min_timesteps": 512})
    comparison = run_benchmark(config, SAMPLE, tmp_path / "bench")
    original = json.loads((tmp_path / "bench" / "original" / "optimization_summary.json").read_text())
    optimized = json.loads((tmp_path / "bench" / "optimized" / "optimization_summary.json").read_text())
    assert original["method"] == "original" and optimized["method"] == "optimized"
    assert [it["seed"] for it in original["iterations"]] == [it["seed"] for it in optimized["iterations"]]
    assert comparison["speedup"] == pytest.approx(
        original["total_time_seconds"] / optimized["total_time_seconds"], rel=1e-3)
    assert optimized["speedup_basis"] == "measured_benchmark"
    assert json.loads((tmp_path / "bench" / "comparison.json").read_text()) == comparison.to_json()


@pytest.mark.slow
def test_kill_minus_9_at_a_random_point_then_the_same_command_finishes(tiny_config, tmp_path):
    """The real thing: SIGKILL (no cleanup of any kind) while training, then re-run the command."""
    import os
    import random
    import signal
    import subprocess
    import sys
    import time
    import zipfile

    command = [sys.executable, "-m", "rltrader", "train", "--data_path", str(SAMPLE), "--profile", "smoke",
               "--iterations", "3", "--total_timesteps", "3072", "--checkpoint_freq", "512",
               "--results_dir", str(tmp_path), "--cache_dir", str(tiny_config.cache.dir),
               "--settings_file", str(tmp_path / "settings.json")]
    run_dir = tmp_path / "42"
    delay = random.Random().uniform(0.0, 6.0)
    home = tmp_path / "prefect-home"  # both commands' runs, read back below
    env = {**os.environ, "PREFECT_HOME": str(home)}
    # its own process group: the kill takes the command and the temporary Prefect server it started, as
    # killing a terminal's job does (a kill of the command alone would orphan that server)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                               env=env)
    deadline = time.monotonic() + 120
    while not list(run_dir.glob("checkpoints/*/*.json")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(delay)  # somewhere after the first checkpoint: mid-update, mid-validation or mid-write
    killed = process.poll() is None
    if killed:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert rerun.returncode == 0, f"killed after {delay:.2f}s: {rerun.stderr[-2000:]}"
    runs = [run for run in prefect_flow_runs(home / "prefect.db") if run["name"].startswith("train ")]
    # whenever the kill landed, no run is left open: one killed mid-flow is closed by the run that resumed it
    # (a kill after the flow had ended, while the command was closing, leaves it Completed)
    assert len(runs) == 2 and runs[1]["state"] == "COMPLETED", runs  # the command, then the same command again
    if runs[0]["state"] != "COMPLETED":
        assert runs[0]["state"] == "CRASHED", runs[0]
        assert "resumed by flow run 'train XAUUSDm_15min" in runs[0]["message"], runs[0]
    summary = json.loads((run_dir / "optimization_summary.json").read_text())
    assert summary["optimization_completed"] and len(summary["iterations"]) == 3, f"killed={killed} delay={delay}"
    for path in run_dir.rglob("*.zip"):
        with zipfile.ZipFile(path) as archive:
            assert archive.testzip() is None, path
    for path in run_dir.rglob("*.json"):
        json.loads(path.read_text())
    assert not list(run_dir.rglob(".tmp-*"))
