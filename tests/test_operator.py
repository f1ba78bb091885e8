"""Operating it: no process outlives the tests, one trainer per run directory, a spread to charge
before anything trains, the original method's measured throughput behind the speedup estimate."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import SAMPLE_CSV, _started_by_these_tests

from rltrader.cli import main
from rltrader.config import load_config
from rltrader.errors import DataError
from rltrader.preprocessing import preprocess
from rltrader.runtime.run_lock import HOLDER_FILE, RunDirectoryInUse, read_holder, run_directory_lock

HOLD_THE_LOCK = ("import sys, time\nfrom rltrader.runtime.run_lock import run_directory_lock\n"
                 "with run_directory_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n")


def _holder(run_dir: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


# -- the leak check itself ------------------------------------------------------------------

def test_the_leak_check_finds_a_server_orphaned_by_a_test():
    """What the session fixture relies on: a server-like process started here, orphaned (its parent gone,
    as after a kill of a command alone), still carries the run's marker and is found by it."""
    launcher = ("import subprocess, sys\n"
                "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', 'server', 'start'],\n"
                "                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
                "print(child.pid, flush=True)\n")
    orphan = int(subprocess.run([sys.executable, "-c", launcher], capture_output=True, text=True,
                                timeout=30).stdout.strip())
    try:
        environ = Path(f"/proc/{orphan}/environ").read_bytes().split(b"\0")
        carried = [item for item in environ if item.startswith(b"RLTRADER_TEST_SESSION=")]
        assert orphan in _started_by_these_tests(), (carried, os.environ.get("RLTRADER_TEST_SESSION"))
    finally:
        os.kill(orphan, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while orphan in _started_by_these_tests() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert orphan not in _started_by_these_tests()


# -- one trainer per run directory ----------------------------------------------------------

def test_a_held_run_directory_is_refused_naming_the_holder_and_a_killed_holders_lock_is_taken_over(tmp_path, caplog):
    run_dir = tmp_path / "42"
    holder = _holder(run_dir)
    try:
        assert read_holder(run_dir)["pid"] == holder.pid
        with pytest.raises(RunDirectoryInUse) as refused:
            with run_directory_lock(run_dir):
                pass
        message = str(refused.value)
        assert f"pid {holder.pid} on host {socket.gethostname()}" in message and "\n" not in message
    finally:
        holder.send_signal(signal.SIGKILL)  # no cleanup of any kind: the holder file stays behind
        holder.wait()
    assert read_holder(run_dir)["pid"] == holder.pid
    with caplog.at_level("INFO", logger="rltrader"), run_directory_lock(run_dir):
        assert read_holder(run_dir)["pid"] == os.getpid()
    assert f"from pid {holder.pid} on host" in caplog.text and "no longer running" in caplog.text
    assert not (run_dir / HOLDER_FILE).exists()  # released cleanly: no holder to name


@pytest.mark.usefixtures("prefect_harness")
def test_a_second_rltrader_train_on_the_same_run_exits_2_and_trains_once_the_holder_is_gone(tmp_path, capsys):
    results = tmp_path / "results"
    command = ["train", "--data_path", str(SAMPLE_CSV), "--profile", "smoke", "--iterations", "1",
               "--results_dir", str(results), "--cache_dir", str(tmp_path / "cache"),
               "--settings_file", str(tmp_path / "settings.json"), "--verbose", "0"]
    holder = _holder(results / "42")
    try:
        assert main(command) == 2
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("rltrader:")]
    assert errors == [f"rltrader: error: {results / '42'}: another trainer is using this run directory: pid "
                      f"{holder.pid} on host {socket.gethostname()} (since {errors[0].split('(since ')[1]}"]
    assert not (results / "42" / "run_state.json").exists()  # it stopped before writing anything
    assert main(command) == 0  # the killed holder's lock is taken over
    assert json.loads((results / "42" / "optimization_summary.json").read_text())["optimization_completed"]


# -- the spread a fill pays ------------------------------------------------------------------

def _without_spread(path: Path) -> Path:
    header, *rows = SAMPLE_CSV.read_text().splitlines()
    column = header.split(",").index("spread")
    path.write_text("\n".join(",".join(field for i, field in enumerate(line.split(",")) if i != column)
                              for line in [header, *rows]) + "\n")
    return path


def test_a_file_without_spread_is_refused_at_preprocessing_and_spread_points_lets_it_through(tmp_path):
    bars = _without_spread(tmp_path / "XAUUSD_M15.csv")
    config = load_config().with_overrides({"cache.dir": str(tmp_path / "cache")})
    with pytest.raises(DataError, match=r"no spread column, so every trade would be free; pass --spread_points N"):
        preprocess(bars, config)
    assert not (tmp_path / "cache").exists()
    fixed = config.with_overrides({"costs.spread_points": 20.0})
    prepared = preprocess(bars, fixed)
    from rltrader.env import MarketData
    from rltrader.report import data_report_text

    assert "spread charged  fixed 20 points x the point from price digits (costs.spread_points)" in \
        data_report_text(prepared, fixed)
    market = MarketData.from_prepared(prepared, fixed, bars)
    assert market.spread_source == "fixed 20 points x 0.01"
    with pytest.raises(DataError, match="--spread_points"):  # the features are cached; the check is not skipped
        preprocess(bars, config)


@pytest.mark.parametrize("command", ["train", "preprocess", "evaluate"])
def test_spread_points_is_a_flag_of_every_command_that_trades(command, capsys):
    from rltrader.cli import CONFIG_FIELDS, build_parser, request_from_args

    flags = {"evaluate": ["--model", "m.zip"]}.get(command, [])
    args = build_parser().parse_args([command, "--data_path", str(SAMPLE_CSV), "--spread_points", "25", *flags])
    config = (request_from_args(args) if command == "train" else request_from_args(args, CONFIG_FIELDS)).to_config()
    assert config.costs.spread_points == 25.0


# -- the original method's throughput ------------------------------------------------------

@pytest.fixture(scope="module")
def smoke_market(tmp_path_factory):
    from rltrader.env import MarketData

    config = load_config().with_profile("smoke").with_overrides(
        {"cache.dir": str(tmp_path_factory.mktemp("calibration-cache"))})
    return config, MarketData.from_prepared(preprocess(SAMPLE_CSV, config), config, SAMPLE_CSV)


def test_the_original_throughput_is_measured_on_stock_sb3_contrib_once_per_machine_and_config(
        smoke_market, tmp_path, monkeypatch):
    from sb3_contrib import RecurrentPPO

    from rltrader.training import calibration

    config, market = smoke_market
    monkeypatch.setenv(calibration.DIRECTORY_VARIABLE, str(tmp_path))
    learned: list[type] = []
    real_learn = RecurrentPPO.learn

    def spy(self, *args, **kwargs):
        learned.append(type(self))
        return real_learn(self, *args, **kwargs)

    monkeypatch.setattr(RecurrentPPO, "learn", spy)
    first = calibration.original_throughput(config, market)
    assert learned == [RecurrentPPO]  # stock sb3-contrib, not the fused engine (a subclass)
    assert first.timesteps_per_second > 0 and first.engine == "stock sb3-contrib RecurrentPPO"
    assert first.first_update_extra_seconds >= 0 and first.timed_epochs == 1
    assert (first.batch_size, first.n_epochs) == (config.training.batch_size, config.training.n_epochs)
    assert [path.name for path in tmp_path.iterdir()] == [f"{first.key}.json"]
    assert calibration.original_throughput(config, market) == first and len(learned) == 1  # cached
    bigger = config.with_overrides({"training.policy.lstm_hidden_size": 64})
    assert calibration.original_throughput(bigger, market).key != first.key and len(learned) == 2


def test_calibration_runs_under_the_performance_mode_in_force(smoke_market, tmp_path, monkeypatch):
    from rltrader.runtime.performance_mode import ModeSwitcher, write_mode
    from rltrader.training import calibration

    config, market = smoke_market
    monkeypatch.setenv(calibration.DIRECTORY_VARIABLE, str(tmp_path))
    threads = torch.get_num_threads()
    settings = tmp_path / "settings.json"
    write_mode(settings, "performance")
    try:
        measured = calibration.original_throughput(config, market, [ModeSwitcher(config.performance_mode, None,
                                                                                 settings)])
    finally:
        torch.set_num_threads(threads)
    assert measured.mode == "performance"
    assert (measured.batch_size, measured.n_epochs) == (2 * config.training.batch_size,
                                                        int(config.training.n_epochs * 1.5 + 0.5))
    assert "performance mode" in measured.basis()


def test_the_speedup_estimate_divides_the_original_budget_by_the_calibrated_throughput(smoke_market, tmp_path):
    from rltrader.training import Trainer
    from rltrader.training.budget import original_budget

    config, _ = smoke_market
    summary = Trainer(config, SAMPLE_CSV, tmp_path / "run").run()
    original = summary.original_throughput
    assert summary.speedup_basis == "estimated_from_calibration" and original is not None
    per_iteration = original_budget(config.training) / original.timesteps_per_second + original.first_update_extra_seconds
    expected = (config.training.iterations * per_iteration + summary.preprocess_seconds + summary.report_seconds) \
        / summary.total_time_seconds
    assert summary.total_speedup_achieved == pytest.approx(expected, abs=2e-3)
    written = json.loads((tmp_path / "run" / "optimization_summary.json").read_text())
    assert written["original_throughput"]["timesteps_per_second"] == original.timesteps_per_second
    baseline = Trainer(config.original_method(), SAMPLE_CSV, tmp_path / "original").run()
    assert baseline.original_throughput is None and baseline.speedup_basis == "baseline"


def test_the_live_line_names_its_basis():
    from rltrader.display.lines import iteration_line
    from rltrader.records import OriginalThroughput

    record = SimpleNamespace(iteration=0, phase="explore", timesteps=2048, wall_seconds=6.0, timesteps_per_second=400.0,
                             early_stopped=False, validation_score=1.0, timesteps_saved=0)
    original = OriginalThroughput(timesteps_per_second=312.0, first_update_extra_seconds=20.0,
                                  engine="stock sb3-contrib RecurrentPPO", timed_timesteps=2048, batch_size=512,
                                  n_epochs=10, timed_epochs=1, torch_threads=1, machine="here", calibrated_at="now",
                                  key="k")
    line = iteration_line([record], 8, "sharpe", 1.0, 7.9, original)
    assert line.endswith("| speedup so far ~7.9x (est. vs stock sb3-contrib RecurrentPPO at 312 ts/s here)")


def test_a_new_model_under_an_unchanged_performance_mode_gets_its_settings(tmp_path):
    """Trainer.run() keeps one switcher for every iteration: each new model must get the mode's batch and epochs."""
    from rltrader.runtime.performance_mode import ModeSwitcher, write_mode

    settings = tmp_path / "settings.json"
    write_mode(settings, "performance")
    switcher = ModeSwitcher(load_config().with_overrides({"performance_mode.performance.torch_threads": 1})
                            .performance_mode, None, settings)
    first, second = (SimpleNamespace(batch_size=512, n_epochs=10, n_steps=256, n_envs=8) for _ in range(2))
    threads = torch.get_num_threads()
    try:
        switcher(first, 0)
        switcher(second, 0)
    finally:
        torch.set_num_threads(threads)
    assert (first.batch_size, first.n_epochs) == (second.batch_size, second.n_epochs) == (1024, 15)


# -- the README's sample output ------------------------------------------------------------

def _readme_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_output", Path(__file__).parent.parent / "scripts"
                                                  / "readme_output.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_output_elides_middle_iterations_and_writes_scratch_paths_as_the_defaults(tmp_path):
    script = _readme_script()
    lines = [f"Iteration {i}/8 [explore] done: line {i}" for i in range(1, 9)]
    printed = "\n".join([*lines, "table", f"  best model  {tmp_path / 'results'}/42/best_model.zip",
                         f"  parquet   {tmp_path / 'cache'}/features/k/bars.parquet"]) + "\n"
    shown = script.as_the_user_sees_it(printed, tmp_path).splitlines()
    assert shown == [lines[0], lines[1], "...", lines[7], "table", "  best model  results/42/best_model.zip",
                     "  parquet   cache/features/k/bars.parquet"]


def test_readme_output_replaces_only_between_its_markers_and_the_readme_has_them():
    script = _readme_script()
    text = "intro\n<!-- readme_output:train -->\nold\n<!-- /readme_output:train -->\nrest\n"
    assert script.replace_section(text, "train", "new\n") == \
        "intro\n<!-- readme_output:train -->\nnew\n<!-- /readme_output:train -->\nrest\n"
    readme = script.README.read_text()
    for name in ("train", "preprocess"):
        assert readme.count(f"<!-- readme_output:{name} -->") == readme.count(f"<!-- /readme_output:{name} -->") == 1
    with pytest.raises(SystemExit, match="markers"):
        script.replace_section("no markers\n", "train", "x")
