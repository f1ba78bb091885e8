"""Seconds from a command to what its user waits for: a refused file, the first update, a finished smoke run.

Three timings, each a real ``rltrader`` process started the way a user starts one:

- ``bad_file_s``: ``rltrader preprocess`` of a header-only CSV, command to exit (the one-line error);
- ``first_update_s``: a default ``rltrader train`` on the shipped sample, command to the first PPO
  update finished (the first row of ``metrics/updates.csv``, which the progress bar shows), then the
  run is stopped with SIGTERM; timed after an untimed run of the same config has cached the features
  and the original method's throughput calibration (once per machine and config), whose own figure
  is reported as ``first_update_cold_s``;
- ``smoke_s``: ``rltrader train --profile smoke``, command to exit, with a warm cache (features and the
  original method's throughput calibration already cached by an untimed run before it).

Each is measured without a running Prefect server (the command starts a temporary one) and with one
(``PREFECT_API_URL`` set to a server this script starts on a free port, as ``rltrader serve`` runs one).
``--code DIR`` times another checkout of the project with this environment (``PYTHONPATH=DIR``), so the
same script gives the figures before and after a change side by side.

Usage: .venv/bin/python bench/startup.py [--code DIR] [--repeat 1]
The last line printed is one JSON object: ``bad_file_s``, ``first_update_s``, ``smoke_s`` (without a
server) and ``with_server`` (the same three with one).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "XAUUSDm_15min.csv"


def _environment(code: Path, scratch: Path, api_url: str | None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(code), "PREFECT_HOME": str(scratch / "prefect-home"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "rltrader", *args]


def _stop_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def time_bad_file(code: Path, scratch: Path, api_url: str | None) -> float:
    bad = scratch / "header_only.csv"
    bad.write_text("time,open,high,low,close,tick_volume,spread,real_volume\n")
    started = time.perf_counter()
    done = subprocess.run(_command("preprocess", "--data_path", str(bad), "--cache_dir", str(scratch / "cache")),
                          cwd=code, env=_environment(code, scratch, api_url), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 2:
        raise SystemExit(f"bad file: expected exit 2, got {done.returncode}: {done.stderr[-400:]}")
    return seconds


def time_first_update(code: Path, scratch: Path, api_url: str | None, tag: str) -> float:
    results = scratch / f"results-first-{tag}"
    updates = results / "42" / "metrics" / "updates.csv"
    started = time.perf_counter()
    process = subprocess.Popen(_command("train", "--data_path", str(SAMPLE), "--results_dir", str(results),
                                        "--cache_dir", str(scratch / "cache")),
                               cwd=code, env=_environment(code, scratch, api_url), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while time.perf_counter() - started < 300:
            if updates.is_file() and len(updates.read_text().splitlines()) >= 2:
                return time.perf_counter() - started
            if process.poll() is not None:
                raise SystemExit(f"first update: the run ended (exit {process.returncode}) before any update")
            time.sleep(0.05)
        raise SystemExit("first update: none within 300 s")
    finally:
        _stop_group(process)


def time_smoke(code: Path, scratch: Path, api_url: str | None, tag: str) -> float:
    arguments = ["train", "--data_path", str(SAMPLE), "--profile", "smoke", "--cache_dir", str(scratch / "cache"),
                 "--verbose", "0"]
    env = _environment(code, scratch, api_url)
    warm = subprocess.run(_command(*arguments, "--results_dir", str(scratch / f"results-warm-{tag}")), cwd=code,
                          env=env, capture_output=True, text=True)
    if warm.returncode != 0:
        raise SystemExit(f"smoke warm-up failed ({warm.returncode}): {warm.stderr[-600:]}")
    started = time.perf_counter()
    done = subprocess.run(_command(*arguments, "--results_dir", str(scratch / f"results-smoke-{tag}")), cwd=code,
                          env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"smoke failed ({done.returncode}): {done.stderr[-600:]}")
    return seconds


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(scratch: Path) -> tuple[subprocess.Popen, str]:
    """A Prefect server on a free port with its own home, as a user keeps one running."""
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(scratch / "server-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_API_PORT": str(port)}
    process = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.3)
    _stop_group(process)
    raise SystemExit("the Prefect server did not answer within 120 s")


def measure(code: Path, scratch: Path, api_url: str | None, repeat: int, tag: str) -> dict[str, float]:
    figures: dict[str, list[float]] = {"bad_file_s": [], "first_update_s": [], "smoke_s": []}
    cold = time_first_update(code, scratch, api_url, f"{tag}-cold")  # caches features and the calibration
    print(f"  {tag}: first update of the first default run (calibrating) {cold:.1f} s", flush=True)
    for round_ in range(repeat):
        figures["bad_file_s"].append(time_bad_file(code, scratch, api_url))
        figures["first_update_s"].append(time_first_update(code, scratch, api_url, f"{tag}{round_}"))
        figures["smoke_s"].append(time_smoke(code, scratch, api_url, f"{tag}{round_}"))
        print(f"  {tag} round {round_ + 1}: " + ", ".join(f"{key} {values[-1]:.1f}" for key, values in figures.items()),
              flush=True)
    return {**{key: round(statistics.median(values), 2) for key, values in figures.items()},
            "first_update_cold_s": round(cold, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout of the project to time (default: this one)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of each timing; the median is reported")
    args = parser.parse_args()
    code = args.code.resolve()
    with tempfile.TemporaryDirectory(prefix="rltrader-startup-") as tmp:
        scratch = Path(tmp)
        print(f"timing {code} on {os.cpu_count()} cores; scratch {scratch}", flush=True)
        without = measure(code, scratch, None, args.repeat, "no server")
        server, url = start_server(scratch)
        try:
            with_server = measure(code, scratch, url, args.repeat, "with server")
        finally:
            _stop_group(server)
    print(f"without a running server: {without}")
    print(f"with a running server:    {with_server}")
    print(json.dumps({**without, "with_server": with_server, "code": str(code), "repeat": args.repeat}))


if __name__ == "__main__":
    main()
