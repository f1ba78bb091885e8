"""Reading bar exports into validated canonical bars."""

from rltrader.data.loader import LoadedBars, load_bars

__all__ = ["LoadedBars", "load_bars"]
