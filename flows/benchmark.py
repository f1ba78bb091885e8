"""Benchmark mode as a Prefect flow: the original and the optimized method, side by side.

Two ``train-pipeline`` subflows on the same data, config and seed (the original is the
same request with ``use_original_training``), then the comparison of time and model
quality (``comparison.json``), which also turns the optimized run's speedup estimate
into the measured figure.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.train import train_pipeline
from rltrader.records import Comparison
from rltrader.request import TrainRequest
from rltrader.training.benchmark import write_comparison


@flow(name="benchmark-pipeline", flow_run_name="benchmark {run_dir}", validate_parameters=True)
def benchmark_pipeline(run_dir: str, request: TrainRequest = TrainRequest()) -> Comparison:
    """Train the original method into ``run_dir/original``, the optimized into ``run_dir/optimized``.

    ``request`` is the optimized side (its ``run_dir`` and ``use_original_training`` are
    replaced); the original side is the same request with every optimization off."""
    root = Path(run_dir)
    optimized_request = request.model_copy(update={"use_original_training": False, "run_dir": str(root / "optimized")})
    original_request = optimized_request.model_copy(update={"use_original_training": True,
                                                             "run_dir": str(root / "original")})
    original = train_pipeline(original_request)
    optimized = train_pipeline(optimized_request)
    return write_comparison(root, original, optimized, optimized.seed)
