"""``rltrader export``: a finished run's model as a self-contained bundle, or with its ONNX graph for MetaTrader 5.

The ONNX export builds the graph, checks it against ONNX Runtime 1.14.1's kernel table, proves it against the
backtest on the whole test split (in the current runtime and in 1.14.1 itself where a Python 3.10 is found)
and writes nothing unless every check passes. The handler prints what :mod:`rltrader.display.export` formats.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rltrader.display.export import bundle_lines, onnx_lines


def export_command(args: argparse.Namespace) -> int:
    from rltrader.bundle import export_bundle

    if args.format == "onnx":
        from rltrader.export.graph import GRAPH_FILE
        from rltrader.export.onnx_export import export_onnx  # onnx, onnxruntime and torch: only for this format

        bundle, report = export_onnx(str(args.run_dir), str(args.out), str(args.data_path) if args.data_path else None)
        print("\n".join(onnx_lines(bundle.root / GRAPH_FILE, report)))
    else:
        bundle = export_bundle(args.run_dir, args.out)
    print("\n".join(bundle_lines(bundle)))
    return 0


def add_export_commands(commands: Any) -> None:
    """``export`` on ``rltrader``'s subparsers."""
    export = commands.add_parser(
        "export", help="write a finished run's model as a self-contained bundle (policy, features, normalization, "
                       "costs, manifest), or with its ONNX graph for MetaTrader 5",
        description="Copy the bundle a finished run wrote (RUN_DIR/bundle: the policy, the feature definition, the "
        "train-split normalization, the instrument, account, sizing and cost terms, the bar interval, the warm-up, "
        "the training data's fingerprint, the run's figures, and a manifest with the SHA-256 of every file) to "
        "OUT, verified against its manifest. It needs no bar file, cache or config.")
    export.add_argument("run_dir", type=Path, help="a finished run's directory (e.g. results/42) or a bundle")
    export.add_argument("--out", type=Path, required=True, help="the bundle's directory (new, or a bundle to replace)")
    export.add_argument("--format", choices=("bundle", "onnx"), default="bundle",
                        help="onnx adds model.onnx (features, normalization, policy and state in one graph, opset "
                             "17, checked against ONNX Runtime 1.14.1, MetaTrader 5's), its parity on the test split "
                             "(onnx_parity.json) and an Expert Advisor (rltrader_ea.mq5)")
    export.add_argument("--data_path", type=Path, default=None,
                        help="--format onnx: the bars the model trained on (default: the file the bundle names)")
    export.set_defaults(handler=export_command)


__all__ = ["add_export_commands", "export_command"]
