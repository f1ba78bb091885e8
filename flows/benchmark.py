"""Benchmark mode as a Prefect flow: the original and the optimized method, side by side.

Two ``train-pipeline`` subflows on the same data, config and seed (the original is the
same parameters with ``use_original_training``), then the comparison of time and model
quality (``comparison.json``), which also turns the optimized run's speedup estimate
into the measured figure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from flows.train import train_pipeline
from rltrader.training.benchmark import write_comparison


@flow(name="benchmark-pipeline", flow_run_name="benchmark {run_dir}")
def benchmark_pipeline(run_dir: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train the original method into ``run_dir/original``, the optimized into ``run_dir/optimized``.

    ``parameters`` are ``train-pipeline``'s (data, config, profile, seed, budgets, ...);
    they are the optimized side, and the original side is them with every optimization off."""
    parameters = {key: value for key, value in (parameters or {}).items()
                  if key not in ("run_dir", "use_original_training")}
    root = Path(run_dir)
    original = train_pipeline(**parameters, use_original_training=True, run_dir=str(root / "original"))
    optimized = train_pipeline(**parameters, run_dir=str(root / "optimized"))
    return write_comparison(root, original, optimized, optimized["seed"])
