"""What ``rltrader train`` prints around a run: where a resumed run goes on from, and the closing lines."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rltrader.display.formatting import number
from rltrader.records import ResumePoint, RunSummary


def resume_line(point: ResumePoint, planned: int) -> str:
    """``Resuming results/42: 2 of 6 iterations trained; iteration 3 goes on from its checkpoint at 4,096
    timesteps`` (said at the default verbosity: a person should know the run is not new)."""
    if point.finished:
        return f"Resuming {point.run_dir}: finished already ({point.finished_iterations} iterations); only its " \
               "final report and bundle are written again"
    next_iteration = point.finished_iterations + 1
    where = (f"iteration {next_iteration} goes on from its checkpoint at {point.checkpoint_timesteps:,} timesteps"
             if point.checkpoint_timesteps is not None else f"iteration {next_iteration} starts from its beginning")
    if next_iteration > planned:
        where = "every planned iteration is trained; the run finishes"
    return f"Resuming {point.run_dir}: {point.finished_iterations} of {planned} iterations trained; {where}"


def trust_line(trust: dict[str, Any] | None) -> str | None:
    """``  trust  at 2x the spread, ...; live stream: 0 of 870 test decisions differ``: the trust report's checks in
    one line (the whole report: ``report.md``, ``rltrader models show``)."""
    if not trust or "cost_stress" not in trust:
        return None
    stress, parity = trust["cost_stress"], trust.get("parity") or {}
    streamed = (f"live stream: {parity['action_mismatches']} of {parity['bars']:,} test decisions differ"
                if parity.get("checked") else "live stream: not checked")
    return (f"  trust       at {stress['spread_multiplier']:g}x the spread, test Sharpe "
            f"{number(stress['agent'].get('sharpe'), 2)} vs buy-and-hold "
            f"{number((stress['buy_and_hold'] or {}).get('sharpe'), 2)}; {streamed}")


def train_done_lines(summary: RunSummary, seed: int, run_dir: Path, trust: dict[str, Any] | None = None) -> list[str]:
    """The closing lines: the run in one line (the speedup against the original loop), then where its files are,
    and the trust report's checks (``trust``, from the bundle)."""
    checks = trust_line(trust)
    return [f"rltrader train ({summary.method}, seed {seed}): {len(summary.iterations)} iterations, "
            f"{summary.total_timesteps:,} timesteps in {summary.total_time_seconds / 60:.1f} min, "
            f"speedup {summary.total_speedup_achieved:.2f}x ({summary.speedup_basis}), "
            f"{summary.total_timesteps_saved:,} timesteps saved",
            f"  best model  {summary.best_model.path}\n  report      {summary.report}\n"
            f"  summary     {run_dir / 'optimization_summary.json'}\n"
            f"  bundle      {run_dir / 'bundle'}  (the model and all it needs; `rltrader export` copies it)",
            *([checks] if checks else [])]


def benchmark_files_line(dirs: Sequence[Path]) -> str:
    return (f"  wrote {dirs[0] / 'quality.json'} and each seed's comparison.json "
            f"({', '.join(map(str, dirs))})")


__all__ = ["benchmark_files_line", "resume_line", "train_done_lines", "trust_line"]
