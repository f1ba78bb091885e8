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

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from rltrader.live.bundle import Bundle
from rltrader.live.features import BarArrays
from rltrader.live.onnx_graph import initial_state
from rltrader.live.stream import DecisionStream


@dataclass
class OnnxRunner:
    """An ONNX Runtime session of a bundle's graph and the state it carries between bars."""

    session: Any
    state: np.ndarray
    lstm: np.ndarray | None
    recurrent: bool

    @classmethod
    def of(cls, bundle: Bundle, graph_bytes: bytes) -> OnnxRunner:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(graph_bytes, options, providers=["CPUExecutionProvider"])
        names = {i.name: i.shape for i in session.get_inputs()}
        lstm = np.zeros(names["lstm"], dtype=np.float32) if "lstm" in names else None
        return cls(session, initial_state(bundle), lstm, lstm is not None)

    def step(self, bar: np.ndarray, account: np.ndarray, deciding: bool) -> tuple[int, np.ndarray, np.ndarray]:
        """One bar: the action, probabilities and normalized features; the state carried on (the LSTM's only
        once ``deciding``: before the first decision it stays at zero)."""
        feeds = {"bar": bar, "account": account, "state": self.state}
        if self.recurrent:
            feeds["lstm"] = self.lstm
        outputs = self.session.run(None, feeds)
        action, probabilities, features, self.state = outputs[:4]
        if self.recurrent and deciding:
            self.lstm = outputs[4]
        return int(action[0]), probabilities[0], features[0]


def bar_row(bars: BarArrays, index: int) -> np.ndarray:
    """The graph's ``bar`` input for bar ``index``: time (s), open, high, low, close, tick volume, spread."""
    volume = bars.volume[index] if len(bars.volume) else 0.0
    spread = bars.spread[index] if len(bars.spread) else 0.0
    return np.array([[bars.timestamps[index] / 1e9, bars.open[index], bars.high[index], bars.low[index],
                      bars.close[index], volume, spread]], dtype=np.float64)


def _observed_account(stream: DecisionStream) -> np.ndarray:
    policy = stream.policy
    if policy.recurrent:
        hidden = policy.hidden.shape[2]
        return policy.layer0_input[:, hidden : hidden + 2].copy()
    return policy.position_pnl.copy()


def onnx_parity(bundle: Bundle, graph_bytes: bytes, bars: BarArrays, first: int, last: int) -> dict[str, Any]:
    """Graph against stream over bars ``first .. last`` (rows of ``bars``), after the bundle's warm-up before
    ``first``. Returns the counts and the per-bar latency of ``session.run``."""
    stream = DecisionStream(bundle)
    runner = OnnxRunner.of(bundle, graph_bytes)
    start = first - bundle.description.warmup_bars
    mismatches: list[dict[str, Any]] = []
    max_probability, max_feature, seconds = 0.0, 0.0, []
    decisions = 0
    actions: list[int] = []
    for row in range(start, last + 1):
        batch = stream.advance(bars.rows(row, row + 1))
        deciding = bool(batch.actions[0] >= 0)
        began = time.perf_counter()
        action, probabilities, features = runner.step(bar_row(bars, row), _observed_account(stream).astype(np.float32),
                                                      deciding)
        seconds.append(time.perf_counter() - began)
        if not deciding:
            continue
        decisions += 1
        actions.append(action)
        streamed = int(batch.actions[0])
        max_probability = max(max_probability, float(np.abs(probabilities - batch.probabilities[0]).max()))
        max_feature = max(max_feature, float(np.abs(features.astype(np.float64) - batch.features[0]).max()))
        if action != streamed:
            ordered = np.sort(batch.probabilities[0])
            mismatches.append({"bar": int(bars.timestamps[row]), "onnx": action, "stream": streamed,
                               "margin": float(ordered[-1] - ordered[-2])})
    ms = np.array(seconds[-decisions:] if decisions else seconds) * 1e3
    return {"bars": decisions, "mismatches": mismatches, "max_probability_abs_diff": max_probability,
            "max_feature_abs_diff": max_feature, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "graph_bytes": len(graph_bytes),
            "actions": np.array(actions, dtype=np.int64)}




GRAPH_FILE = "model.onnx"
PARITY_FILE = "onnx_parity.json"
#: An export may disagree with the stream on at most this share of bars (float32 near-ties), else it fails.
MISMATCHES_PER_BAR = 1 / 10_000


def test_split_rows(bundle: Bundle, bars: BarArrays) -> tuple[int, int]:
    """Rows of ``bars`` of the bundle's test split: its first and last bar."""
    from rltrader.live.bundle import BundleError

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
    import json
    from pathlib import Path

    from rltrader.features.cache import file_digest
    from rltrader.live.bars import read_bar_file
    from rltrader.live.bundle import BundleError, export_bundle, source_bundle
    from rltrader.live.onnx_graph import OPSET, GraphError, build_graph

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
    report = onnx_parity(bundle, graph, bars, first, last)
    report.pop("actions")
    allowed = int(report["bars"] * MISMATCHES_PER_BAR)
    report.update(opset=OPSET, allowed_mismatches=allowed, reference="the live stream (bit for bit the fast "
                  "evaluator: bench/parity.py)", data=str(path))
    if len(report["mismatches"]) > allowed:
        worst = min(report["mismatches"], key=lambda m: -m["margin"])
        raise BundleError(bundle.root, f"the ONNX graph disagrees with the backtest on {len(report['mismatches'])} of "
                                       f"{report['bars']:,} test bars (at most {allowed} allowed; the widest margin "
                                       f"{worst['margin']:.3g}); nothing was written")
    parity = json.dumps(report, indent=2).encode("utf-8")
    from rltrader.live.mql5 import EA_FILE, expert_advisor

    advisor = expert_advisor(bundle, graph).encode("utf-8")
    exported = export_bundle(source, out, extra={GRAPH_FILE: graph, PARITY_FILE: parity, EA_FILE: advisor})
    return exported, report


__all__ = ["GRAPH_FILE", "MISMATCHES_PER_BAR", "PARITY_FILE", "OnnxRunner", "bar_row", "export_onnx", "onnx_parity",
           "test_split_rows"]
