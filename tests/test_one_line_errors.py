"""A user's mistake is one line, ``rltrader: error: ...``, exit 2, at the default verbosity, from every command.

The checks that need no server (the bar file, the spread, the config, the run lock, a walk-forward's plan)
run before a Prefect server starts, so a bad file is refused in about a second; they are tested in this
process. A mistake found inside a flow (a results directory holding a run with other settings) is tested
through the real command and its temporary server: Prefect's own ERROR records of it stay in the UI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from conftest import PROJECT_ROOT, SAMPLE_CSV, without_spread

from rltrader.app.cli import main
from rltrader.walkforward.runs import PLAN_FILE

HEADER_ONLY = "time,open,high,low,close,tick_volume,spread,real_volume\n"


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = [line for line in (captured.out + captured.err).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("rltrader: error: ") and "Traceback" not in lines[0]
    return lines[0]


COMMANDS = {
    "preprocess": [],
    "train": ["--profile", "smoke", "--results_dir", "results"],
    "walkforward": ["--profile", "smoke", "--name", "w", "--results_dir", "results"],
    "tune": ["--profile", "smoke", "--name", "t", "--results_dir", "results"],
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("mistake", ["header only", "no spread", "missing file", "unknown config key"])
def test_each_command_refuses_a_mistake_in_one_line_before_any_server_and_writes_nothing(
        command, mistake, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    data, extra = tmp_path / "XAUUSD_M15.csv", []
    if mistake == "header only":
        data.write_text(HEADER_ONLY)
    elif mistake == "no spread":
        without_spread(data)
    elif mistake == "unknown config key":
        data = SAMPLE_CSV
        (tmp_path / "c.yaml").write_text("features:\n  rsi_periods: 14\n")
        extra = ["--config", str(tmp_path / "c.yaml")]
    before = sorted(tmp_path.rglob("*"))
    started = time.perf_counter()
    code = main([command, "--data_path", str(data), "--cache_dir", str(tmp_path / "cache"), *COMMANDS[command],
                 *extra])
    seconds = time.perf_counter() - started
    assert code == 2
    line = _one_error_line(capsys)
    expected = {"header only": "has a header but no data rows", "no spread": "--spread_points",
                "missing file": "bar file not found", "unknown config key": "unknown key"}[mistake]
    assert expected in line
    assert sorted(tmp_path.rglob("*")) == before  # nothing written: no cache, no results, no plan
    assert seconds < 10  # no server was started for it (one takes several seconds)


def test_a_walk_forward_planned_otherwise_is_one_line_and_the_plan_stays(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    root = tmp_path / "results" / "walkforward-w"
    root.mkdir(parents=True)
    (root / PLAN_FILE).write_text(json.dumps({"planned": "otherwise"}))
    code = main(["walkforward", "--data_path", str(SAMPLE_CSV), "--profile", "smoke", "--name", "w",
                 "--results_dir", str(tmp_path / "results"), "--cache_dir", str(tmp_path / "cache")])
    assert code == 2 and str(root) in _one_error_line(capsys)
    assert json.loads((root / PLAN_FILE).read_text()) == {"planned": "otherwise"}


@pytest.mark.slow
def test_a_mistake_found_inside_the_flow_is_one_line_at_the_default_verbosity(tmp_path):
    """A results directory holding a run with other settings is found by the training task, on the
    temporary server: the command prints its one line and none of Prefect's ERROR records about it."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    env.pop("PREFECT_API_URL", None)
    common = [sys.executable, "-m", "rltrader", "train", "--data_path", str(SAMPLE_CSV), "--profile", "smoke",
              "--seed", "7", "--results_dir", str(tmp_path / "results"), "--cache_dir", str(tmp_path / "cache"),
              "--settings_file", str(tmp_path / "settings.json")]
    (tmp_path / "settings.json").write_text(json.dumps({"performance_mode": "quiet"}))
    first = subprocess.run([*common, "--iterations", "1", "--verbose", "0"], env=env, cwd=PROJECT_ROOT,
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    again = subprocess.run([*common, "--iterations", "1"], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True,
                           timeout=300)  # the same run at the default verbosity: it says it resumes, and from where
    assert again.returncode == 0 and again.stdout.splitlines()[0] == (
        f"Resuming {tmp_path / 'results' / '7'}: finished already (1 iterations); only its final report and bundle are "
        "written again"), again.stdout[:500]
    clash = subprocess.run([*common, "--iterations", "2", "--no-warm_start"], env=env, cwd=PROJECT_ROOT,
                           capture_output=True, text=True, timeout=300)
    assert clash.returncode == 2, clash.stderr[-2000:]
    assert clash.stdout.strip() == ""
    lines = [line for line in clash.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("Prefect: a temporary server at http://127.0.0.1:")  # which server, first
    assert len(lines) == 2, lines
    assert lines[1].startswith(f"rltrader: error: {tmp_path / 'results' / '7'}: holds a run with other settings")
