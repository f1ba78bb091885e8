"""Known-answer markets: bar files with a planted, learnable edge and the policy that knows it.

A Sharpe ratio on real bars cannot say whether a learner learns: nobody knows what was
there to learn. These markets plant an edge of a known size and shape, write the bars in
MetaTrader 5's export format (so they pass through the normal loader, features,
environment and costs), and keep the generator's parameters beside the file
(``<file>.oracle.json``), so every report on them can score the *oracle*, the policy that
knows the planted process, through the same ledger and costs as the agent, and say what
fraction of the available edge the agent captured.

Markets (log returns ``r_t``, per-bar noise ``sigma``):

- ``momentum``: AR(1), ``r_t = phi r_{t-1} + e_t`` (unconditional sd ``sigma``);
  expected next return ``phi r_t``.
- ``time_of_day``: ``r_t = d(t) + e_t`` with a drift of ``+drift`` in even and ``-drift`` in
  odd ``block_hours``-hour blocks of the day; expected next return ``d(t+1)``, known from
  the calendar.
- ``mean_reversion``: log price ``m + y_t`` with ``y_t = (1 - kappa) y_{t-1} + e_t``;
  expected next return ``-kappa (log close_t - m)``.
- ``volume``: a volume surge (``surge_share`` of the bars, about 3x the usual tick volume) is
  followed by a bar drifting ``surge_drift`` in the surge bar's direction; other bars carry no
  edge. Learnable only from the volume and the last return together.
- ``volatility_regime``: calm and wild spells (a two-state Markov chain, ``regime_bars`` long on
  average, wild sd ``wild_sigma`` x calm's); the price drifts up ``calm_drift`` per bar in calm
  spells and not at all in wild ones. Learnable from realized volatility.
- ``day_of_week``: a drift of ``+weekday_drift`` on Mondays, Wednesdays and Fridays and
  ``-weekday_drift`` on Tuesdays and Thursdays (server time).
- ``session_trend``: inside the session (``session_start`` to ``session_end`` o'clock) the next bar
  drifts ``trend_drift`` along the last ``trend_bars`` bars' move, outside it against that move:
  neither the clock nor the recent move alone carries an edge, only the two together.
- ``bar_sequence`` (memory): the next bar drifts ``sequence_drift`` up when the last
  ``sequence_bars`` close-to-close moves hold an even number of down bars (up-up-up, up-down-down,
  down-up-down, down-down-up for three) and down when odd: the drift is the product of the
  moves' signs, which no linear filter of past returns (a return over h bars, an average, MACD)
  correlates with. Only a policy that remembers the order of the last few bars' signs has it.
- ``delayed_volume`` (memory): a volume surge (``surge_share`` of the bars, about 3x the usual
  volume) sets off a drift of ``echo_drift`` per bar in the surge bar's direction that starts
  ``echo_delay`` bars after it and lasts ``echo_bars`` bars; when it starts the surge is no
  longer in the bar's volume, so a policy has to remember it.
- ``regime_change``: ``time_of_day``, but at the bar ``change_at`` of the way through the file the
  blocks swap signs (what rose in a block now falls): a model trained before the change holds the
  wrong edge after it, and only retraining on the new regime recovers it. The oracle knows the
  change time (it is in the generator), so it trades the new regime from its first bar.

The oracle decides at bar ``t``'s close from what is known then (the closes up to ``t``, the
calendar and, for the hidden-state kinds, the generator's state at ``t``: the surge flag, the
volatility spell; the memory kinds' drift from the closes as written, as an agent sees them),
like the agent, and fills at ``t+1``'s open: it goes long (short) when the expected next move
exceeds (falls below minus) the cost of one fill; where no edge is planted for the next bar
(``volume`` and ``delayed_volume`` outside their drifts, ``volatility_regime`` in wild spells)
it is flat, and otherwise it keeps its position. It is a known good answer, not an upper bound:
an agent may beat it (it does not weigh costs against how long an edge lasts).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from rltrader.atomic import write_json, write_with
from rltrader.data.known_answer import MARKET_KINDS, KnownAnswerMarket, read_market, sidecar_path


def _timestamps(market: KnownAnswerMarket) -> pd.DatetimeIndex:
    """Bars around the clock on weekdays, as a 24/5 market exports them (weekends are gaps)."""
    step = pd.Timedelta(minutes=market.bar_minutes)
    start = pd.Timestamp(market.start)
    # enough calendar time for the bars, weekends included, then the first ``bars`` weekday bars
    span = int(market.bars * 7 / 5) + 10
    times = pd.date_range(start, periods=span, freq=step)
    return times[times.day_of_week < 5][: market.bars]


SUITE_SETTINGS: dict[str, dict[str, float]] = {"time_of_day": {"drift": 0.00025}}
"""The learning study's and bench's markets: each kind's defaults, but for time_of_day a smaller drift (its
default's oracle Sharpe, about 60, is above the 5-40 of the others and of markets worth trading)."""


def suite_market(kind: str, seed: int = 0, **settings: float) -> KnownAnswerMarket:
    """The known-answer market of ``kind`` that studies and benches learn on (20,000 M15 bars)."""
    return KnownAnswerMarket(kind=kind, seed=seed, **{**SUITE_SETTINGS.get(kind, {}), **settings})


def break_times(market: KnownAnswerMarket) -> list[pd.Timestamp]:
    """The open times of the first bars of each new regime: ``breaks`` (regime_change: its one, ``change_at``)."""
    times = _timestamps(market)
    shares = [market.change_at] if market.kind == "regime_change" else market.breaks
    return [times[int(market.bars * share)] for share in shares]


def change_time(market: KnownAnswerMarket) -> pd.Timestamp:
    """regime_change: the open time of the first bar of the new regime."""
    return break_times(market)[0]


def edge_sign(market: KnownAnswerMarket, times: pd.DatetimeIndex | np.ndarray) -> np.ndarray:
    """The planted edge's sign for a bar at each of ``times``: +1 before the first break, -1 after it, +1 after
    a second, ... (all +1 without breaks). One function for the generator and the oracle."""
    if market.kind != "regime_change" and not market.breaks:  # the oracle's hot path: no calendar to build
        return np.ones(len(times))
    stamps = pd.DatetimeIndex(times).to_numpy(dtype="datetime64[ns]")
    breaks = np.array([np.datetime64(stamp) for stamp in break_times(market)], dtype="datetime64[ns]")
    flips = np.searchsorted(breaks, stamps, side="right")
    return np.where(flips % 2 == 0, 1.0, -1.0)


def block_drift(times: pd.DatetimeIndex | np.ndarray, market: KnownAnswerMarket) -> np.ndarray:
    """time_of_day and regime_change: the planted expected log return of a bar at each time."""
    hours = pd.DatetimeIndex(times).hour.to_numpy()
    drift = np.where((hours // market.block_hours) % 2 == 0, market.drift, -market.drift)
    return drift * edge_sign(market, times)


WEEKDAY_SIGNS = np.array([1.0, -1.0, 1.0, -1.0, 1.0, 0.0, 0.0])
"""day_of_week: the drift's sign on Monday .. Sunday."""


def _latent_state(market: KnownAnswerMarket, bars: int) -> np.ndarray:
    """The hidden state of the hidden-state kinds, one value per generated bar, from its own stream of the seed
    (so the oracle can rebuild it, and the older kinds' files stay as they were).

    volume: 1 where the bar is a surge; volatility_regime: 1 in calm spells, 0 in wild ones."""
    rng = np.random.default_rng([market.seed, 17])
    if market.kind in ("volume", "delayed_volume"):
        return (rng.random(bars) < market.surge_share).astype(np.float64)
    if market.kind == "volatility_regime":
        switches = rng.random(bars) < 1.0 / market.regime_bars
        return (np.cumsum(switches) % 2 == 0).astype(np.float64)  # calm first, flipping at each switch
    return np.zeros(bars)


def _latent_at(market: KnownAnswerMarket, timestamps: np.ndarray) -> np.ndarray:
    """The hidden state at each of ``timestamps`` (bars of this market's file, in any subset)."""
    times = _timestamps(market)
    state = _latent_state(market, len(times))
    wanted = np.asarray(timestamps, dtype="datetime64[ns]")
    return state[np.searchsorted(times.to_numpy(dtype="datetime64[ns]"), wanted)]


def _calm_sigma(market: KnownAnswerMarket) -> float:
    """volatility_regime: calm spells' sd, so that the average variance over spells is ``sigma``**2."""
    return market.sigma * np.sqrt(2.0 / (1.0 + market.wild_sigma**2))


def _session_sign(market: KnownAnswerMarket, times: pd.DatetimeIndex | np.ndarray) -> np.ndarray:
    """session_trend: +1 for a bar inside the session, -1 outside."""
    hours = pd.DatetimeIndex(times).hour.to_numpy()
    inside = (hours >= market.session_start) & (hours < market.session_end)
    return np.where(inside, 1.0, -1.0)


def _feedback_returns(market: KnownAnswerMarket, times: pd.DatetimeIndex, noise: np.ndarray,
                      state: np.ndarray) -> np.ndarray:
    """volume and session_trend: each bar's drift depends on the bars before it, so they are drawn in order."""
    returns = noise * market.sigma
    if market.kind == "volume":
        signs = edge_sign(market, times)
        for index in range(1, len(returns)):
            if state[index - 1]:
                returns[index] += market.surge_drift * np.sign(returns[index - 1]) * signs[index]
        return returns
    sessions, window = _session_sign(market, times), market.trend_bars
    for index in range(window, len(returns)):
        move = returns[index - window:index].sum()
        returns[index] += market.trend_drift * sessions[index] * np.sign(move)
    return returns


def _price_digits(market: KnownAnswerMarket) -> int:
    return max(0, int(round(-np.log10(market.point))))


def _memory_drift(market: KnownAnswerMarket, move_signs: np.ndarray, surge: np.ndarray, bar: int) -> float:
    """The memory kinds' planted expected log return of bar ``bar``, from the signs of the close-to-close moves
    before it (``move_signs[u]``: the sign of bar ``u``'s move; 0 for the first bar and for an unchanged close)
    and the surge flags. One function for the generator and the oracle, so the two cannot disagree."""
    if market.kind == "bar_sequence":
        first = bar - market.sequence_bars
        return market.sequence_drift * float(np.prod(move_signs[first:bar])) if first >= 0 else 0.0
    earliest, latest = bar - market.echo_delay - market.echo_bars + 1, bar - market.echo_delay
    surges = np.arange(max(earliest, 0), latest + 1)
    return market.echo_drift * float(np.sum(move_signs[surges] * surge[surges]))


def _memory_returns(market: KnownAnswerMarket, noise: np.ndarray, state: np.ndarray) -> np.ndarray:
    """bar_sequence and delayed_volume: drawn bar by bar, each drift set by the signs of the moves in the closes
    as written (rounded to the point), so the edge is exactly the one an agent reading the file can find."""
    returns = noise * market.sigma
    digits = _price_digits(market)
    signs = np.zeros(len(returns))
    log_price, previous_close = np.log(market.start_price), None
    for bar in range(len(returns)):
        returns[bar] += _memory_drift(market, signs, state, bar)
        log_price += returns[bar]
        close = round(float(np.exp(log_price)), digits)
        signs[bar] = 0.0 if previous_close is None else float(np.sign(close - previous_close))
        previous_close = close
    return returns


def _log_returns(market: KnownAnswerMarket, times: pd.DatetimeIndex, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(len(times))
    if market.kind in ("bar_sequence", "delayed_volume"):
        return _memory_returns(market, noise, _latent_state(market, len(times)))
    if market.kind in ("volume", "session_trend"):
        return _feedback_returns(market, times, noise, _latent_state(market, len(times)))
    if market.kind == "volatility_regime":
        calm = _latent_state(market, len(times))
        sd = _calm_sigma(market) * np.where(calm == 1.0, 1.0, market.wild_sigma)
        return calm * market.calm_drift + noise * sd
    if market.kind == "day_of_week":
        return WEEKDAY_SIGNS[times.day_of_week.to_numpy()] * market.weekday_drift + noise * market.sigma
    if market.kind == "momentum":
        shocks = noise * market.sigma * np.sqrt(1.0 - market.phi**2)
        phis = market.phi * edge_sign(market, times)  # after a break, momentum becomes reversal (and back)
        returns = np.empty(len(times))
        previous = noise[0] * market.sigma  # start in the stationary distribution
        for index, shock in enumerate(shocks):
            previous = phis[index] * previous + shock
            returns[index] = previous
        return returns
    if market.kind in ("time_of_day", "regime_change"):
        return block_drift(times, market) + noise * market.sigma
    deviation = np.empty(len(times))  # mean_reversion: AR(1) deviation of the log price from its mean
    level = 0.0
    for index, shock in enumerate(noise * market.sigma):
        level = (1.0 - market.kappa) * level + shock
        deviation[index] = level
    return np.diff(np.concatenate(([0.0], deviation)))


def generate(market: KnownAnswerMarket) -> pd.DataFrame:
    """The bars of ``market`` in MT5's Python export layout (``time`` in Unix seconds)."""
    rng = np.random.default_rng(market.seed)
    times = _timestamps(market)
    close = market.start_price * np.exp(np.cumsum(_log_returns(market, times, rng)))
    open_ = np.concatenate(([market.start_price], close[:-1]))
    wick = np.abs(rng.standard_normal((2, len(times)))) * market.sigma * 0.5
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    digits = _price_digits(market)
    tick_volume = rng.integers(500, 1500, len(times))
    if market.kind in ("volume", "delayed_volume"):  # surges: about three times the usual volume
        tick_volume = np.where(_latent_state(market, len(times)) == 1.0, tick_volume * 3, tick_volume)
    return pd.DataFrame({
        "time": ((times - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64),
        "open": np.round(open_, digits), "high": np.round(high, digits),
        "low": np.round(low, digits), "close": np.round(close, digits),
        "tick_volume": tick_volume,
        "spread": np.full(len(times), market.spread_points, dtype=np.int64),
        "real_volume": np.zeros(len(times), dtype=np.int64),
    })


def write_market(market: KnownAnswerMarket, path: str | Path) -> KnownAnswerMarket:
    """Write the bars to ``path`` (CSV) and the generator beside it, both atomically."""
    path = Path(path)
    frame = generate(market)
    write_with(path, lambda tmp: frame.to_csv(tmp, index=False))
    written = market.model_copy(update={"sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    write_json(sidecar_path(path), written.model_dump())
    return written


def expected_next_return(market: KnownAnswerMarket, timestamps: np.ndarray, close: np.ndarray) -> np.ndarray:
    """Per bar ``t``: the planted expected log return of bar ``t+1``, from what is known at ``t``'s close.

    NaN where no edge is planted for the next bar (the oracle is flat there), and for the last bar
    (there is no next bar)."""
    log_close = np.log(close)
    expected = np.full(len(close), np.nan)
    following = edge_sign(market, np.concatenate((timestamps[1:], timestamps[-1:])))  # the next bar's regime
    if market.kind == "volume":
        surge = _latent_at(market, timestamps) == 1.0
        moves = np.concatenate(([0.0], np.diff(log_close)))
        expected[:-1] = np.where(surge, market.surge_drift * np.sign(moves) * following, np.nan)[:-1]
    elif market.kind == "volatility_regime":
        calm = _latent_at(market, timestamps) == 1.0  # the next bar stays calm with probability 1 - 1/regime_bars
        expected[:-1] = np.where(calm, market.calm_drift * (1.0 - 1.0 / market.regime_bars), np.nan)[:-1]
    elif market.kind == "day_of_week":
        expected[:-1] = WEEKDAY_SIGNS[pd.DatetimeIndex(timestamps[1:]).day_of_week.to_numpy()] * market.weekday_drift
    elif market.kind == "session_trend":
        window = market.trend_bars
        moves = np.full(len(close), 0.0)
        moves[window:] = log_close[window:] - log_close[:-window]
        expected[:-1] = market.trend_drift * _session_sign(market, timestamps[1:]) * np.sign(moves[:-1])
    elif market.kind in ("bar_sequence", "delayed_volume"):
        signs = np.concatenate(([0.0], np.sign(np.diff(close))))
        surge = _latent_at(market, timestamps) if market.kind == "delayed_volume" else np.zeros(len(close))
        drift = np.array([_memory_drift(market, signs, surge, bar + 1) for bar in range(len(close) - 1)])
        expected[:-1] = np.where(drift != 0.0, drift, np.nan)
    elif market.kind == "momentum":
        expected[1:] = market.phi * np.diff(log_close) * following[1:]
        expected[0] = 0.0
    elif market.kind in ("time_of_day", "regime_change"):
        expected[:-1] = block_drift(timestamps[1:], market)
    else:
        expected[:] = -market.kappa * (log_close - np.log(market.start_price))
    return expected


def oracle_actions(market: KnownAnswerMarket, timestamps: np.ndarray, close: np.ndarray, trade_cost: np.ndarray,
                   first_bar: int, steps: int) -> np.ndarray:
    """The oracle's actions (0 short, 1 flat, 2 long) decided at bars ``first_bar .. first_bar + steps - 1``.

    Long when the expected next move in price exceeds one fill's cost, short when it falls
    below minus that cost, flat where no edge is planted, otherwise the position it holds (flat
    at the start)."""
    decisions = np.arange(first_bar, first_bar + steps)
    expected = expected_next_return(market, timestamps, close)[decisions]
    move = expected * close[decisions]
    cost = trade_cost[np.minimum(decisions + 1, len(close) - 1)]
    no_edge = np.isnan(expected) & (decisions < len(close) - 1)
    wanted = pd.Series(np.where(move > cost, 2.0, np.where(move < -cost, 0.0, np.where(no_edge, 1.0, np.nan))))
    return wanted.ffill().fillna(1.0).to_numpy(dtype=np.int64)


__all__ = [
    "MARKET_KINDS",
    "break_times",
    "change_time",
    "edge_sign",
    "KnownAnswerMarket",
    "expected_next_return",
    "generate",
    "oracle_actions",
    "read_market",
    "sidecar_path",
    "suite_market",
    "write_market",
]
