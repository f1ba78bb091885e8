"""Standing aside after a break alarm: when a paper account following a model goes flat, and when it trades again.

A break alarm (:mod:`rltrader.registry.breaks`) says the champion's live returns fell below what it was promoted on
(or, for a champion known only by its held-out window, that it is losing). Until a retrain on the bars since the
break has the evidence (``retrain.after_break``), the account can keep trading the broken champion or stand aside:
send flat orders from the bar after the alarm. On a time-of-day market whose edge flips sign, the broken champion
loses the oracle's pace in reverse for the ~2,000 bars the evidence takes (``bench/retrain_break.py`` measures
both).

It stands aside only when the champion is losing (its live mean since the bar the alarm dates the fall to is below
zero), not when it merely earns less than expected: a champion promoted on a few hundred held-out bars was picked
because it did well there, so it often earns less live than there (the winner's curse), which rings alarms on an
edge that is smaller but still there; the retrain after the alarm goes ahead either way.

Standing aside ends on evidence, never on a timer:

- a new champion takes over (promoted on held-out bars after the break, or rolled back by hand): it trades;
- a retrain kept the champion on a held-out window that starts at or after the break and ends after the alarm,
  where the champion earned (total return above zero): the alarm was false or the break has passed, so it trades
  again. The same evidence (:func:`requalifying_keep`) restarts the break test on that champion, paused since its
  alarm, whether the account stood aside or traded through.

While standing aside the model still decides at every close (its LSTM state runs on, seeing the flat position it
holds); the ledger keeps its decisions and marks the bars stood aside.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from rltrader.registry.store import ModelVersion, Registry

STAND_ASIDE_DEFAULT = True
"""A new paper account following a model stands aside after an alarm unless told otherwise (``--stand_aside``)."""


STAND_ASIDE_BELOW = 0.0
"""An alarm sends the account aside when the champion's live per-bar mean since the fall began is below this."""


def sends_aside(alarm: dict[str, Any]) -> bool:
    """Whether ``alarm`` (an account's alarm record) says the champion is losing, not only earning less: its live
    mean since the bar the fall began (as the account dates it) is below :data:`STAND_ASIDE_BELOW`, whichever
    question rang the alarm (a break-even test's run of losses can sit inside a stretch that earned)."""
    return float(alarm["live_mean"]) < STAND_ASIDE_BELOW


def stand_aside_start(alarm: dict[str, Any]) -> dict[str, Any]:
    """What the account keeps while standing aside: the version whose alarm sent it aside, when, and since when
    the break's fall began (the held-out evidence to trade again must start there or later)."""
    return {"version": alarm["version"], "since": alarm["time"], "change_time": alarm["change_time"]}


def requalifying_keep(registry: Registry, standing: dict[str, Any]) -> ModelVersion | None:
    """The retrain that kept ``standing["version"]`` on a held-out window from the fall on and past the alarm,
    where the champion earned: the evidence that the alarm was false or the break has passed (None without one).

    :param registry: the followed model's registry, as it is now
    :param standing: :func:`stand_aside_start`'s record of the alarm
    """
    change = pd.Timestamp(standing["change_time"])
    for version in reversed(registry.file.versions):
        if version.decision.get("kind") != "keep" or version.parent != standing["version"]:
            continue
        holdout = version.windows["holdout"]
        if pd.Timestamp(holdout.start) < change or pd.Timestamp(holdout.end) <= pd.Timestamp(standing["since"]):
            continue  # bars from before the fall began, or none after the alarm: not evidence against it
        earned = (version.figures.get("champion") or {}).get("total_return")
        if earned is not None and earned > 0:
            return version
    return None


def evidence_to_resume(registry: Registry, standing: dict[str, Any]) -> str | None:
    """The reason to trade the same champion again (see the module docstring), or None.

    :param registry: the followed model's registry, as it is now
    :param standing: :func:`stand_aside_start`'s record
    """
    version = requalifying_keep(registry, standing)
    if version is None:
        return None
    holdout, earned = version.windows["holdout"], version.figures["champion"]["total_return"]
    return (f"v{standing['version']} earned {100 * earned:+.2f}% on the held-out bars {holdout.start} .. "
            f"{holdout.end} after the break, where retrain v{version.version} kept it: trading it again")


__all__ = ["STAND_ASIDE_BELOW", "STAND_ASIDE_DEFAULT", "evidence_to_resume", "requalifying_keep", "sends_aside",
           "stand_aside_start"]
