"""Performance mode: the settings file, the switch between updates, the writer, OOM fallback.

Training runs use the tiny ``smoke`` profile (512-timestep rollouts, batch 256). Quiet
mode's niceness is set to 0 here: a lowered priority cannot be raised back without
privileges and would slow every later test; the priority itself is tested in a
subprocess.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from rltrader.app.cli import main
from rltrader.config import load_config
from rltrader.runtime import performance_mode as pm
from rltrader.runtime.performance_mode import ModeSwitcher, SettingsFile, parse_settings, valid_batch_size, write_mode
from rltrader.runtime.update_metrics import UpdateMetrics
from rltrader.training.trainer import Trainer

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "XAUUSDm_15min.csv"


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    cache = tmp_path_factory.mktemp("mode-cache")
    return load_config().with_profile("smoke").with_overrides({
        "cache.dir": str(cache), "training.iterations": 1, "optimizations.early_stopping": False,
        "performance_mode.quiet.niceness": 0, "training.total_timesteps": 3072, "training.min_timesteps": 3072,
        "training.checkpoint_freq": 1024})


# -- the settings file ---------------------------------------------------------------------

@pytest.mark.parametrize("content, problem", [
    ("", "is empty"),
    ("{not json", "is not valid JSON"),
    ('{"performance_mode": "perf', "is not valid JSON"),  # truncated mid-write by a non-atomic writer
    ('{"mode": "performance"}', "has no 'performance_mode' key"),
    ('["performance"]', "has no 'performance_mode' key"),
    ('{"performance_mode": "turbo"}', "'turbo', not 'quiet' or 'performance'"),
])
def test_bad_settings_mean_quiet_with_one_warning(tmp_path, caplog, content, problem):
    path = tmp_path / "settings.json"
    if content is not None:
        path.write_text(content)
    assert parse_settings(path).mode == "quiet" and problem in parse_settings(path).problem
    switcher = ModeSwitcher(load_config().performance_mode, settings_file=path)
    with caplog.at_level(logging.WARNING, logger="rltrader"):
        assert [switcher.wanted_mode() for _ in range(5)] == ["quiet"] * 5
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and problem in warnings[0] and "using quiet mode" in warnings[0]


def test_no_settings_file_means_quiet_said_once_at_info_not_as_a_warning(tmp_path, caplog):
    """No file is the default (quiet): a first run should not open on a warning."""
    path = tmp_path / "settings.json"
    assert parse_settings(path).mode == "quiet" and "not found" in parse_settings(path).problem
    switcher = ModeSwitcher(load_config().performance_mode, settings_file=path)
    with caplog.at_level(logging.INFO, logger="rltrader"):
        assert [switcher.wanted_mode() for _ in range(5)] == ["quiet"] * 5
    said = [(record.levelno, record.getMessage()) for record in caplog.records if "using quiet mode" in record.getMessage()]
    assert said == [(logging.INFO, f"{path} not found: using quiet mode (set it with `rltrader mode quiet|performance`)")]


def test_good_settings_are_read_and_parsed_only_when_the_file_changes(tmp_path, monkeypatch):
    path = tmp_path / "settings.json"
    write_mode(path, "performance")
    parses = []
    monkeypatch.setattr(pm, "parse_settings", lambda p: parses.append(p) or parse_settings(p))
    settings = SettingsFile(path)
    assert [settings.read().mode for _ in range(10)] == ["performance"] * 10
    assert len(parses) == 1
    write_mode(path, "quiet")
    assert settings.read() == pm.SettingsReading("quiet") and len(parses) == 2


def test_the_writer_is_atomic_a_looping_reader_never_sees_a_broken_file(tmp_path):
    path = tmp_path / "settings.json"
    write_mode(path, "quiet")
    stop = threading.Event()
    problems: list[str] = []
    seen: set[str] = set()

    def reader():
        while not stop.is_set():
            reading = parse_settings(path)
            seen.add(reading.mode)
            if reading.problem:
                problems.append(reading.problem)

    thread = threading.Thread(target=reader)
    thread.start()
    for flip in range(400):
        write_mode(path, ("quiet", "performance")[flip % 2])
    stop.set()
    thread.join()
    assert problems == [] and seen == {"quiet", "performance"}
    assert not list(tmp_path.glob(".tmp-*")) and not list(tmp_path.glob("*.tmp*"))


def test_performance_batch_sizes_stay_divisors_of_the_rollout():
    assert valid_batch_size(1024, 2048) == 1024
    assert valid_batch_size(768, 2048) == 512
    assert valid_batch_size(4096, 2048) == 2048
    assert valid_batch_size(1024, 1536) == 768
    assert valid_batch_size(512, 1000) == 500


def test_quiet_mode_lowers_the_priority_of_every_thread():
    script = (
        "import os, sys, threading, time, torch\n"
        "torch.set_num_threads(2); torch.ones(512, 512) @ torch.ones(512, 512)\n"
        "threading.Thread(target=time.sleep, args=(2,), daemon=True).start()\n"
        "from rltrader.runtime.performance_mode import ProcessPriority\n"
        "p = ProcessPriority(); p.set(5)\n"
        "tids = [int(t) for t in os.listdir('/proc/self/task')]\n"
        "print(len(tids), sorted({os.getpriority(os.PRIO_PROCESS, t) - p.base for t in tids}))\n"
    )
    if not sys.platform.startswith("linux"):
        pytest.skip("per-thread nice values are a Linux matter")
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    threads, offsets = output.split(maxsplit=1)
    assert int(threads) >= 2 and offsets.strip() == "[5]"


# -- while training runs -------------------------------------------------------------------

class Recorder:
    """After the switcher: what each update runs with; flips the settings file after update ``flip_at``."""

    def __init__(self, path: Path, flip_at: int, to: str) -> None:
        self.path, self.flip_at, self.to = path, flip_at, to
        self.updates: list[tuple[int, int, int]] = []

    def __call__(self, model, timesteps_done):
        self.updates.append((model.batch_size, model.n_epochs, torch.get_num_threads()))
        if len(self.updates) == self.flip_at:
            write_mode(self.path, self.to)


def test_editing_the_settings_file_changes_the_next_update_without_a_restart(tiny_config, tmp_path, caplog):
    settings = tmp_path / "settings.json"
    write_mode(settings, "quiet")
    run_dir = tmp_path / "run"
    recorder = Recorder(settings, flip_at=2, to="performance")
    switcher = ModeSwitcher(tiny_config.performance_mode, run_dir, settings)
    with caplog.at_level(logging.INFO, logger="rltrader"):
        summary = Trainer(tiny_config, SAMPLE, run_dir, update_hooks=[switcher, recorder]).run()
    assert summary["total_timesteps"] >= 3072 and (run_dir / "best_model.zip").is_file()

    training = tiny_config.training
    quiet = (training.batch_size, training.n_epochs, 1)
    performance = (2 * training.batch_size, int(training.n_epochs * 1.5 + 0.5), os.cpu_count())
    assert recorder.updates[:2] == [quiet, quiet]
    assert set(recorder.updates[2:]) == {performance} and len(recorder.updates) == 6
    changes = [r.getMessage() for r in caplog.records if "Performance mode: quiet -> performance" in r.getMessage()]
    assert changes == [f"Performance mode: quiet -> performance (batch {quiet[0]} -> {performance[0]}, "
                       f"epochs {quiet[1]} -> {performance[1]}, threads 1 -> {performance[2]})"]

    rows = list(csv.DictReader((run_dir / "metrics" / "updates.csv").open()))
    assert [row["mode"] for row in rows] == ["quiet"] * 2 + ["performance"] * 4
    assert all(float(row["timesteps_per_s"]) > 0 for row in rows[1:])
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    status = json.loads((run_dir / "performance_mode.json").read_text())
    assert status["mode"] == "performance" and status["batch_size"] == performance[0]


def test_mode_command_writes_the_file_and_status_shows_disk_and_applied(tiny_config, tmp_path, capsys):
    settings = tmp_path / "settings.json"
    assert main(["mode", "performance", "--settings_file", str(settings), "--results_dir", str(tmp_path)]) == 0
    assert json.loads(settings.read_text()) == {"performance_mode": "performance"}
    run_dir = tmp_path / "42"
    switcher = ModeSwitcher(tiny_config.performance_mode, run_dir, settings)
    model = type("Model", (), {"batch_size": 256, "n_epochs": 4, "n_steps": 128, "n_envs": 4})()
    switcher(model, 512)
    capsys.readouterr()
    assert main(["mode", "status", "--settings_file", str(settings), "--results_dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "on disk   performance" in out
    assert f"applied   performance by {run_dir}" in out and "batch 512, epochs 6" in out and "running" in out


class OutOfMemoryOnce:
    """Raises torch's out-of-memory error at the first performance-mode update after ``after`` timesteps."""

    def __init__(self, performance_batch: int, after: int) -> None:
        self.performance_batch, self.after, self.raised = performance_batch, after, 0

    def __call__(self, model, timesteps_done):
        if not self.raised and model.batch_size == self.performance_batch and timesteps_done > self.after:
            self.raised += 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")


def test_out_of_memory_in_performance_mode_falls_back_to_quiet_and_finishes(tiny_config, tmp_path, caplog):
    settings = tmp_path / "settings.json"
    write_mode(settings, "performance")
    run_dir = tmp_path / "run"
    switcher = ModeSwitcher(tiny_config.performance_mode, run_dir, settings)
    oom = OutOfMemoryOnce(2 * tiny_config.training.batch_size, after=1024)
    with caplog.at_level(logging.INFO, logger="rltrader"):
        summary = Trainer(tiny_config, SAMPLE, run_dir, update_hooks=[switcher, oom]).run()
    assert oom.raised == 1 and summary["total_timesteps"] >= 3072
    messages = [record.getMessage() for record in caplog.records]
    assert any("Out of memory in performance mode" in m and "resumes from its checkpoint at 1,024" in m
               for m in messages)
    assert any("resumes from its checkpoint at 1,024 timesteps" in m for m in messages)
    assert switcher.applied.mode == "quiet"
    rows = list(csv.DictReader((run_dir / "metrics" / "updates.csv").open()))
    assert rows[-1]["mode"] == "quiet"

    write_mode(settings, "performance")  # the user asks again: their choice wins over the fallback
    assert switcher.wanted_mode() == "performance"


def test_out_of_memory_in_quiet_mode_is_not_swallowed(tiny_config, tmp_path):
    settings = tmp_path / "settings.json"
    write_mode(settings, "quiet")
    switcher = ModeSwitcher(tiny_config.performance_mode, tmp_path / "run", settings)
    oom = OutOfMemoryOnce(tiny_config.training.batch_size, after=0)
    with pytest.raises(torch.OutOfMemoryError):
        Trainer(tiny_config, SAMPLE, tmp_path / "run", update_hooks=[switcher, oom]).run()


def test_a_resumed_run_continues_its_metrics_file(tmp_path):
    first = UpdateMetrics(tmp_path)
    first.add(pm.AppliedMode("quiet", 256, 10, 1), 512, None)
    first.add(pm.AppliedMode("quiet", 256, 10, 1), 1024, 900.0)
    resumed = UpdateMetrics(tmp_path)  # a new process after a kill
    resumed.add(pm.AppliedMode("performance", 512, 15, 2), 1536, 800.0)
    rows = list(csv.DictReader((tmp_path / "metrics" / "updates.csv").open()))
    assert [(row["timesteps"], row["mode"], row["timesteps_per_s"]) for row in rows] == [
        ("512", "quiet", ""), ("1024", "quiet", "900.0"), ("1536", "performance", "800.0")]
    assert resumed.step == 3


def test_switchers_made_one_after_another_do_not_compound_niceness():
    script = (
        "import os\n"
        "from rltrader.runtime.performance_mode import ProcessPriority\n"
        "start = os.nice(0)\n"
        "for _ in range(3):\n"
        "    ProcessPriority().set(5)\n"
        "print(os.nice(0) - start)\n"
    )
    if not hasattr(os, "setpriority"):
        pytest.skip("no process priorities here")
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "5"


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
