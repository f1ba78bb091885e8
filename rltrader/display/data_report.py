"""The data report: what was read, repaired, split and cached, in words a trader checks."""

from __future__ import annotations

import pandas as pd

from rltrader.config import Config
from rltrader.data.spread import require_spread
from rltrader.features.normalization import fixed_scales
from rltrader.features.preparation import SPLIT_NAMES, PreparedData


def _short(stamp: str) -> str:
    return stamp[:16]


def _interval(seconds: float) -> str:
    minutes = seconds / 60
    if minutes < 60:
        return f"{minutes:g} min"
    if minutes < 1440:
        return f"{minutes / 60:g} h"
    return f"{minutes / 1440:g} d"


def report_rows(prepared: PreparedData, config: Config | None = None) -> list[tuple[str, str]]:
    """The report's rows; with the run's ``config``, also the spread its fills will be charged."""
    meta = prepared.metadata
    source, bars, splits = meta["source"], meta["bars"], meta["splits"]
    rows = [
        ("file", source["path"]),
        ("format", source["format"]),
        ("timestamps", source["timestamps"]),
        ("bars", f"{bars['count']:,} from {_short(bars['start'])} to {_short(bars['end'])}"),
        ("bar interval", f"{_interval(bars['interval_seconds'])} ({bars['bars_per_year']:,.0f} bars/year)"),
    ]
    if bars["gaps"]:
        largest = pd.Timedelta(bars["largest_gap"])
        rows.append(("gaps", f"{bars['gaps']:,} longer than one bar, largest {largest} (kept, not filled)"))
    else:
        rows.append(("gaps", "none"))
    rows.append(("repairs", "; ".join(bars["repairs"]) or "none"))
    move = bars.get("largest_move")
    if move:
        sds = f", {move['robust_sds']:.0f} robust sd of the 1-bar moves" if move.get("robust_sds") else ""
        rows.append(("largest move", f"{move['percent']:+.2f}% close to close into {_short(move['time'])}{sds} "
                                     "(accepted; price jumps are checked against both neighbouring bars)"))
    if source.get("spread"):
        rows.append(("spread", source["spread"]))
    if config is not None:
        rows.append(("spread charged", require_spread(source["path"], bars.get("columns", ["spread"]), config)))
    for i, name in enumerate(SPLIT_NAMES):
        split = splits[name]
        rows.append(
            ("splits" if i == 0 else "",
             f"{name:<10} {split['bars']:>9,} bars  {_short(split['start'])} -> {_short(split['end'])}")
        )
    rows.append(("", f"{splits['warmup_bars_dropped']} warm-up bars dropped, "
                     f"{splits['gap_bars']}-bar gaps between splits"))
    columns = prepared.feature_columns
    rows.append(("features", f"{len(columns)}: {', '.join(columns)}"))
    fixed = fixed_scales(columns)
    rows.append(("normalization", "z-score fitted on the train split only"
                 + (f" ({len(fixed)} sin/cos and pattern columns at a fixed scale)" if fixed else "")
                 + f", clipped to +-{meta['features']['normalization']['clip']:g}"))
    computed = f"computed in {meta['compute_seconds']:.2f}s"
    status = f"hit (reused; first {computed})" if prepared.cache_hit else f"miss ({computed})"
    rows.append(("cache", f"{status}, key {meta['cache_key']}"))
    rows.append(("parquet", str(prepared.parquet_path)))
    return rows


def data_report_text(prepared: PreparedData, config: Config | None = None) -> str:
    rows = report_rows(prepared, config)
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"  {label:<{width}}  {value}" for label, value in rows)


def data_report_markdown(prepared: PreparedData, config: Config | None = None) -> str:
    lines = ["# Data report", "", "| | |", "|---|---|"]
    lines += [f"| {label} | {value.replace('|', '/')} |" for label, value in report_rows(prepared, config)]
    return "\n".join(lines) + "\n"
