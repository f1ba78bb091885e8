"""Training timesteps per second: stock sb3-contrib RecurrentPPO against the fast engine.

Both train the default configuration (``configs/default.yaml``, or ``--profile``'s: its
LSTM, heads, rollout size, minibatch and epochs, printed first) on the shipped real XAUUSD
M15 bars, from the same seed, with iteration 0's learning rate and epochs, with 1 account
and with the config's number (16 for the default, 8 for the feed-forward profile; n_steps
set so the rollout size stays the config's). "Stock" is ``RecurrentPPO`` with
``MlpLstmPolicy``, what the original method trains with; "engine" is ``FusedRecurrentPPO``
with ``FusedLstmPolicy`` (``rltrader/engine/``), what the optimized method trains with.
With the feed-forward algorithm (``--profile feedforward``) both methods train SB3's ``PPO``
(there is no LSTM for the engine to fuse), so only "stock" is measured, against the same
ceilings. Each measurement is one ``learn()`` call of ``--timesteps`` from a fresh model, as
one training iteration is: it includes the first update after ``learn()`` starts, whose
minibatches all hold episode starts.

Where the time goes is measured by timing wrappers on the model's own methods (env
steps, rollout collection, minibatch sampling, the policy's forward pass in the update,
the optimizer step; the rest of the update is the backward pass and the loss).

Two ceilings: the machine's matrix-multiply rate (``torch.mm`` in float32 at the policy's
layer sizes and large batches, the best of a few shapes), which bounds any network's
products, and for the recurrent policy the best fused LSTM forward+backward rate
(``nn.LSTM`` at the policy's sizes, large batches, oneDNN and native kernels, the faster
counts), which bounds its recurrence. Useful work
per timestep is the policy's forward FLOPs x (1 + 3 x epochs): one forward in the
rollout, and forward+backward (3x forward) per epoch, padding not counted.

Each figure is the median of ``--repeats`` measurements taken in turns (stock, engine,
engine, stock, stock, engine, ...): this machine's speed drifts by 10% and more within a
minute, and one stock run beside one engine run moved the ratio by as much. Turns in
both orders put the two methods under the same drift.

Target (issue 29): engine >= 4x stock timesteps/s on the default config's accounts.
Usage: .venv/bin/python bench/training_throughput.py [--timesteps 16384] [--repeats 3] [--n-envs 1 16] [--threads N]
       [--profile feedforward]
The last line printed is one JSON object with the figures (lists follow ``n_envs``;
``speedup_runs`` holds each turn's engine/stock ratio).
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rltrader.config import Config, load_config
from rltrader.env import MarketData
from rltrader.env.vec_env import VecTradingEnv
from rltrader.features.preparation import preprocess
from rltrader.runtime.allocator import fix_heap_thresholds
from rltrader.training.models import build_model
from rltrader.training.phases import hyperparameters_for

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "XAUUSDm_15min.csv"
CACHE = ROOT / "bench" / "out" / "training_throughput" / "cache"
METHODS = ("stock", "engine")
warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")  # raised by mkldnn.flags()
PARTS = ("env steps", "rollout: policy + buffer", "update: minibatch sampling", "update: forward",
         "update: backward + loss", "update: optimizer step", "other")


def timed(seconds: dict[str, float], key: str, function: Callable) -> Callable:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds[key] += time.perf_counter() - started
    return wrapper


def forward_flops(policy: nn.Module) -> int:
    """FLOPs of one timestep through every LSTM and linear layer of the policy (multiply-add = 2)."""
    total = 0
    for module in policy.modules():
        if isinstance(module, nn.LSTM):
            size, hidden = module.input_size, module.hidden_size
            for _ in range(module.num_layers):
                total += 2 * 4 * hidden * (size + hidden)
                size = hidden
        elif isinstance(module, nn.Linear):
            total += 2 * module.in_features * module.out_features
    return total


def matmul_ceiling_gflops(widths: list[int]) -> float:
    """Best float32 ``torch.mm`` GFLOP/s over large batches at the policy's layer widths."""
    best = 0.0
    for width in sorted(set(widths)):
        for rows in (512, 2048):
            left, right = torch.randn(rows, width), torch.randn(width, 4 * width)
            for _ in range(3):
                torch.mm(left, right)
            repeats = 20
            started = time.perf_counter()
            for _ in range(repeats):
                torch.mm(left, right)
            best = max(best, 2 * rows * width * 4 * width * repeats / (time.perf_counter() - started) / 1e9)
    return best


def layer_widths(policy: nn.Module) -> list[int]:
    """The input widths of the policy's linear and LSTM layers (what its products multiply)."""
    widths = []
    for module in policy.modules():
        if isinstance(module, nn.LSTM):
            widths += [module.input_size, module.hidden_size]
        elif isinstance(module, nn.Linear):
            widths.append(module.in_features)
    return widths


def lstm_ceiling_gflops(input_size: int, hidden: int) -> float:
    """Best fused nn.LSTM forward+backward GFLOP/s over a few large shapes and both CPU kernels."""
    lstm = nn.LSTM(input_size, hidden)
    best = 0.0
    for steps, batch in ((64, 256), (256, 64), (32, 512)):
        inputs = torch.randn(steps, batch, input_size)
        flops = 3 * 2 * 4 * hidden * (input_size + hidden) * steps * batch
        for onednn in (True, False):
            with torch.backends.mkldnn.flags(enabled=onednn):
                for _ in range(2):
                    lstm(inputs)[0].sum().backward()
                started = time.perf_counter()
                repeats = 5
                for _ in range(repeats):
                    lstm(inputs)[0].sum().backward()
                best = max(best, flops * repeats / (time.perf_counter() - started) / 1e9)
    return best


def iteration_zero(config: Config) -> Any:
    """The first iteration's hyperparameters (its phase's epochs, learning rate...): what both methods train."""
    return hyperparameters_for(0, config.training, config.optimizations.progressive_training)


def measure(kind: str, config: Config, market: MarketData, n_envs: int, timesteps: int) -> dict[str, Any]:
    training = config.training.model_copy(update={"n_envs": n_envs, "n_steps": config.training.rollout_size // n_envs})
    env = VecTradingEnv(market, "train", config.env, n_envs)
    model = build_model(env, training, iteration_zero(config), training.seed,
                        fast_engine=kind == "engine")
    seconds: dict[str, float] = defaultdict(float)
    env.step = timed(seconds, "env", env.step)  # VecTradingEnv.step is the whole step (no step_wait)
    model.collect_rollouts = timed(seconds, "rollout", model.collect_rollouts)
    model.train = timed(seconds, "update", model.train)
    model.rollout_buffer._get_samples = timed(seconds, "sampling", model.rollout_buffer._get_samples)
    model.policy.evaluate_actions = timed(seconds, "forward", model.policy.evaluate_actions)
    model.policy.optimizer.step = timed(seconds, "optimizer", model.policy.optimizer.step)
    started = time.perf_counter()
    model.learn(timesteps)
    total = time.perf_counter() - started
    parts = {
        "env steps": seconds["env"],
        "rollout: policy + buffer": seconds["rollout"] - seconds["env"],
        "update: minibatch sampling": seconds["sampling"],
        "update: forward": seconds["forward"],
        "update: backward + loss": seconds["update"] - seconds["sampling"] - seconds["forward"] - seconds["optimizer"],
        "update: optimizer step": seconds["optimizer"],
        "other": total - seconds["rollout"] - seconds["update"],
    }
    lstm = getattr(model.policy, "lstm_actor", None)
    return {"fps": model.num_timesteps / total, "seconds": total, "timesteps": model.num_timesteps,
            "parts": {name: 100 * value / total for name, value in parts.items()},
            "flops_per_timestep": forward_flops(model.policy) * (1 + 3 * model.n_epochs),
            "widths": layer_widths(model.policy),
            "lstm": (lstm.input_size, lstm.hidden_size) if lstm is not None else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=16384, help="timesteps per learn() call (default 16384)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each method, in turns (default 3)")
    parser.add_argument("--n-envs", type=int, nargs="+", default=None,
                        help="account counts (default: 1 and the config's n_envs)")
    parser.add_argument("--profile", default=None, help="a profile of configs/default.yaml (e.g. feedforward)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for both (default: torch's, every core; quiet mode trains on 1)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    fix_heap_thresholds()  # as the trainer does, for both methods: glibc's dynamic thresholds make
    # one measurement's speed depend on what the process allocated before it

    config = load_config().with_profile(args.profile).with_overrides({"cache.dir": str(CACHE)}, "bench")
    training = config.training
    recurrent = training.algorithm == "recurrent"
    kinds = METHODS if recurrent else METHODS[:1]
    args.n_envs = args.n_envs or sorted({1, training.n_envs})
    market = MarketData.from_prepared(preprocess(SAMPLE, config), config)
    network = f"LSTM {training.policy.lstm_hidden_size}, " if recurrent else ""
    print(f"{args.profile or 'default'} config: {training.algorithm}, {network}heads {training.policy.net_arch_pi}, "
          f"rollout {training.rollout_size}, batch {training.batch_size}, epochs "
          f"{iteration_zero(config).n_epochs} (iteration 0's); "
          "torch threads "
          f"{torch.get_num_threads()}; {args.timesteps:,} timesteps per measurement", flush=True)
    if not recurrent:
        print("  feed-forward: both methods train stable-baselines3 PPO (no LSTM for the engine): stock only",
              flush=True)
    # untimed: numba compiles (or loads from its cache) the engine's kernels on first use
    measure(kinds[-1], config, market, args.n_envs[0], config.training.rollout_size)
    results: dict[tuple[str, int], dict[str, Any]] = {}
    runs: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for n_envs in args.n_envs:
        for turn in range(args.repeats):
            for kind in kinds if turn % 2 == 0 else kinds[::-1]:
                row = measure(kind, config, market, n_envs, args.timesteps)
                runs[kind, n_envs].append(row)
                print(f"  {kind:6s} n_envs {n_envs}: {row['fps']:7.1f} timesteps/s ({row['timesteps']:,} in "
                      f"{row['seconds']:.1f} s)", flush=True)
        for kind in kinds:
            rows = runs[kind, n_envs]
            results[kind, n_envs] = {**rows[0], "fps": statistics.median(row["fps"] for row in rows),
                                     "parts": {part: statistics.fmean(row["parts"][part] for row in rows)
                                               for part in PARTS}}
        medians = ", ".join(f"{kind} {results[kind, n_envs]['fps']:.1f}" for kind in kinds)
        ratio = (f", {results['engine', n_envs]['fps'] / results['stock', n_envs]['fps']:.2f}x" if recurrent else "")
        print(f"  median n_envs {n_envs}: {medians} timesteps/s{ratio}", flush=True)

    first = results[kinds[0], args.n_envs[0]]
    matmul = matmul_ceiling_gflops(first["widths"])
    print(f"matrix-multiply ceiling (float32 torch.mm at the policy's widths {sorted(set(first['widths']))}): "
          f"{matmul:.1f} GFLOP/s")
    ceiling = matmul
    if recurrent:
        input_size, hidden = first["lstm"]
        ceiling = lstm_ceiling_gflops(input_size, hidden)
        print(f"fused LSTM forward+backward ceiling ({input_size}->{hidden}): {ceiling:.1f} GFLOP/s")

    def fraction(row: dict[str, Any], of: float) -> float:
        return row["fps"] * row["flops_per_timestep"] / (of * 1e9)

    print("\nwhere the time goes (% of learn(), mean over the repeats):")
    header = "".join(f" | {kind} n={n}" for n in args.n_envs for kind in kinds)
    print(f"| part{header} |")
    print("|---" + "|---:" * (len(args.n_envs) * len(kinds)) + "|")
    for part in PARTS:
        cells = "".join(f" | {results[kind, n]['parts'][part]:.1f}" for n in args.n_envs for kind in kinds)
        print(f"| {part}{cells} |")

    figures: dict[str, Any] = {"algorithm": training.algorithm, "profile": args.profile}
    for kind in kinds:
        figures[f"{kind}_fps"] = [round(results[kind, n]["fps"], 1) for n in args.n_envs]
    if recurrent:
        figures["speedup"] = [round(results["engine", n]["fps"] / results["stock", n]["fps"], 2) for n in args.n_envs]
    for kind in kinds:  # against the LSTM ceiling for the recurrent policy, the matrix-multiply one otherwise
        figures[f"ceiling_fraction_{kind}"] = [round(fraction(results[kind, n], ceiling), 3) for n in args.n_envs]
        figures[f"matmul_ceiling_fraction_{kind}"] = [round(fraction(results[kind, n], matmul), 3)
                                                      for n in args.n_envs]
    figures.update({
        "n_envs": list(args.n_envs),
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
        "ceiling_gflops": round(ceiling, 1),
        "matmul_ceiling_gflops": round(matmul, 1),
        "timesteps": args.timesteps,
    })
    if recurrent:
        figures["speedup_runs"] = [[round(engine["fps"] / stock["fps"], 2)
                                    for engine, stock in zip(runs["engine", n], runs["stock", n], strict=True)]
                                   for n in args.n_envs]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
