"""Run the optimization guide's commands, verbatim but for a tiny budget, and count passes.

The guide tells users to type ``python train_ppo_optimized.py --data_path ...`` with
variants, then compare two result folders. Each command here is that, with
``--profile smoke --iterations 2 --total_timesteps 1024 --min_timesteps 512`` appended
so it takes seconds, into a temporary results directory; a command passes when it exits 0
and leaves what the guide says it leaves (a summary, a comparison, a table).

Usage: .venv/bin/python bench/guide_commands.py
The last line printed is one JSON object: passed, total, seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = "data/XAUUSDm_15min.csv"
TINY = ["--profile", "smoke", "--iterations", "2", "--total_timesteps", "1024", "--min_timesteps", "512"]


def guide_commands(results: Path, settings: Path) -> list[tuple[str, list[str], Path]]:
    """(name, argv, file that must exist afterwards) for each command of the guide."""
    shim = [sys.executable, "train_ppo_optimized.py", "--data_path", DATA]
    common = [*TINY, "--settings_file", str(settings)]
    return [
        ("quick start", [*shim, *common, "--results_dir", str(results / "quick")],
         results / "quick" / "42" / "optimization_summary.json"),
        ("conservative", [*shim, *common, "--early_stopping_patience", "5", "--convergence_threshold", "0.005",
                          "--results_dir", str(results / "conservative")],
         results / "conservative" / "42" / "optimization_summary.json"),
        ("aggressive", [*shim, *common, "--early_stopping_patience", "2", "--convergence_threshold", "0.02",
                        "--results_dir", str(results / "aggressive")],
         results / "aggressive" / "42" / "optimization_summary.json"),
        ("disable optimizations", [*shim, *common, "--no-adaptive_timesteps", "--no-warm_start", "--no-early_stopping",
                                   "--no-progressive_training", "--no-cache_environments",
                                   "--results_dir", str(results / "custom")],
         results / "custom" / "42" / "optimization_summary.json"),
        ("comparison mode", [*shim, *common, "--benchmark_mode", "--results_dir", str(results / "bench")],
         results / "bench" / "benchmark-42" / "comparison.json"),
        ("original method", [*shim, *common, "--use_original_training", "--seed", "42",
                             "--results_dir", str(results / "pair")],
         results / "pair" / "42" / "optimization_summary.json"),
        ("optimized method", [*shim, *common, "--seed", "999", "--results_dir", str(results / "pair")],
         results / "pair" / "999" / "optimization_summary.json"),
        ("compare", [sys.executable, "-m", "rltrader", "compare", "--original", str(results / "pair" / "42"),
                     "--optimized", str(results / "pair" / "999")], results / "pair" / "999"),
    ]


def main() -> None:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rltrader-guide-") as tmp:
        results, settings = Path(tmp) / "results", Path(tmp) / "settings.json"
        passed, commands = 0, guide_commands(results, settings)
        for name, argv, expected in commands:
            begun = time.perf_counter()
            done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
            ok = done.returncode == 0 and expected.exists() and "Traceback" not in done.stderr
            if name == "compare":
                ok = ok and "speedup" in done.stdout
            passed += ok
            print(f"{'PASS' if ok else 'FAIL'}  {name:<22} {time.perf_counter() - begun:5.1f} s  "
                  f"{' '.join(argv[1:4])} ...", flush=True)
            if not ok:
                print((done.stdout + done.stderr)[-2000:])
    seconds = time.perf_counter() - started
    print(f"\n{passed}/{len(commands)} guide commands passed in {seconds:.0f} s")
    print(json.dumps({"passed": passed, "total": len(commands), "seconds": round(seconds, 1)}))
    sys.exit(0 if passed == len(commands) else 1)


if __name__ == "__main__":
    main()
