"""Ctrl-C and SIGTERM stop a command within seconds: exit 130 or 143, the last line says how to resume, no
process it started is left, and the same command resumes from the last checkpoint.

The mechanism (``rltrader.runtime.interrupts``) is tested in this process and in a small child; the commands
themselves as a person stops them: ``rltrader train`` in tmux with ``send-keys C-c`` and ``capture-pane``,
and ``kill -TERM`` of the command alone or of its process group.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT, SAMPLE_CSV
from processes import prefect_servers

from rltrader.config import load_config
from rltrader.runtime.interrupts import Stopped, run_stoppable

STOP_WITHIN_S = 10.0


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_work_and_the_processes_it_started_then_cleans_up(signum, code, monkeypatch):
    children: list[subprocess.Popen] = []
    cleaned: list[float] = []

    def work() -> None:
        children.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
        while True:
            time.sleep(0.01)

    if signum == signal.SIGINT:  # as in a terminal: a suite started in the background inherits SIGINT ignored
        monkeypatch.setattr(signal, "_rltrader_restore", signal.signal(signal.SIGINT, signal.default_int_handler),
                            raising=False)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # running before: not the work's
    threading.Timer(0.5, os.kill, (os.getpid(), signum)).start()
    started = time.monotonic()
    try:
        with pytest.raises(Stopped) as stopped:
            run_stoppable(work, cleanup=lambda: cleaned.append(time.monotonic()), on_stop=lambda s: None)
        assert stopped.value.exit_code == code and isinstance(stopped.value, KeyboardInterrupt)
        assert time.monotonic() - started < 5.0
        assert len(cleaned) == 1
        assert children[0].wait(timeout=5) is not None  # terminated by the stop, not left sleeping
        assert bystander.poll() is None  # a process the work did not start is left alone (a test's server)
    finally:
        bystander.kill()
        bystander.wait()
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal._rltrader_restore)


def test_work_that_will_not_stop_is_cut_off_after_the_grace_period():
    """Work blocked where no interrupt reaches it (a wait on a lock, as on a future of a hung worker) cannot
    hold the command: past the grace period the cleanup and the last line still come, and it exits 143."""
    script = textwrap.dedent("""
        import threading
        from rltrader.runtime.interrupts import run_stoppable

        def blocked():
            held = threading.Lock()
            held.acquire()
            print("working", flush=True)
            held.acquire()  # a C-level wait: the asynchronous KeyboardInterrupt never lands

        run_stoppable(blocked, cleanup=lambda: print("cleaned up", flush=True),
                      on_stop=lambda signum: print(f"stopped by {signum}", flush=True), grace_s=1.0)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT)
    assert child.stdout is not None and child.stdout.readline().strip() == "working"
    time.sleep(0.5)  # into the wait: an interrupt landing before it would end the work, not test the cut-off
    started = time.monotonic()
    child.send_signal(signal.SIGTERM)
    out, _ = child.communicate(timeout=10)
    assert child.returncode == 143 and time.monotonic() - started < 5.0
    assert out.splitlines() == ["cleaned up", f"stopped by {int(signal.SIGTERM)}"]


# -- the commands, stopped as a person stops them --------------------------------------------

def _environment(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"), "PYTHONPATH": str(PROJECT_ROOT)}
    env.pop("PREFECT_API_URL", None)
    return env


def _train_command(tmp_path: Path) -> list[str]:
    return ["rltrader", "train", "--data_path", str(SAMPLE_CSV), "--results_dir", str(tmp_path / "results"),
            "--cache_dir", str(tmp_path / "cache"), "--checkpoint_freq", "2048",
            "--settings_file", str(tmp_path / "settings.json")]


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:.0f} s")
        time.sleep(0.2)


def _checkpointed(run_dir: Path) -> bool:
    return any((run_dir / "checkpoints").rglob("*.zip")) if (run_dir / "checkpoints").is_dir() else False


def _no_process_left(tmp_path: Path) -> None:
    time.sleep(0.5)
    assert prefect_servers(tmp_path / "prefect-home") == {}
    assert not [line for line in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
                .splitlines() if str(tmp_path / "results") in line and "rltrader" in line]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")
def test_ctrl_c_in_a_terminal_stops_train_within_seconds_and_the_same_command_resumes(tmp_path):
    env = _environment(tmp_path)
    command = [str(Path(sys.executable).parent / "rltrader"), *_train_command(tmp_path)[1:]]
    session = f"rltrader-stop-{os.getpid()}"
    shell = f"{' '.join(command)}; echo EXIT=$?; sleep 120"
    # a tmux server of its own (-L): one the user already runs would give the shell its environment, not env
    tmux = ["tmux", "-L", session, "-f", "/dev/null"]
    subprocess.run([*tmux, "new-session", "-d", "-s", session, "-x", "220", "-y", "50", shell], env=env, check=True)
    run_dir = tmp_path / "results" / "42"
    try:
        _wait_for(lambda: _checkpointed(run_dir), 180, "checkpoint")
        subprocess.run([*tmux, "send-keys", "-t", session, "C-c"], check=True)
        sent = time.monotonic()

        def pane() -> str:
            return subprocess.run([*tmux, "capture-pane", "-p", "-J", "-S", "-200", "-t", session],
                                  capture_output=True, text=True).stdout

        _wait_for(lambda: "EXIT=" in pane(), 30, "exit")
        seconds = time.monotonic() - sent
        lines = [line.strip() for line in pane().splitlines() if line.strip()]
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
    (tmp_path / "pane.txt").write_text("\n".join(lines) + "\n")
    exit_line = next(line for line in lines if line.startswith("EXIT="))
    last = lines[lines.index(exit_line) - 1]
    assert seconds < STOP_WITHIN_S, f"stopped after {seconds:.1f} s"
    assert exit_line == "EXIT=130", lines[-8:]
    assert last.startswith("rltrader: stopped by SIGINT (Ctrl-C); the work up to the last checkpoint is kept.")
    assert last.endswith("To resume, run the same command: " + " ".join(_train_command(tmp_path)))
    assert not any("Traceback" in line for line in lines)
    _no_process_left(tmp_path)

    # the same command resumes from that checkpoint; this time SIGTERM to the command alone stops it
    again = subprocess.Popen([*command, "--verbose", "2"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []
    assert again.stdout is not None
    for line in again.stdout:
        seen.append(line)
        if "remaining" in line and f"Iteration 1/{load_config().training.iterations}" in line:
            break
    else:
        raise AssertionError("the second run did not resume:\n" + "".join(seen[-20:]))
    sent = time.monotonic()
    again.send_signal(signal.SIGTERM)
    rest = again.stdout.read()
    again.wait(timeout=30)
    assert again.returncode == 143 and time.monotonic() - sent < STOP_WITHIN_S
    assert rest.strip().splitlines()[-1].startswith("rltrader: stopped by SIGTERM")
    _no_process_left(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["walkforward", "tune"])
def test_sigterm_to_the_process_group_stops_walkforward_and_tune_within_seconds(command, tmp_path):
    env = _environment(tmp_path)
    (tmp_path / "settings.json").write_text(json.dumps({"performance_mode": "quiet"}))
    spell = [sys.executable, "-m", "rltrader", command, "--data_path", str(SAMPLE_CSV), "--profile", "smoke",
             "--name", "stop", "--results_dir", str(tmp_path / "results"), "--cache_dir", str(tmp_path / "cache"),
             "--settings_file", str(tmp_path / "settings.json")]
    process = subprocess.Popen(spell, env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    root = tmp_path / "results" / ("walkforward-stop" if command == "walkforward" else "tune-stop")
    _wait_for(lambda: any(root.rglob("updates.csv")), 180, "training update")
    sent = time.monotonic()
    os.killpg(process.pid, signal.SIGTERM)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 143 and time.monotonic() - sent < STOP_WITHIN_S, out[-2000:]
    last = out.strip().splitlines()[-1]
    assert last.startswith("rltrader: stopped by SIGTERM; the work up to the last checkpoint is kept.")
    assert f"rltrader {command} --data_path" in last
    assert "Traceback" not in out
    _no_process_left(tmp_path)
