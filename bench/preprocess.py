"""Cold and warm (cache hit) preprocessing time and peak memory.

Cases: the shipped XAUUSD M15 file, the real XAUUSD H1 file (59k bars, 2016-2026) and a
generated 1,000,000-bar file in the MT5 Python API format. Each measurement runs in a
fresh process, so "warm" pays what a new run pays on a hit (hashing the file's content
and reading the cache metadata; no in-process memo) and peak RSS belongs to that case
alone. The measured call is ``rltrader.features.preparation.preprocess``: the Prefect task runs
exactly this function, and Prefect's own start-up is not preprocessing.

Targets (issue): 1M bars cold <= 15 s, warm <= 0.5 s, peak memory <= 1.5 GB.
Usage: .venv/bin/python bench/preprocess.py [--rows 1000000]
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
M15 = ROOT / "data" / "XAUUSDm_15min.csv"
H1 = ROOT / "data" / "XAUUSD_H1_2016_2026.csv"

MEASURE = r"""
import json, resource, sys, time
from rltrader.config import Config
from rltrader.features.preparation import preprocess
config = Config().with_overrides({"cache.dir": sys.argv[2]})
started = time.perf_counter()
prepared = preprocess(sys.argv[1], config)
elapsed = time.perf_counter() - started
started = time.perf_counter()
rows = len(prepared.load())
load_s = time.perf_counter() - started
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": elapsed, "cache_hit": prepared.cache_hit, "rows": rows,
                  "load_s": load_s, "peak_rss_mb": peak_mb}))
"""


def generate_bars(path: Path, rows: int, seed: int = 7) -> Path:
    """A gold-like random walk of 1-minute bars with weekend gaps, in MT5 API format."""
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2018-01-01 00:00").value // 10**9
    minutes = np.arange(int(rows * 1.45))
    times = start + minutes * 60
    weekday = ((times // 86400) + 3) % 7  # 1970-01-01 was a Thursday
    times = times[weekday < 5][:rows]
    steps = rng.normal(0, 0.0004, rows)
    close = 1300.0 * np.exp(np.cumsum(steps))
    open_ = np.concatenate([[1300.0], close[:-1]])
    wick = np.abs(rng.normal(0, 0.0003, (2, rows))) * close
    frame = pd.DataFrame({
        "time": times,
        "open": open_.round(2),
        "high": (np.maximum(open_, close) + wick[0]).round(2),
        "low": (np.minimum(open_, close) - wick[1]).round(2),
        "close": close.round(2),
        "tick_volume": rng.integers(50, 3000, rows),
        "spread": rng.integers(5, 40, rows),
        "real_volume": 0,
    })
    frame["high"] = frame[["open", "high", "close"]].max(axis=1)
    frame["low"] = frame[["open", "low", "close"]].min(axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)
    return path


def measure(data: Path, cache_dir: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", MEASURE, str(data), str(cache_dir)],
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"measurement failed for {data}:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the generated file")
    args = parser.parse_args()
    generated = generate_bars(OUT / f"generated_{args.rows}.csv", args.rows)
    cases = {"m15": M15, "h1": H1, "rows_1m": generated}
    figures: dict[str, float] = {}
    peak = 0.0
    print(f"{'case':<8} {'bars':>10} {'file MB':>8} {'cold s':>8} {'warm s':>8} {'load s':>7} {'peak MB':>8}")
    for name, path in cases.items():
        cache_dir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        try:
            cold = measure(path, cache_dir)
            warm = measure(path, cache_dir)
        finally:
            shutil.rmtree(cache_dir, ignore_errors=True)
        assert not cold["cache_hit"] and warm["cache_hit"], (cold, warm)
        figures[f"{name}_cold_s"] = round(cold["seconds"], 3)
        figures[f"{name}_warm_s"] = round(warm["seconds"], 4)
        peak = max(peak, cold["peak_rss_mb"], warm["peak_rss_mb"])
        print(f"{name:<8} {cold['rows']:>10,} {path.stat().st_size / 2**20:>8.1f} {cold['seconds']:>8.3f} "
              f"{warm['seconds']:>8.4f} {warm['load_s']:>7.3f} {max(cold['peak_rss_mb'], warm['peak_rss_mb']):>8.0f}")
    figures["peak_rss_mb"] = round(peak, 1)
    targets = {"rows_1m_cold_s": 15.0, "rows_1m_warm_s": 0.5, "peak_rss_mb": 1536.0}
    for key, limit in targets.items():
        print(f"target {key} <= {limit:g}: {'met' if figures[key] <= limit else 'MISSED'} ({figures[key]:g})")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
