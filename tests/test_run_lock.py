"""One command per run directory: a second trainer, walk-forward or study on the same directory exits 2 naming
the holder, before any server starts; a killed holder's lock is taken over."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SAMPLE_CSV

from rltrader.app.cli import main
from rltrader.runtime.run_lock import HOLDER_FILE, LOCK_FILE, RunDirectoryInUse, read_holder, run_directory_lock

HOLD_THE_LOCK = ("import sys, time\nfrom rltrader.runtime.run_lock import run_directory_lock\n"
                 "with run_directory_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n")


def _holder(run_dir: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


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


@pytest.mark.parametrize(("command", "directory"), [("walkforward", "walkforward-gold"), ("tune", "tune-gold")])
def test_a_walk_forward_or_study_whose_directory_is_held_exits_2_in_one_line_before_any_server(
        command, directory, tmp_path, capsys, monkeypatch):
    results = tmp_path / "results"
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    holder = _holder(results / directory)
    try:
        code = main([command, "--data_path", str(SAMPLE_CSV), "--name", "gold", "--profile", "smoke",
                     "--results_dir", str(results), "--cache_dir", str(tmp_path / "cache")])
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.splitlines() == [
        f"rltrader: error: {results / directory}: another trainer is using this run directory: pid {holder.pid} on "
        f"host {socket.gethostname()} (since {captured.err.split('(since ')[1].split(')')[0]}); wait for it to "
        "finish or stop it, or pass another --name"]
    assert captured.out == ""
    assert sorted(path.name for path in (results / directory).iterdir()) == ["run.lock", "run.lock.json"]


class _Owner:
    """A run the lock's holder works for, as the Prefect layer passes one: records what it is told."""

    def __init__(self, name: str) -> None:
        self.name, self.told = name, []

    def details(self) -> dict[str, str]:
        return {"flow_run_id": self.name}

    def took_over(self, previous: dict) -> None:
        self.told.append(previous)


def test_the_owner_is_recorded_and_told_only_of_a_dead_holder(tmp_path):
    run_dir = tmp_path / "42"
    first = _Owner("first")
    with run_directory_lock(run_dir, owner=first):
        assert read_holder(run_dir)["flow_run_id"] == "first" and read_holder(run_dir)["pid"] == os.getpid()
    assert first.told == []  # a free directory (no holder left behind): nothing to close
    holder = _holder(run_dir)  # a live holder is never handed over, whatever it was doing
    live = _Owner("second")
    try:
        with pytest.raises(RunDirectoryInUse), run_directory_lock(run_dir, owner=live):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert live.told == []
    (run_dir / HOLDER_FILE).write_text(json.dumps({**read_holder(run_dir), "flow_run_id": "dead"}))
    third = _Owner("third")
    with run_directory_lock(run_dir, owner=third):
        assert read_holder(run_dir)["flow_run_id"] == "third"
    assert [told["flow_run_id"] for told in third.told] == ["dead"] and third.told[0]["pid"] == holder.pid


def test_a_directory_the_lock_made_and_nothing_wrote_to_goes_again(tmp_path):
    """Bad input found under the lock (a flow that takes it before preprocessing) writes nothing; a directory
    with work in it, or one that was there before, keeps its lock file."""
    empty, used, existing = tmp_path / "empty", tmp_path / "used", tmp_path / "existing"
    with run_directory_lock(empty):
        assert (empty / LOCK_FILE).is_file()
    assert not empty.exists()
    with run_directory_lock(used):
        (used / "run_state.json").write_text("{}")
    assert sorted(path.name for path in used.iterdir()) == [LOCK_FILE, "run_state.json"]
    existing.mkdir()
    with run_directory_lock(existing):
        pass
    assert [path.name for path in existing.iterdir()] == [LOCK_FILE]
