"""What ``rltrader export`` prints: the graph's proof in each runtime, and the bundle written."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the bundle's module loads the policy classes (torch): not for printing lines
    from rltrader.bundle import Bundle


def onnx_lines(graph_path: Any, report: dict[str, Any]) -> list[str]:
    """The graph and its parity against the backtest on the test split, in the current runtime and in ONNX Runtime
    1.14.1 (MetaTrader 5's), or why the latter was not run."""
    lines = [f"rltrader export: {graph_path} ({report['graph_bytes']:,} bytes, opset {report['opset']}); on the test "
             f"split's {report['bars']:,} bars against the backtest: {len(report['mismatches'])} action mismatches, "
             f"probabilities within {report['max_probability_abs_diff']:.2g}, features within "
             f"{report['max_feature_abs_diff']:.2g}; {report['p50_ms']:.3f} ms per bar in onnxruntime "
             f"{report['runtime']} (p99 {report['p99_ms']:.3f})"]
    old = report.get("onnxruntime_1_14_1") or {"checked": False, "why": "not recorded"}
    if old["checked"]:
        lines.append(f"rltrader export: in ONNX Runtime 1.14.1 (MetaTrader 5's): {len(old['mismatches'])} action "
                     f"mismatches on the same bars, probabilities within {old['max_probability_abs_diff']:.2g}; "
                     f"{old['p50_ms']:.3f} ms per bar (p99 {old['p99_ms']:.3f})")
    else:
        lines.append(f"rltrader export: not run in ONNX Runtime 1.14.1 (MetaTrader 5's): {old['why']}; the graph was "
                     "checked against its kernel table only")
    return lines


def bundle_lines(bundle: Bundle) -> list[str]:
    """The exported bundle: what it trades, what it trained on, its files."""
    about = bundle.description
    sharpe = about.figures.get("test", {}).get("agent", {}).get("sharpe")
    return [f"rltrader export: {bundle.root} ({about.algorithm} policy, {about.symbol or 'symbol unknown'}, "
            f"{about.bar_interval_seconds / 60:g}-min bars, {len(about.feature_columns)} features x window "
            f"{about.window_size}, warm-up {about.warmup_bars:,} bars; test Sharpe "
            f"{'n/a' if sharpe is None else f'{sharpe:.2f}'})",
            f"  trained on   {about.training_data.path} ({about.training_data.bars:,} bars, "
            f"{about.training_data.start[:10]} to {about.training_data.end[:10]}, sha256 "
            f"{about.training_data.sha256[:12]})",
            f"  files        {', '.join(sorted(path.name for path in bundle.root.iterdir()))}"]


__all__ = ["bundle_lines", "onnx_lines"]
