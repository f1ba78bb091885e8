"""The model registry as people read it: ``rltrader models`` tables and the ``registry-<name>`` artifact.

:func:`version_rows` gives one dict per version (plain values), which the terminal renders with
rich and the Prefect UI shows as a table artifact, so both say the same thing.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

from rltrader.display.formatting import signed_percent
from rltrader.registry.store import Registry, RegistryEvent


def _percent(value: float | None) -> str:
    """A return, or an empty cell (a first version has no champion's figure)."""
    return "" if value is None else signed_percent(value)


def version_rows(registry: Registry, newest: int | None = None) -> list[dict[str, Any]]:
    """One row per version, newest first: lineage, windows, held-out figures, the decision.

    :param newest: only this many of the newest versions (None: all)
    """
    rows = []
    versions = registry.file.versions[::-1]
    for entry in versions[:newest] if newest else versions:
        figures, comparison = entry.figures, entry.decision.get("comparison") or {}
        rows.append({
            "version": entry.version,
            "champion": "yes" if entry.version == registry.file.champion else "",
            "created": entry.created_at.replace("T", " ")[:16],
            "start": entry.start + (f" (from v{entry.weights_from})" if entry.weights_from else ""),
            "parent": "" if entry.parent is None else f"v{entry.parent}",
            "trained to": entry.windows["validation"].end[:16],
            "held out": f"{entry.windows['holdout'].start[:16]} .. {entry.windows['holdout'].end[:16]}",
            "its return": _percent(figures.get("challenger", {}).get("total_return")),
            "champion's": _percent(figures.get("champion", {}).get("total_return")),
            "buy & hold": _percent(figures.get("buy_and_hold", {}).get("total_return")),
            "P(better)": "" if not comparison else f"{comparison['probability_better']:.3f}",
            "decision": entry.decision.get("kind", ""),
        })
    return rows


def event_line(event: RegistryEvent) -> str:
    """One event in words: when, what, the champion before and after, why."""
    def named(version: int | None) -> str:
        return "none" if version is None else f"v{version}"

    change = (f"champion {named(event.champion_before)} -> {named(event.champion_after)}"
              if event.champion_before != event.champion_after else f"champion stays {named(event.champion_after)}")
    what = f"v{event.version} " if event.version else ""
    return f"{event.time.replace('T', ' ')[:19]}  {event.kind:<14} {what}{change}: {event.reason}"


def versions_table(registry: Registry, newest: int | None = None) -> Table:
    """``rltrader models show NAME``: the newest versions (all with ``newest`` None)."""
    champion = registry.file.champion
    count = len(registry.file.versions)
    shown = f", the newest {newest} shown" if newest and newest < count else ""
    table = Table(title=f"Model {registry.name}: {count} version(s){shown}, champion "
                        f"{'v' + str(champion) if champion else 'none'}", title_justify="left")
    rows = version_rows(registry, newest)
    columns = list(rows[0]) if rows else ["version"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("start", "held out", "decision", "created",
                                                              "trained to") else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(str(value) for value in row.values()), style="bold" if row["champion"] else None)
    return table


def registries_table(registries: list[Registry]) -> Table:
    """``rltrader models list``: each model's champion and its last event."""
    table = Table(title="Models", title_justify="left")
    for column in ("name", "champion", "versions", "champion trained to", "last event"):
        table.add_column(column, justify="right" if column in ("champion", "versions") else "left")
    for registry in registries:
        champion = registry.champion
        last = registry.file.events[-1] if registry.file.events else None
        table.add_row(registry.name, f"v{champion.version}" if champion else "none", str(len(registry.file.versions)),
                      champion.windows["validation"].end[:16] if champion else "",
                      "" if last is None else f"{last.time[:16].replace('T', ' ')} {last.kind}")
    return table


__all__ = ["event_line", "registries_table", "version_rows", "versions_table"]
