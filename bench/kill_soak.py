"""Kill soak: ``kill -9`` a default ``rltrader train`` 15 times at random points, then let it finish.

Each life starts the README's command with its own process group (the command, its temporary
Prefect server, everything it spawned) and, after a random delay, SIGKILLs the whole group: no
handler runs, no file is closed, no lock is released by the program. Points fall anywhere: while
Python imports, while the Prefect server starts, in preprocessing's cache write, in the original
method's throughput calibration, mid-rollout, mid-update, mid-validation, mid-checkpoint, in the
final report. Then the same command runs to the end, and everything the run and its cache hold
is checked: every zip passes ``testzip``, every JSON file parses, every parquet file reads, no
``.tmp-*`` file of an unfinished atomic write is left, no process of the soak is left running,
and no flow run of the soak's Prefect database is left open ("Running" in the UI): each killed
life's run was marked Crashed by the life that resumed it.

Usage: .venv/bin/python bench/kill_soak.py [--kills 15] [--min_delay 4] [--max_delay 15] [--seed 0]
Writes bench/out/kill_soak/ (the run, its cache, soak.json). Last line: one JSON object with
kills, completed, corrupt_files, temp_files_left, flow_runs_left_open (and more).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from prefect_runs import OPEN_STATES, flow_runs  # noqa: E402  (stdlib only)

OUT = ROOT / "bench" / "out" / "kill_soak"
RLTRADER = [sys.executable, "-m", "rltrader"]


def command(out: Path, profile: str | None) -> list[str]:
    """The README's main command with the defaults (no profile), its files kept under ``out``."""
    return [*RLTRADER, "train", "--data_path", "data/XAUUSDm_15min.csv", "--results_dir", str(out / "results"),
            "--cache_dir", str(out / "cache"), "--settings_file", str(out / "settings.json"), "--verbose", "0",
            *(["--profile", profile] if profile else [])]


def progress(run_dir: Path) -> str:
    """Where the run stood: iterations recorded and the latest checkpoint, from its files."""
    try:
        done = len(json.loads((run_dir / "run_state.json").read_text())["iterations"])
    except (OSError, ValueError, KeyError):
        done = 0
    steps = sorted(int(path.stem.split("_")[1]) for path in run_dir.glob(f"checkpoints/iter_{done:02d}/step_*.json"))
    return f"{done} iterations recorded" + (f", iteration {done + 1} checkpointed at {steps[-1]:,}" if steps else "")


def audit(root: Path) -> dict[str, Any]:
    """Every zip, JSON and parquet file under ``root`` read back; leftovers of unfinished writes counted."""
    import pyarrow.parquet as pq

    corrupt: list[str] = []
    checked = {"zip": 0, "json": 0, "parquet": 0}
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        try:
            if path.suffix == ".zip":
                checked["zip"] += 1
                with zipfile.ZipFile(path) as archive:
                    if archive.testzip() is not None:
                        corrupt.append(str(path))
            elif path.suffix == ".json":
                checked["json"] += 1
                json.loads(path.read_text(encoding="utf-8"))
            elif path.suffix == ".parquet":
                checked["parquet"] += 1
                pq.read_table(path)
        except Exception:  # noqa: BLE001 - any failure to read back is a corrupt file
            corrupt.append(str(path))
    temp = [str(path) for path in root.rglob(".tmp-*")]
    return {"checked": checked, "corrupt": corrupt, "temp": temp}


def leftover_processes(out: Path) -> list[str]:
    """Processes of the soak (the directory in their command line, or its PREFECT_HOME in their environment,
    as a temporary Prefect server has): none may outlive a kill of their group."""
    home = f"PREFECT_HOME={out / 'prefect-home'}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if str(out) in line or home in environ:
                found.append(f"{entry.name}: {line[:120]}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=15)
    parser.add_argument("--min_delay", type=float, default=4.0, help="seconds after a start before its kill, at least")
    parser.add_argument("--max_delay", type=float, default=15.0,
                        help="... and at most (a default run takes about 20 s after start-up)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill times (recorded)")
    parser.add_argument("--profile", default=None, help="a training profile; default: none, the default training")
    args = parser.parse_args()
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    run_dir = OUT / "results" / "42"
    spell = command(OUT, args.profile)
    rng = random.Random(args.seed)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")},
           "PREFECT_HOME": str(OUT / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    print("command:", " ".join(spell[2:]), flush=True)
    started = time.monotonic()
    kills, lives = 0, []
    for life in range(1, args.kills + 1):
        delay = rng.uniform(args.min_delay, args.max_delay)
        process = subprocess.Popen(spell, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        try:
            process.wait(timeout=delay)
            finished = True
        except subprocess.TimeoutExpired:
            finished = False
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            kills += 1
        deadline = time.monotonic() + 10
        while leftover_processes(OUT) and time.monotonic() < deadline:  # the group's last members exit
            time.sleep(0.1)
        lives.append({"life": life, "delay_s": round(delay, 2), "killed": not finished,
                      "returncode": process.returncode, "at": progress(run_dir)})
        print(f"life {life:2d}: {'kill -9' if not finished else 'finished'} after {delay:5.1f} s; "
              f"{progress(run_dir)}", flush=True)
        if finished:
            break
    final = subprocess.run(spell, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    completed = final.returncode == 0 and json.loads(
        (run_dir / "optimization_summary.json").read_text()).get("optimization_completed") is True
    said = [line for line in final.stdout.splitlines() if line.startswith("rltrader train (")]
    print(f"final run: exit {final.returncode}; {said[0] if said else 'no summary line'}", flush=True)
    if final.returncode != 0:
        print(final.stderr[-3000:], flush=True)
    checked = audit(OUT / "results")
    cache = audit(OUT / "cache")
    left = leftover_processes(OUT)
    runs = flow_runs(OUT / "prefect-home" / "prefect.db")
    still_open = [f"{run['name']} ({run['state']}, created {run['created']})" for run in runs
                  if run["state"] in OPEN_STATES]
    found = (("corrupt", checked["corrupt"] + cache["corrupt"]), ("temp file", checked["temp"] + cache["temp"]),
             ("process left", left), ("flow run left open", still_open))
    for name, paths in found:
        for path in paths:
            print(f"  {name}: {path}")
    result = {
        "kills": kills, "completed": completed,
        "corrupt_files": len(checked["corrupt"]) + len(cache["corrupt"]),
        "temp_files_left": len(checked["temp"]) + len(cache["temp"]),
        "processes_left": len(left),
        "flow_runs": {state: sum(run["state"] == state for run in runs)
                      for state in sorted({run["state"] for run in runs})},
        "flow_runs_left_open": len(still_open),
        "files_checked": {kind: checked["checked"][kind] + cache["checked"][kind] for kind in checked["checked"]},
        "seed": args.seed, "delays_s": [args.min_delay, args.max_delay], "profile": args.profile or "default",
        "seconds": round(time.monotonic() - started, 1), "lives": lives,
    }
    (OUT / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{kills} kills, completed {completed}, {result['corrupt_files']} corrupt of {result['files_checked']}, "
          f"{result['temp_files_left']} temp files left, {len(left)} processes left, flow runs {result['flow_runs']} "
          f"({len(still_open)} left open), {result['seconds'] / 60:.1f} min")
    print(json.dumps({key: value for key, value in result.items() if key != "lives"}))
    return 0 if completed and not result["corrupt_files"] and not result["temp_files_left"] and not left \
        and not still_open else 1


if __name__ == "__main__":
    sys.exit(main())
