"""Live decisions against the backtest, bar by bar, on whole test splits.

Two markets, each trained briefly with ``rltrader train`` (1 iteration) so that its model trades:

* the shipped 10-year gold H1 file (``data/XAUUSD_H1_2016_2026.csv``), default splits;
* a 50,000-bar M15 test split: a known-answer momentum market from ``rltrader synth`` (the
  project has no real M15 file that long), 80,000 bars split 25/10/65.

On each test split:

1. **Stream**: a :class:`~rltrader.live.stream.DecisionStream` gets only the bundle's warm-up of
   history before the split's first decision bar, then the split's bars one call per bar. Its
   normalized features are compared with the batch pipeline's (the cached parquet the evaluator
   reads), its actions with the fast evaluator's, its final equity with the evaluator's ledger; each
   call is timed (the per-bar decision latency: features, projection, LSTM, actor, account).
2. **Paper**: ``rltrader paper``'s account (:class:`~rltrader.live.paper.PaperAccount`) on a copy of
   the file that ends at the split's last bar, started at the split's first decision bar; its
   ledger's actions and final equity against the evaluator's.

Targets (issue 34): 0 action mismatches, max feature difference <= 1e-9, equity equal to 1e-9
relative, p99 <= 1 ms per bar; and ``rltrader signal`` on a 10,000-bar file within 1 s after start-up.
The last line printed is one JSON object with the keys ``bars``, ``action_mismatches``,
``max_feature_abs_diff``, ``equity_rel_diff``, ``step_p50_ms``, ``step_p99_ms`` (and the signal's seconds).

Usage: .venv/bin/python bench/parity.py [--timesteps 4096] [--m15-bars 80000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
H1 = ROOT / "data" / "XAUUSD_H1_2016_2026.csv"


def train(data: Path, out: Path, config: Path | None, timesteps: int) -> Path:
    """A quick run (one iteration) of ``rltrader train``; returns its run directory."""
    command = [sys.executable, "-m", "rltrader", "train", "--data_path", str(data), "--results_dir", str(out),
               "--cache_dir", str(out / "cache"), "--iterations", "1", "--total_timesteps", str(timesteps),
               "--min_timesteps", str(timesteps), "--verbose", "0", "--settings_file", str(out / "settings.json")]
    if config is not None:
        command += ["--config", str(config)]
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return out / "42"


def compare(name: str, data: Path, run_dir: Path, config_path: Path | None, work: Path) -> dict:
    """Stream and paper account against the batch features and the fast evaluator on ``data``'s test split."""
    from rltrader.bundle import read_bundle
    from rltrader.config import load_config
    from rltrader.engine.model_files import algorithm_class
    from rltrader.env import MarketData, evaluation_config
    from rltrader.env.trading_env import EpisodeBounds
    from rltrader.evaluation.fast import fast_actions
    from rltrader.evaluation.ledger import replay
    from rltrader.features.preparation import preprocess
    from rltrader.live.bars import read_bar_file
    from rltrader.live.paper import PaperAccount
    from rltrader.live.stream import DecisionStream

    config = load_config(config_path).with_overrides({"cache.dir": str(run_dir.parent / "cache")})
    prepared = preprocess(data, config)
    market = MarketData.from_prepared(prepared, config, data)
    bundle = read_bundle(run_dir / "bundle")
    model = algorithm_class(bundle.description.algorithm).load(str(bundle.policy_path), device="cpu")
    actions = fast_actions([model], market, "test", config.env)[0]
    bounds = EpisodeBounds.of(market, "test", evaluation_config(config.env))
    ledger = replay(market, bounds.first, actions, config.env.initial_balance)
    dropped = int(prepared.metadata["splits"]["warmup_bars_dropped"])
    bars = read_bar_file(data, bundle.description).bars
    first, last = bounds.first + dropped, bounds.last + dropped  # file rows of the first decision and last bar
    assert bars.timestamps[first] == market.timestamps[bounds.first].astype(np.int64)

    stream = DecisionStream(bundle)
    stream.advance(bars.rows(first - bundle.description.warmup_bars, first))  # the warm-up only
    stream.advance(bars.rows(first, first + 1))
    stream = DecisionStream(bundle)  # again, now that every kernel is loaded: time the real thing
    stream.advance(bars.rows(first - bundle.description.warmup_bars, first))
    features, streamed, equity, seconds = [], [], [], []
    for row in range(first, last + 1):
        began = time.perf_counter()
        batch = stream.advance(bars.rows(row, row + 1))
        seconds.append(time.perf_counter() - began)
        features.append(batch.features[0])
        streamed.append(int(batch.actions[0]))
        equity.append(float(batch.equity[0]))
    steps = len(actions)
    streamed_actions = np.array(streamed[:steps])
    feature_diff = float(np.abs(np.array(features, dtype=np.float64)
                                - market.features[bounds.first : bounds.last + 1].astype(np.float64)).max())
    final = float(ledger.equity[-1])

    shortened = work / f"{name}_to_test_end.csv"
    _copy_rows(data, shortened, last + 1)
    account = PaperAccount(work / "paper" / name, bundle, shortened, int(bars.timestamps[first]))
    account.process(account.new_bars())
    frame = account.ledger_frame()
    paper_actions = frame["decision"].map({"short": 0, "flat": 1, "long": 2}).to_numpy()[:steps]
    paper_final = float(frame["equity"].iloc[-1])
    ms = np.array(seconds) * 1e3
    result = {
        "market": name, "bars": steps, "stream_mismatches": int((streamed_actions != actions).sum()),
        "paper_mismatches": int((paper_actions != actions).sum()), "max_feature_abs_diff": feature_diff,
        "evaluator_final_equity": final, "stream_final_equity": equity[steps],
        "paper_final_equity": paper_final,
        "equity_rel_diff": max(abs(equity[steps] - final), abs(paper_final - final)) / abs(final),
        "step_p50_ms": float(np.percentile(ms, 50)), "step_p99_ms": float(np.percentile(ms, 99)),
        "step_max_ms": float(ms.max()), "warmup_bars": bundle.description.warmup_bars,
        "trades": int((np.diff(np.concatenate(([1], actions))) != 0).sum()),
    }
    print(f"{name}: {steps:,} test bars ({market.timestamps[bounds.first]} .. {market.timestamps[bounds.last]}), "
          f"{result['trades']:,} position changes; warm-up {result['warmup_bars']} bars")
    print(f"  stream vs evaluator: {result['stream_mismatches']} action mismatches, max feature diff "
          f"{feature_diff:.3g}, final equity {equity[steps]:,.6f} vs {final:,.6f}")
    print(f"  paper  vs evaluator: {result['paper_mismatches']} action mismatches, final equity {paper_final:,.6f}")
    print(f"  per-bar step: p50 {result['step_p50_ms']:.3f} ms, p99 {result['step_p99_ms']:.3f} ms, "
          f"max {result['step_max_ms']:.3f} ms")
    return result


def time_signal(bundle: Path, work: Path) -> dict:
    """``rltrader signal`` on the last 10,000 bars of the H1 file: its own timing (reading, warm-up and every
    decision after start-up) and the whole command's (Python, torch, the policy, the kernels from cache)."""
    lines = H1.read_text(encoding="utf-8").splitlines(keepends=True)
    data = work / "XAUUSD_H1_last10000.csv"
    data.write_text(lines[0] + "".join(lines[-10_000:]), encoding="utf-8")
    command = [sys.executable, "-m", "rltrader", "signal", "--bundle", str(bundle), "--data_path", str(data)]
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True)  # the kernels compiled once
    began = time.perf_counter()
    done = subprocess.run(command, check=True, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - began
    record = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"signal on 10,000 H1 bars: {record['seconds']:.3f} s after start-up, {elapsed:.1f} s for the whole "
          f"command; {record['action']} at {record['bar']}")
    return {"seconds": record["seconds"], "command_s": round(elapsed, 2)}


def _copy_rows(source: Path, target: Path, bars: int) -> None:
    """The first ``bars`` data rows of a CSV with a header line, byte for byte."""
    with source.open("rb") as reader, target.open("wb") as writer:
        writer.write(reader.readline())
        for _ in range(bars):
            writer.write(reader.readline())


def quick_runs(work: Path, timesteps: int, m15_bars: int) -> Iterator[tuple[str, Path, Path | None, Path]]:
    """The two markets' quick runs: (name, bar file, config or None, run directory), trained as they are asked
    for. The M15 market is written first (``rltrader synth momentum``), split 25/10/65."""
    m15 = work / "XAUUSD_M15_momentum.csv"
    subprocess.run([sys.executable, "-m", "rltrader", "synth", "momentum", "--bars", str(m15_bars),
                    "--out", str(m15)], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    m15_config = work / "m15.yaml"
    m15_config.write_text("splits: {train: 0.25, validation: 0.10, test: 0.65}\n", encoding="utf-8")
    for name, data, config in (("gold_H1", H1, None), ("M15_momentum", m15, m15_config)):
        began = time.perf_counter()
        run_dir = train(data, work / f"run_{name}", config, timesteps)
        print(f"{name}: trained in {time.perf_counter() - began:.0f} s")
        yield name, data, config, run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timesteps", type=int, default=4096, help="training timesteps of each quick run")
    parser.add_argument("--m15-bars", type=int, default=80_000, help="bars of the synthetic M15 market")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rltrader-parity-"))
    try:
        results = [compare(name, data, run_dir, config, work)
                   for name, data, config, run_dir in quick_runs(work, args.timesteps, args.m15_bars)]
        signal = time_signal(work / "run_gold_H1" / "42" / "bundle", work)
        summary = {
            "bars": sum(r["bars"] for r in results),
            "action_mismatches": sum(r["stream_mismatches"] + r["paper_mismatches"] for r in results),
            "max_feature_abs_diff": max(r["max_feature_abs_diff"] for r in results),
            "equity_rel_diff": max(r["equity_rel_diff"] for r in results),
            "step_p50_ms": round(max(r["step_p50_ms"] for r in results), 4),
            "step_p99_ms": round(max(r["step_p99_ms"] for r in results), 4),
            "markets": {r["market"]: r["bars"] for r in results},
            "signal_10k_bars_s": signal["seconds"], "signal_command_s": signal["command_s"],
        }
        print(json.dumps(summary))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
