"""Export a bundle's ONNX graph and prove it against the live stream (= the fast evaluator) bar by bar.

The check runs the graph in ONNX Runtime over a whole split beside a :class:`DecisionStream`: both
get the same bars; the graph gets the stream's position and PnL as its ``account`` input (what the
Expert Advisor reads from its account), so one near-tie flip does not send the two down different
paths and every later bar is still compared. Counted: the bars, the actions that differ (each with
its probability margin: a float32 rounding flip shows a margin near zero), the largest probability
difference and the largest normalized-feature difference.

How a caller (the Expert Advisor) runs the graph: feed the warm-up's bars one by one with
``account = [0, 0]`` and a zero ``lstm`` state, keeping only ``state_out``; from the first decision
bar on, carry ``lstm_out`` too. The LSTM starts from zero at the first decision, as the backtest's
episode does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rltrader.bundle import Bundle, BundleError, export_bundle, source_bundle
from rltrader.data.bar_arrays import BarArrays
from rltrader.export.graph import GRAPH_FILE, OPSET, GraphError, build_graph, initial_state
from rltrader.export.mql5 import EA_FILE, expert_advisor
from rltrader.export.ort_runner import session_of, step_bundle_graph, step_feature_graph
from rltrader.features.cache import file_digest
from rltrader.live.bars import read_bar_file
from rltrader.live.stream import DecisionStream


def _observed_account(stream: DecisionStream) -> np.ndarray:
    policy = stream.policy
    if policy.recurrent:
        hidden = policy.hidden.shape[2]
        return policy.layer0_input[:, hidden : hidden + 2].copy()
    return policy.position_pnl.copy()


@dataclass(frozen=True)
class StreamedSplit:
    """The live stream over a split's bars (from the warm-up before it), and what the graph is fed for each bar.

    ``bar`` ``(N, 7)`` and ``account`` ``(N, 2)`` are the graph's inputs: the bar's fields, and the position and
    PnL the stream's policy observes at that bar's close (so one near-tie flip does not send the graph down
    another path); ``deciding`` marks the bars after the warm-up; ``actions``, ``probabilities`` and
    ``features`` are the stream's (= the fast evaluator's)."""

    timestamps: np.ndarray
    bar: np.ndarray
    account: np.ndarray
    deciding: np.ndarray
    actions: np.ndarray
    probabilities: np.ndarray
    features: np.ndarray


def stream_split(bundle: Bundle, bars: BarArrays, first: int, last: int) -> StreamedSplit:
    """Stream bars ``first - warm-up .. last`` one at a time, keeping what the graph needs (:class:`StreamedSplit`)."""
    stream = DecisionStream(bundle)
    rows = bars.rows(first - bundle.description.warmup_bars, last + 1)
    accounts, actions, probabilities, features = [], [], [], []
    for row in range(len(rows)):
        batch = stream.advance(rows.rows(row, row + 1))
        accounts.append(_observed_account(stream)[0].astype(np.float32))
        actions.append(int(batch.actions[0]))
        probabilities.append(batch.probabilities[0])
        features.append(batch.features[0])
    actions_array = np.array(actions, dtype=np.int64)
    return StreamedSplit(rows.timestamps, rows.fields(), np.array(accounts, dtype=np.float32), actions_array >= 0,
                         actions_array, np.array(probabilities), np.array(features, dtype=np.float32))


def graph_outputs(bundle: Bundle, graph_bytes: bytes, streamed: StreamedSplit) -> dict[str, np.ndarray]:
    """Run the graph over ``streamed``'s bars in this Python's ONNX Runtime, as the Expert Advisor does
    (:func:`rltrader.export.ort_runner.step_bundle_graph`, the loop 1.14.1 runs too)."""
    return step_bundle_graph(session_of(graph_bytes), streamed.bar, streamed.account, streamed.deciding,
                             initial_state(bundle))


def graph_outputs_114(bundle: Bundle, graph_bytes: bytes, streamed: StreamedSplit) -> dict[str, np.ndarray]:
    """The same in ONNX Runtime 1.14.1 (MetaTrader 5's), in its own Python (:mod:`rltrader.export.runtime114`).

    :raises rltrader.export.runtime114.RuntimeMissing: no Python 3.10 to build that runtime's environment with
    """
    from rltrader.export.runtime114 import run_graph

    return run_graph("run", graph_bytes, {"bar": streamed.bar, "account": streamed.account,
                                          "deciding": streamed.deciding, "state": initial_state(bundle)})


def feature_graph_outputs(graph_bytes: bytes, fields: np.ndarray, state: np.ndarray,
                          runtime_114: bool = False) -> np.ndarray:
    """Raw features ``(N, F)`` of a features-only graph (:func:`rltrader.export.graph.feature_graph`) stepped over
    ``fields`` ``(N, 7)`` from ``state``, in this Python's ONNX Runtime or in 1.14.1 (MetaTrader 5's)."""
    from rltrader.export.runtime114 import run_graph

    state = np.asarray(state, dtype=np.float64).reshape(1, -1)
    fields = np.ascontiguousarray(fields, dtype=np.float64)
    if runtime_114:
        return run_graph("features", graph_bytes, {"bar": fields, "state": state})["features"]
    return step_feature_graph(session_of(graph_bytes), fields, state)


def compare(streamed: StreamedSplit, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """The graph's outputs against the stream's on the deciding bars: mismatched actions (each with the stream's
    probability margin: a float32 rounding flip shows a margin near zero), the largest probability and
    normalized-feature differences, and ``session.run``'s time per bar."""
    deciding = streamed.deciding
    actions = outputs["action"][deciding]
    expected = streamed.actions[deciding]
    mismatches = []
    for index in np.flatnonzero(actions != expected):
        ordered = np.sort(streamed.probabilities[deciding][index])
        mismatches.append({"bar": int(streamed.timestamps[deciding][index]), "onnx": int(actions[index]),
                           "stream": int(expected[index]), "margin": float(ordered[-1] - ordered[-2])})
    ms = outputs["seconds"][deciding] * 1e3
    probability = np.abs(outputs["probabilities"][deciding].astype(np.float64) - streamed.probabilities[deciding])
    feature = np.abs(outputs["features"][deciding].astype(np.float64)
                     - streamed.features[deciding].astype(np.float64))
    return {"bars": int(deciding.sum()), "mismatches": mismatches,
            "max_probability_abs_diff": float(probability.max(initial=0.0)),
            "max_feature_abs_diff": float(feature.max(initial=0.0)),
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "actions": actions}


PARITY_FILE = "onnx_parity.json"
#: An export may disagree with the stream on at most this share of bars (float32 near-ties), else it fails.
MISMATCHES_PER_BAR = 1 / 10_000


RUNTIME_114_KEY = "onnxruntime_1_14_1"


def runtime_version() -> str:
    """This Python's ONNX Runtime version."""
    import onnxruntime

    return onnxruntime.__version__


def parity_114(bundle: Bundle, graph_bytes: bytes, streamed: StreamedSplit) -> dict[str, Any]:
    """The graph against the stream in ONNX Runtime 1.14.1: :func:`compare`'s figures with ``checked: true``, or
    ``checked: false`` and why (no Python 3.10 here to run that runtime with)."""
    from rltrader.export.runtime114 import RuntimeMissing

    try:
        outputs = graph_outputs_114(bundle, graph_bytes, streamed)
    except RuntimeMissing as error:
        return {"checked": False, "why": str(error)}
    figures = compare(streamed, outputs)
    figures.pop("actions")
    return {"checked": True, **figures}


def test_split_rows(bundle: Bundle, bars: BarArrays) -> tuple[int, int]:
    """Rows of ``bars`` of the bundle's test split: its first and last bar."""
    split = bundle.description.test_split
    if split is None:
        raise BundleError(bundle.root, "too old for the ONNX exporter (it records no test split); run its "
                                       "`rltrader train` command again, which writes a new bundle")
    start, end = (int(np.datetime64(split[key], "ns").astype(np.int64)) for key in ("start", "end"))
    first = int(np.searchsorted(bars.timestamps, start))
    last = int(np.searchsorted(bars.timestamps, end))
    if last >= len(bars) or bars.timestamps[last] != end or first < bundle.description.warmup_bars:
        raise BundleError(bundle.root, f"the bar file does not hold the test split ({split['start']} to "
                                       f"{split['end']}) after {bundle.description.warmup_bars} bars of warm-up; "
                                       "pass the bars it trained on with --data_path")
    return first, last


def export_onnx(source: str, out: str, data_path: str | None = None) -> tuple[Bundle, dict[str, Any]]:
    """Write the bundle of ``source`` to ``out`` with its ONNX graph and the graph's parity report.

    The graph is checked on the bundle's test split (in the bars it trained on: ``data_path``, or the
    training file the bundle names, if it is still there and unchanged); more than one mismatch per
    10,000 bars fails the export, and nothing is written.

    :param source: a finished run's directory or a bundle
    :param out: the exported bundle's directory
    :param data_path: the bar file the model trained on (default: the bundle's ``training_data.path``)
    """
    bundle = source_bundle(source)
    about = bundle.description
    path = Path(data_path or about.training_data.path)
    if not path.is_file():
        raise BundleError(path, "not found: the export checks the graph on the bars the model trained on; pass "
                                "them with --data_path")
    if file_digest(path) != about.training_data.sha256:
        raise BundleError(path, f"is not the file the model trained on (SHA-256 {about.training_data.sha256[:12]}); "
                                "pass that file with --data_path")
    try:
        graph = build_graph(bundle).SerializeToString()
    except GraphError as error:
        raise BundleError(bundle.root, f"cannot be expressed as an ONNX graph: {error}") from None
    bars = read_bar_file(path, about).bars
    first, last = test_split_rows(bundle, bars)
    streamed = stream_split(bundle, bars, first, last)
    report = {**compare(streamed, graph_outputs(bundle, graph, streamed)), "graph_bytes": len(graph)}
    report.pop("actions")
    allowed = int(report["bars"] * MISMATCHES_PER_BAR)
    report.update(opset=OPSET, allowed_mismatches=allowed, reference="the live stream (bit for bit the fast "
                  "evaluator: bench/parity.py)", data=str(path), runtime=runtime_version())
    report[RUNTIME_114_KEY] = parity_114(bundle, graph, streamed)
    for figures, where in ((report, "in ONNX Runtime " + report["runtime"]),
                           (report[RUNTIME_114_KEY], "in ONNX Runtime 1.14.1 (MetaTrader 5's)")):
        if len(figures.get("mismatches", [])) > allowed:
            worst = max(figures["mismatches"], key=lambda m: m["margin"])
            raise BundleError(bundle.root, f"the ONNX graph disagrees with the backtest on "
                                           f"{len(figures['mismatches'])} of {report['bars']:,} test bars {where} "
                                           f"(at most {allowed} allowed; the widest margin {worst['margin']:.3g}); "
                                           "nothing was written")
    parity = json.dumps(report, indent=2).encode("utf-8")
    advisor = expert_advisor(bundle, graph).encode("utf-8")
    exported = export_bundle(source, out, extra={GRAPH_FILE: graph, PARITY_FILE: parity, EA_FILE: advisor})
    return exported, report


__all__ = ["GRAPH_FILE", "MISMATCHES_PER_BAR", "PARITY_FILE", "RUNTIME_114_KEY", "StreamedSplit",
           "compare", "export_onnx", "feature_graph_outputs", "graph_outputs", "graph_outputs_114",
           "parity_114", "runtime_version", "stream_split", "test_split_rows"]
