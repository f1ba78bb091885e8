"""Has the bar history changed under the registry? A fingerprint of every bar it has trained on.

Retraining assumes bars are only appended: the champion's windows, the challengers' and the
held-out comparison all refer to bars by time. If an earlier bar changed (a broker revising its
history, a file exported with another timezone or from another symbol), the champion's figures
describe bars that no longer exist, and a comparison on the new file would be meaningless. So the
registry keeps a fingerprint of the bars (``history.parquet``: each bar's open time and a 64-bit
hash of its row, pandas' own ``hash_pandas_object``), and every retrain checks the new file against
it first, naming the first bar that differs.

A file that starts later than the fingerprint (a terminal that exports only its last N bars) is
fine: only the bars both cover are compared.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rltrader.atomic import write_with
from rltrader.data.bar_arrays import bar_time
from rltrader.errors import DataError

HISTORY_FILE = "history.parquet"


def fingerprint(bars: pd.DataFrame) -> pd.DataFrame:
    """Each bar's open time (ns) and a hash of its values, in time order.

    :param bars: canonical bars (a :class:`~rltrader.data.loader.LoadedBars`' ``bars``: a time index)
    """
    columns = sorted(bars.columns)
    hashes = pd.util.hash_pandas_object(bars[columns].reset_index(drop=True), index=False)
    return pd.DataFrame({"time": np.asarray(pd.DatetimeIndex(bars.index).as_unit("ns").asi8, dtype=np.int64),
                         "row_hash": hashes.to_numpy(dtype=np.uint64)})


def first_difference(saved: pd.DataFrame, new: pd.DataFrame) -> str | None:
    """Where ``new`` disagrees with ``saved`` on the bars both cover, in words; None if nowhere.

    Bars of ``new`` after ``saved``'s last are appended bars, and bars of ``saved`` before
    ``new``'s first were trimmed from the file's start: neither is a disagreement."""
    if saved.empty or new.empty:
        return None
    low, high = max(saved["time"].iloc[0], new["time"].iloc[0]), saved["time"].iloc[-1]
    old = saved[(saved["time"] >= low) & (saved["time"] <= high)]
    now = new[(new["time"] >= low) & (new["time"] <= high)]
    joined = old.merge(now, on="time", how="outer", suffixes=("_saved", "_new"), sort=True)
    differs = joined["row_hash_saved"].ne(joined["row_hash_new"])
    if not differs.any():
        return None
    row = joined[differs].iloc[0]
    when = bar_time(int(row["time"]))
    if pd.isna(row["row_hash_new"]):
        return f"bar {when}, which the registry trained on, is missing"
    if pd.isna(row["row_hash_saved"]):
        return f"bar {when} was not in the history the registry trained on (a bar was inserted)"
    return f"bar {when} differs from the bar the registry trained on (its prices, volume or spread changed)"


def check_history(registry_dir: Path, bars: pd.DataFrame, data_path: Path) -> pd.DataFrame:
    """The new file's fingerprint, after checking it against the registry's; a :class:`DataError` naming the
    first differing bar if an earlier bar changed."""
    new = fingerprint(bars)
    path = Path(registry_dir) / HISTORY_FILE
    if path.is_file():
        where = first_difference(pd.read_parquet(path), new)
        if where is not None:
            raise DataError(data_path, f"{where}; only appended bars can be retrained on. Restore the file's history, "
                                       "or start a new model name for the new history")
    return new


def save_history(registry_dir: Path, history: pd.DataFrame) -> Path:
    """Keep ``history`` as the registry's fingerprint (atomically), merged with bars trimmed from the file's start."""
    path = Path(registry_dir) / HISTORY_FILE
    if path.is_file() and not history.empty:
        saved = pd.read_parquet(path)
        history = pd.concat([saved[saved["time"] < history["time"].iloc[0]], history], ignore_index=True)
    return write_with(path, lambda temporary: history.to_parquet(temporary, index=False))


__all__ = ["HISTORY_FILE", "check_history", "fingerprint", "first_difference", "save_history"]
