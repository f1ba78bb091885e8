"""What a known-answer market is: the description written beside its bar file, and how it is found.

Kept apart from the generator (:mod:`rltrader.data.synthetic`, numpy and pandas) so that the
command line can build ``rltrader synth``'s flags, and any reader can find a file's oracle,
without importing the numeric stack.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from rltrader.errors import UserInputError

MarketKind = Literal["momentum", "time_of_day", "mean_reversion", "regime_change", "volume", "volatility_regime",
                     "day_of_week", "session_trend", "bar_sequence", "delayed_volume"]
MARKET_KINDS: tuple[str, ...] = ("momentum", "time_of_day", "mean_reversion", "regime_change", "volume",
                                 "volatility_regime", "day_of_week", "session_trend", "bar_sequence", "delayed_volume")
STATIONARY_KINDS: tuple[str, ...] = tuple(kind for kind in MARKET_KINDS if kind != "regime_change")
"""The kinds whose edge holds over the whole file (a learner trained on the start can use it at the end), unless
``breaks`` flip it."""
BREAK_KINDS: tuple[str, ...] = ("momentum", "time_of_day", "volume")
"""Kinds whose planted edge may flip sign at ``breaks`` (one, two or more regime breaks)."""
MEMORY_KINDS: tuple[str, ...] = ("bar_sequence", "delayed_volume")
"""The kinds whose edge lies in the order of the last few bars: no feature of one bar reveals it, so a policy
has to remember (a recurrent policy's reason to exist)."""
SIDECAR_SUFFIX = ".oracle.json"


class KnownAnswerMarket(BaseModel):
    """How a known-answer market was generated: everything needed to rebuild it and its oracle."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: MarketKind = Field(description="which edge is planted")
    bars: int = Field(20_000, ge=1_000, description="number of bars")
    seed: int = Field(0, description="seed of the noise (the same seed gives the same file)")
    sigma: float = Field(0.001, gt=0, description="sd of one bar's log return (0.1%)")
    spread_points: int = Field(16, ge=0, description="spread of every bar, in points")
    point: float = Field(0.01, gt=0, description="price of one point (prices are written with its decimals)")
    start_price: float = Field(2000.0, gt=0)
    start: str = Field("2024-01-01 00:00", description="time of the first bar")
    bar_minutes: int = Field(15, ge=1, le=1440)
    phi: float = Field(0.15, gt=-1, lt=1, description="momentum: AR(1) coefficient of log returns")
    drift: float = Field(0.0004, description="time_of_day: drift per bar in the positive blocks (0.04%)")
    block_hours: int = Field(4, ge=1, le=12, description="time_of_day: hours per drift block")
    kappa: float = Field(0.05, gt=0, lt=1, description="mean_reversion: pull towards the mean per bar")
    change_at: float = Field(0.5, gt=0, lt=1, description="regime_change: share of the bars after which the "
                                                          "time-of-day blocks swap signs")
    breaks: list[float] = Field(default_factory=list, description="momentum, time_of_day, volume: shares of the bars "
                                "at which the planted edge flips sign, each break flipping it again (e.g. 0.6, or "
                                "0.4 0.7 for two breaks): what rose now falls, momentum becomes reversal, a surge's "
                                "continuation becomes its reversal")
    surge_share: float = Field(0.1, gt=0, lt=1, description="volume: share of bars with a volume surge")
    surge_drift: float = Field(0.0005, ge=0, description="volume: the next bar's drift, in the surge bar's direction")
    calm_drift: float = Field(0.00012, ge=0, description="volatility_regime: drift per bar while volatility is calm "
                                                        "(none while it is wild)")
    regime_bars: int = Field(400, ge=10, description="volatility_regime: mean bars a calm or wild spell lasts")
    wild_sigma: float = Field(2.5, gt=1, description="volatility_regime: wild spells' sd as a multiple of calm's")
    weekday_drift: float = Field(0.00008, ge=0, description="day_of_week: drift per bar, + on Mon/Wed/Fri, "
                                                           "- on Tue/Thu")
    trend_drift: float = Field(0.00015, ge=0, description="session_trend: drift per bar along the last trend_bars' "
                                                         "move inside the session, against it outside")
    trend_bars: int = Field(4, ge=1, le=64, description="session_trend: bars of the move that sets the direction")
    session_start: int = Field(7, ge=0, le=23, description="session_trend: the session's first hour")
    session_end: int = Field(19, ge=1, le=24, description="session_trend: the hour the session ends")
    sequence_drift: float = Field(0.00025, ge=0, description="bar_sequence: the next bar's drift, up when the last "
                                                           "sequence_bars moves hold an even number of down bars, "
                                                           "down when odd")
    sequence_bars: int = Field(3, ge=2, le=8, description="bar_sequence: how many of the last moves set the sign")
    echo_delay: int = Field(3, ge=2, le=32, description="delayed_volume: bars from a volume surge to its drift's "
                                                       "first bar")
    echo_bars: int = Field(3, ge=1, le=32, description="delayed_volume: bars the drift lasts")
    echo_drift: float = Field(0.0003, ge=0, description="delayed_volume: drift per bar, in the surge bar's direction")
    sha256: str | None = Field(None, description="content hash of the bar file written (set by write)")

    @field_validator("breaks")
    @classmethod
    def _breaks_fit_the_kind(cls, breaks: list[float], info: ValidationInfo) -> list[float]:
        kind = info.data.get("kind")
        if breaks and kind not in BREAK_KINDS:
            raise ValueError(f"breaks apply to {', '.join(BREAK_KINDS)} (regime_change has its one at change_at), "
                             f"not {kind}")
        if any(not 0 < share < 1 for share in breaks) or sorted(set(breaks)) != list(breaks):
            raise ValueError(f"breaks must be increasing shares of the bars between 0 and 1, got {breaks}")
        return breaks


def sidecar_path(data_path: str | Path) -> Path:
    data_path = Path(data_path)
    return data_path.with_name(data_path.name + SIDECAR_SUFFIX)


def read_market(data_path: str | Path, data_sha256: str | None = None) -> KnownAnswerMarket | None:
    """The generator of a known-answer bar file, or None for any other file.

    A sidecar whose hash does not match the bars (the file was edited or replaced) is
    ignored: its oracle would describe other bars."""
    sidecar = sidecar_path(data_path)
    if not sidecar.is_file():
        return None
    try:
        market = KnownAnswerMarket.model_validate(json.loads(sidecar.read_text(encoding="utf-8")))
    except (ValueError, ValidationError) as error:
        raise UserInputError(f"{sidecar}: not a known-answer market description ({error.__class__.__name__}); "
                             "delete it or rewrite it with rltrader synth") from None
    if data_sha256 is not None and market.sha256 not in (None, data_sha256):
        return None
    return market


__all__ = ["BREAK_KINDS", "MARKET_KINDS", "MEMORY_KINDS", "SIDECAR_SUFFIX", "STATIONARY_KINDS", "KnownAnswerMarket",
           "MarketKind", "read_market", "sidecar_path"]
