"""How figures are written for people: one place, so the terminal, the report and the UI agree."""

from __future__ import annotations

from typing import Any


def number(value: float | None, digits: int = 3) -> str:
    """A ratio or score (Sharpe, validation score); ``n/a`` where there is none."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def percent(value: float | None) -> str:
    """A fraction as a percentage (returns, drawdowns, exposure)."""
    return "n/a" if value is None else f"{value:.2%}"


def cell(value: Any, as_percent: bool = False) -> str:
    """A table cell: percentages and floats formatted, counts and text as they are."""
    if value is None or as_percent:
        return percent(value)
    return number(value) if isinstance(value, float) else str(value)
