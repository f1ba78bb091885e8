"""How figures are written for people: one place, so the terminal, the report and the UI agree."""

from __future__ import annotations


def number(value: float | None, digits: int = 3) -> str:
    """A ratio or score (Sharpe, validation score); ``n/a`` where there is none."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def percent(value: float | None) -> str:
    """A fraction as a percentage (returns, drawdowns, exposure)."""
    return "n/a" if value is None else f"{value:.2%}"


def signed_percent(value: float | None) -> str:
    """A return as a signed percentage (``+1.25%``), so gains and losses read apart in a column."""
    return "n/a" if value is None else f"{value:+.2%}"


def sharpe_with_interval(figures: dict[str, object]) -> str:
    """``figures``' Sharpe with its 95% interval (``1.31 [-0.06, 2.68]``), from its ``sharpe`` and
    ``sharpe_interval`` keys; ``n/a`` without a Sharpe."""
    sharpe, bounds = figures.get("sharpe"), figures.get("sharpe_interval")
    if sharpe is None:
        return "n/a"
    return f"{sharpe:.2f}" + (f" {interval(bounds)}" if bounds and None not in bounds else "")  # type: ignore[arg-type]


def interval(bounds: list[float] | None) -> str:
    """A confidence interval, ``[low, high]``."""
    return "n/a" if bounds is None else f"[{bounds[0]:.2f}, {bounds[1]:.2f}]"


def probability(value: float | None) -> str:
    """A probability (probabilistic and deflated Sharpe ratios)."""
    return "n/a" if value is None else f"{value:.2f}"


def percentile(value: float | None) -> str:
    """A percentile rank (0-100) as an ordinal: 1st, 22nd, 63rd, 100th."""
    if value is None:
        return "n/a"
    rank = round(value)
    suffix = "th" if 10 <= rank % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(rank % 10, "th")
    return f"{rank}{suffix}"


def days(value: float | None) -> str:
    """A span of calendar days."""
    return "n/a" if value is None else f"{value:.1f} days"


def count(value: int | None) -> str:
    """A count with thousands separators (timesteps, trades)."""
    return "n/a" if value is None else f"{value:,}"


def money(value: float | None) -> str:
    """An amount in the account currency (costs paid)."""
    return "n/a" if value is None else f"{value:,.2f}"


def minutes(seconds: float | None) -> str:
    """A duration in minutes, as every progress line and table shows wall time."""
    return "n/a" if seconds is None else f"{seconds / 60:.1f} min"


def rate(per_second: float | None) -> str:
    """A throughput (timesteps per second), whole units."""
    return f"{per_second or 0:,.0f}"


def yes(flag: bool) -> str:
    """A true flag as "yes", a false one as an empty cell (tables stay scannable)."""
    return "yes" if flag else ""





def human_bytes(size: float) -> str:
    """A file size: ``512 B``, ``3.4 MB``."""
    if size < 1024:
        return f"{size:.0f} B"
    unit = "KB"
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if size < 1024 or unit == "GB":
            break
    return f"{size:.1f} {unit}"


__all__ = ["count", "days", "human_bytes", "interval", "minutes", "money", "number", "percent", "percentile",
           "probability", "rate", "sharpe_with_interval", "signed_percent", "yes"]
