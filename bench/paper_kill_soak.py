"""Kill soak of ``rltrader paper``: ``kill -9`` at random points while bars are appended to its file.

A quick model is trained on the shipped gold H1 file (one iteration; or pass ``--bundle``). The
paper account follows a file that starts with 2,000 bars of that history; a writer thread appends
the next bars one at a time (as a terminal export does) while ``rltrader paper --follow`` runs in a
subprocess. At random moments the process is killed with SIGKILL and started again with the same
command, ``--kills`` times: a quarter of the kills in its start-up, the rest 0-2.5 s after it wrote
its first bars (mid-read, mid-decision, mid-write of the state, the ledger or the picture).
When every bar is in the file and the last process has caught up, it is stopped with SIGTERM.

Then an uninterrupted account (another name, the same ``--start``) runs once over the final file,
and the two ledgers are compared: the state's ledger value for value (floats to the bit) and the
``ledger.csv`` files byte for byte. The last line printed is one JSON object with the keys ``kills``,
``ledger_identical``, ``bars``.

Usage: .venv/bin/python bench/paper_kill_soak.py [--kills 15] [--bars 300] [--bundle DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
H1 = ROOT / "data" / "XAUUSD_H1_2016_2026.csv"
HISTORY = 2_000


def quick_bundle(work: Path) -> Path:
    """Train one short iteration on the H1 file; its run's bundle."""
    out = work / "run"
    subprocess.run([sys.executable, "-m", "rltrader", "train", "--data_path", str(H1), "--results_dir", str(out),
                    "--cache_dir", str(out / "cache"), "--iterations", "1", "--total_timesteps", "2048",
                    "--min_timesteps", "2048", "--verbose", "0", "--settings_file", str(out / "settings.json")],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return out / "42" / "bundle"


def paper_command(bundle: Path, data: Path, name: str, paper_dir: Path, start: str, follow: bool) -> list[str]:
    command = [sys.executable, "-m", "rltrader", "paper", "--bundle", str(bundle), "--data_path", str(data),
               "--name", name, "--paper_dir", str(paper_dir), "--start", start]
    return command + (["--follow", "--poll", "0.05"] if follow else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=15, help="SIGKILLs at random moments")
    parser.add_argument("--bars", type=int, default=400, help="bars appended while the account runs")
    parser.add_argument("--bundle", type=Path, default=None, help="a bundle (default: train a quick one)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the kill times")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="rltrader-soak-"))
    processes: list[subprocess.Popen] = []
    try:
        bundle = args.bundle or quick_bundle(work)
        lines = H1.read_text(encoding="utf-8").splitlines(keepends=True)
        header, rows = lines[0], lines[1 : 1 + HISTORY + args.bars]
        data = work / "XAUUSD_H1_live.csv"
        data.write_text(header + "".join(rows[:HISTORY]), encoding="utf-8")
        start = rows[HISTORY - 1].split(",")[0].replace(".", "-")
        paper_dir = work / "paper"
        done = threading.Event()

        def append() -> None:  # a terminal export: one closed bar at a time
            for row in rows[HISTORY:]:
                time.sleep(rng.uniform(0.05, 0.35))
                with data.open("a", encoding="utf-8") as handle:
                    handle.write(row)
            done.set()

        writer = threading.Thread(target=append, daemon=True)
        command = paper_command(bundle, data, "soak", paper_dir, start, follow=True)
        kills = 0
        state = paper_dir / "soak" / "state.json"

        def ledger_bars() -> int:
            try:
                return len(json.loads(state.read_text())["ledger"]["time"])
            except (FileNotFoundError, ValueError):
                return 0

        working_kills = 0
        log = (work / "soak.log").open("w")
        began = time.perf_counter()
        writer.start()
        while True:
            process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            processes.append(process)
            if kills < args.kills:
                before = ledger_bars()
                if rng.random() < 0.25:  # a quarter of the kills land in start-up (imports, loading the state)
                    time.sleep(rng.uniform(0.3, 3.0))
                else:  # the rest once this process has written bars: mid-read, mid-decision or mid-write
                    deadline = time.monotonic() + 30
                    while ledger_bars() == before and time.monotonic() < deadline and not done.is_set():
                        time.sleep(0.02)
                    time.sleep(rng.uniform(0.0, 2.5))
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills += 1
                done_here = ledger_bars() - before
                working_kills += done_here > 0
                print(f"kill {kills:2d} at {time.perf_counter() - began:6.1f} s: rc {process.returncode}; this process "
                      f"had added {done_here} bar(s) to the ledger", flush=True)
                continue
            done.wait()
            last = rows[-1].split(",")[0].replace(".", "-")
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # until the last bar is in the ledger
                if state.is_file() and json.loads(state.read_text())["ledger"]["time"][-1:] == [last]:
                    break
                time.sleep(0.5)
            stopping = time.perf_counter()
            process.send_signal(signal.SIGTERM)  # SIGINT is ignored by a process started in the background
            process.wait(timeout=30)
            print(f"caught up; stopped with SIGTERM in {time.perf_counter() - stopping:.1f} s (rc "
                  f"{process.returncode})", flush=True)
            break
        reference = subprocess.run(paper_command(bundle, data, "reference", paper_dir, start, follow=False),
                                   cwd=ROOT, capture_output=True, text=True, check=True)
        print(reference.stdout.strip().splitlines()[-1])
        soaked = json.loads((paper_dir / "soak" / "state.json").read_text())["ledger"]
        uninterrupted = json.loads((paper_dir / "reference" / "state.json").read_text())["ledger"]
        same_values = soaked == uninterrupted
        same_bytes = (paper_dir / "soak" / "ledger.csv").read_bytes() == \
            (paper_dir / "reference" / "ledger.csv").read_bytes()
        bars = len(uninterrupted["time"])
        print(f"ledgers: {bars} bars each; identical values {same_values}, identical ledger.csv {same_bytes}; "
              f"stray temporary files left: {sorted(p.name for p in (paper_dir / 'soak').glob('.tmp-*'))}")
        print(f"{working_kills} of {kills} kills hit a process that had already written bars (the rest, start-up)")
        print(json.dumps({"kills": kills, "ledger_identical": bool(same_values and same_bytes), "bars": bars,
                          "kills_after_writing": working_kills}))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
