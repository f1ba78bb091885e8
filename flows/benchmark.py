"""Benchmark mode as a Prefect flow: the original and the optimized method, side by side, over seeds.

For each of ``request.benchmark_seeds`` seeds (``seed``, ``seed + 1000``, ...), two
``train-pipeline`` subflows on the same data and config (the original is the same request
with ``use_original_training``) into ``RESULTS_DIR/benchmark-<seed>/{original,optimized}``
and that seed's ``comparison.json`` (which also turns the optimized run's speedup estimate
into the measured figure); then the quality judgement over all seeds
(:func:`rltrader.training.benchmark.compare_runs`), written to the first seed's
``quality.json``.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.train import train_pipeline
from rltrader.atomic import write_json
from rltrader.jobs.requests import TrainRequest
from rltrader.records import QualityComparison
from rltrader.training.benchmark import benchmark_seeds, compare_runs, write_comparison


def benchmark_dir(request: TrainRequest, seed: int) -> Path:
    return Path(request.results_dir) / f"benchmark-{seed}"


@flow(name="benchmark-pipeline", flow_run_name="benchmark from seed {request.seed}", validate_parameters=True)
def benchmark_pipeline(request: TrainRequest = TrainRequest()) -> QualityComparison:
    """Train both methods for every benchmark seed; return (and write) the comparison over the seeds."""
    first = request.seed if request.seed is not None else request.to_config().training.seed
    originals, optimizeds = [], []
    for seed in benchmark_seeds(first, request.benchmark_seeds):
        root = benchmark_dir(request, seed)
        optimized_request = request.model_copy(update={"seed": seed, "use_original_training": False,
                                                       "run_dir": str(root / "optimized")})
        original_request = optimized_request.model_copy(update={"use_original_training": True,
                                                                 "run_dir": str(root / "original")})
        originals.append(train_pipeline(original_request))
        optimizeds.append(train_pipeline(optimized_request))
        write_comparison(root, originals[-1], optimizeds[-1], seed)
    quality = compare_runs(originals, optimizeds)
    write_json(benchmark_dir(request, first) / "quality.json", quality.to_json())
    return quality
