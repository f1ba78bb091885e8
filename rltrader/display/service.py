"""What ``rltrader mode``, ``rltrader clear-cache`` and ``rltrader synth`` print."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rltrader.display.formatting import human_bytes

_RUNNING = {True: "running, ", False: "not running, ", None: ""}


def mode_set_line(mode: str, path: Path) -> str:
    return f"Performance mode set to {mode} in {path}; running training applies it before its next update"


def mode_status_lines(reading: Any, path: Path, status: dict[str, Any] | None, results_dir: Path,
                      alive: bool | None) -> list[str]:
    """The mode on disk and the one training last applied (with whether its process still runs)."""
    lines = [f"on disk   {reading.mode}" + (f" ({reading.problem})" if reading.problem else f" ({path})")]
    if status is None:
        return [*lines, f"applied   no training under {results_dir}/ has applied a mode yet"]
    return [*lines, f"applied   {status['mode']} by {status['run_dir']} at {status['applied_at']} (batch "
                    f"{status['batch_size']}, epochs {status['n_epochs']}, threads {status['torch_threads']}; "
                    f"{_RUNNING[alive]}pid {status['pid']})"]


def cleared_lines(paths: Sequence[Path], freed: int, dry_run: bool, root: Path) -> list[str]:
    verb = "would remove" if dry_run else "removed"
    return [*(f"  {verb} {path}" for path in paths), f"{verb} {len(paths)} item(s), {human_bytes(freed)} from {root}"]


def synth_lines(written: Any, out: Path, sidecar: Path, breaks: Sequence[Any] = ()) -> list[str]:
    """What ``rltrader synth`` wrote, and, for a market with regime breaks, the first bar of each new regime."""
    return [f"rltrader synth: {written.bars:,} {written.bar_minutes}-minute bars of a {written.kind} market "
            f"(seed {written.seed}, spread {written.spread_points} points) -> {out}",
            *([f"  edge flips   at {', '.join(str(stamp) for stamp in breaks)} (bars "
               f"{', '.join(f'{int(written.bars * share):,}' for share in written.breaks)})"]
              if written.breaks else []),
            f"  generator and oracle: {sidecar}",
            f"  train on it: rltrader train --data_path {out}   (reports then show the oracle and edge captured)"]


__all__ = ["cleared_lines", "mode_set_line", "mode_status_lines", "synth_lines"]
