"""The exported ONNX graph against the backtest, bar by bar, on whole test splits, in ONNX Runtime 1.14.1
(MetaTrader 5's, in a Python 3.10 environment of its own) and in the current one.

The two quick runs of ``bench/parity.py`` (the shipped gold H1 file, default splits; an 80,000-bar
M15 momentum market split 25/10/65 for a 51,957-bar test split), each exported with
``rltrader export --format onnx`` (which checks itself), then measured here: the graph's actions
against the fast evaluator's (its ``account`` input is the backtest's position and PnL, so a flip
does not change the path of the bars after it; each flip is listed with its probability margin),
the equity of the graph's own actions against the evaluator's, and ``session.run``'s time per bar
(one thread).

Targets (issues 35, 46): 0 mismatches in both runtimes (a float32 near-tie flip at most 1 per 10,000 bars,
each reported), p99 <= 0.5 ms per bar. The last line is one JSON object with the keys ``bars``,
``onnx_action_mismatches``, ``max_probability_abs_diff``, ``equity_rel_diff``, ``onnx_p99_ms``,
``graph_bytes``, ``ort114_action_mismatches``, ``ort114_p99_ms`` (and ``ort114_max_probability_abs_diff``,
``ort114_equity_rel_diff``, the runtimes' versions).

Usage: .venv/bin/python bench/onnx_parity.py [--timesteps 4096] [--m15-bars 80000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parity import ROOT, quick_runs  # noqa: E402  (the same quick runs)


def measure(name: str, data: Path, run_dir: Path, config_path: Path | None, work: Path) -> dict:
    from rltrader.bundle import read_bundle
    from rltrader.config import load_config
    from rltrader.engine.model_files import algorithm_class
    from rltrader.env import MarketData, evaluation_config
    from rltrader.env.trading_env import EpisodeBounds
    from rltrader.evaluation.fast import fast_actions
    from rltrader.evaluation.ledger import replay
    from rltrader.export.graph import GRAPH_FILE
    from rltrader.export.onnx_export import (
        compare,
        graph_outputs,
        graph_outputs_114,
        runtime_version,
        stream_split,
        test_split_rows,
    )
    from rltrader.features.preparation import preprocess
    from rltrader.live.bars import read_bar_file

    config = load_config(config_path).with_overrides({"cache.dir": str(run_dir.parent / "cache")})
    market = MarketData.from_prepared(preprocess(data, config), config, data)
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "rltrader", "export", str(run_dir), "--out", str(work / name),
                           "--format", "onnx", "--data_path", str(data)], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(done.stderr)
    print(f"{name}: {done.stdout.splitlines()[0]} ({time.perf_counter() - began:.0f} s with its own checks)")
    bundle = read_bundle(work / name)
    model = algorithm_class(bundle.description.algorithm).load(str(bundle.policy_path), device="cpu")
    evaluator = fast_actions([model], market, "test", config.env)[0]
    bounds = EpisodeBounds.of(market, "test", evaluation_config(config.env))
    bars = read_bar_file(data, bundle.description).bars
    first, last = test_split_rows(bundle, bars)
    graph = (work / name / GRAPH_FILE).read_bytes()
    streamed = stream_split(bundle, bars, first, last)
    steps = len(evaluator)
    final = replay(market, bounds.first, evaluator, config.env.initial_balance).equity[-1]
    result = {"market": name, "bars": steps, "graph_bytes": len(graph)}
    for runtime, outputs in (("current", graph_outputs(bundle, graph, streamed)),
                             ("ort114", graph_outputs_114(bundle, graph, streamed))):
        report = compare(streamed, outputs)
        actions = report["actions"][:steps]
        mismatches = int((actions != evaluator).sum())  # against the fast evaluator itself, bar by bar
        graph_final = replay(market, bounds.first, actions, config.env.initial_balance).equity[-1]
        result[runtime] = {"mismatches": mismatches, "flips": report["mismatches"],
                           "max_probability_abs_diff": report["max_probability_abs_diff"],
                           "max_feature_abs_diff": report["max_feature_abs_diff"],
                           "equity_rel_diff": float(abs(graph_final - final) / abs(final)),
                           "p50_ms": report["p50_ms"], "p99_ms": report["p99_ms"]}
        figures = result[runtime]
        label = "ONNX Runtime 1.14.1 (MetaTrader 5's)" if runtime == "ort114" else f"ONNX Runtime {runtime_version()}"
        print(f"  {label}: {steps:,} test bars, {mismatches} action mismatches against the fast evaluator "
              f"{[(m['bar'], round(m['margin'], 6)) for m in report['mismatches']]}, probabilities within "
              f"{figures['max_probability_abs_diff']:.2g}, features within {figures['max_feature_abs_diff']:.2g}; "
              f"final equity {graph_final:,.6f} vs {final:,.6f}; session.run p50 {figures['p50_ms']:.3f} ms, "
              f"p99 {figures['p99_ms']:.3f} ms; graph {len(graph):,} bytes")
    return result


def main() -> None:
    from rltrader.export.onnx_export import runtime_version

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timesteps", type=int, default=4096)
    parser.add_argument("--m15-bars", type=int, default=80_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rltrader-onnx-"))
    try:
        results = [measure(name, data, run_dir, config, work)
                   for name, data, config, run_dir in quick_runs(work, args.timesteps, args.m15_bars)]
        print(json.dumps({
            "bars": sum(r["bars"] for r in results),
            "onnx_action_mismatches": sum(r["current"]["mismatches"] for r in results),
            "max_probability_abs_diff": max(r["current"]["max_probability_abs_diff"] for r in results),
            "equity_rel_diff": max(r["current"]["equity_rel_diff"] for r in results),
            "onnx_p99_ms": round(max(r["current"]["p99_ms"] for r in results), 4),
            "graph_bytes": max(r["graph_bytes"] for r in results),
            "onnx_p50_ms": round(max(r["current"]["p50_ms"] for r in results), 4),
            "ort114_action_mismatches": sum(r["ort114"]["mismatches"] for r in results),
            "ort114_p99_ms": round(max(r["ort114"]["p99_ms"] for r in results), 4),
            "ort114_max_probability_abs_diff": max(r["ort114"]["max_probability_abs_diff"] for r in results),
            "ort114_equity_rel_diff": max(r["ort114"]["equity_rel_diff"] for r in results),
            "onnxruntime": runtime_version(), "ort114": "1.14.1",
        }))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
