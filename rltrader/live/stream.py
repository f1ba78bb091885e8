"""Decide on closed bars as they arrive, with the backtest's arithmetic: the live decision stream.

A :class:`DecisionStream` holds everything the next decision needs: the features' rolling windows
and exponential averages (:class:`~rltrader.features.stream.FeatureStream`), the last observation
window, the LSTM's (h, c), and a paper account (position, entry, equity). :meth:`DecisionStream.advance`
takes one or more new closed bars and, for each in order, does what the fast evaluator does at that
bar: fill the action decided at the previous close at this bar's open and mark the account to this
close (:mod:`rltrader.env.market`'s execution model), then decide at this close. The last decision
stays pending until the next bar arrives: it is the signal for the next bar's open.

Why the decisions are the backtest's, bit for bit: the features are the batch pipeline's own
arithmetic (exponential averages with pandas' recursion, rolling windows through the same compiled
function); the normalization is :class:`~rltrader.features.normalization.NormalizationStats`'s; each
bar's input projection is summed alone by the kernel the evaluator uses for its chunks; the LSTM,
the actor and the account run through the evaluator's own compiled functions
(:func:`~rltrader.engine.kernels.actors.stream_recurrent_actor`); the step-table rows are
:func:`~rltrader.env.market.step_table`'s. ``bench/parity.py`` checks it on whole test splits.

The stream starts flat with zero LSTM state at its first decision, as the evaluator starts a split.
Decisions begin once ``warmup_bars`` bars came before (the bundle's warm-up), and not before ``start``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rltrader.bundle import Bundle
from rltrader.config import CostConfig, EnvConfig
from rltrader.data.bar_arrays import BarArrays, bar_time
from rltrader.engine.kernels.actors import stream_mlp_actor, stream_recurrent_actor
from rltrader.env.conversion import IDENTITY, OWN_INVERSE, ConversionRates
from rltrader.env.market import ACTION_NAMES, FLAT, TABLE_COLUMNS, rollover_nights, step_table
from rltrader.errors import UserInputError
from rltrader.evaluation.fast import ActorWeights, MlpActorWeights, PackedActors, project_windows
from rltrader.features.normalization import NormalizationStats
from rltrader.features.stream import FeatureStream

#: A price this far (log) from the last accepted bar's low-high range cannot be real: a lost decimal.
#: The batch check also asks the next bar, which a stream does not have yet, so only this bound applies.
IMPOSSIBLE_LOG_JUMP = float(np.log(5.0))
NO_ACTION = -1


class BarOrderError(UserInputError):
    """A new bar that is not later than the last bar the stream processed."""


class UnsupportedBundleError(UserInputError):
    """A bundle the live stream cannot run (e.g. a cross needing a second price feed)."""


def conversion_method(account: dict[str, Any]) -> str:
    """How profits reach the account currency, from the bundle's account terms (as
    :func:`~rltrader.env.conversion.plan_conversion` decides it from the names)."""
    instrument, currency = account["instrument"], account["currency"]
    if instrument.get("quote") in (None, currency):
        return IDENTITY
    if instrument.get("base") == currency:
        return OWN_INVERSE
    return "file"


@dataclass(frozen=True)
class StepBatch:
    """What :meth:`DecisionStream.advance` did at each accepted new bar (arrays of length N).

    ``actions`` is the action decided at the bar's close (-1 before the first decision);
    ``filled`` says whether the previous decision was filled at this bar's open, ``profits`` that
    fill's step profit; ``units`` and ``equity`` are the account after it, marked to this close."""

    timestamps: np.ndarray
    actions: np.ndarray
    probabilities: np.ndarray  # (N, 3): short, flat, long
    filled: np.ndarray
    held: np.ndarray  # the action held after this bar's fill
    units: np.ndarray
    equity: np.ndarray
    profits: np.ndarray
    table: np.ndarray  # (N, TABLE_COLUMNS): the bars' step-table rows
    previous_row: np.ndarray  # (TABLE_COLUMNS,): the row of the bar before the first
    features: np.ndarray  # (N, F): normalized features, float32
    rejected: tuple[tuple[int, str], ...]  # (bar time ns, why) of bars refused by the price check

    def __len__(self) -> int:
        return len(self.timestamps)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Action probabilities from float32 logits, in double precision."""
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=-1, keepdims=True)


class LivePolicy:
    """A bundle's actor as the evaluator's kernels read it, with its carried state.

    :param bundle: a verified bundle (its ``policy.zip`` is loaded with SB3, once)
    """

    def __init__(self, bundle: Bundle) -> None:
        from rltrader.engine.model_files import algorithm_class

        about = bundle.description
        model = algorithm_class(about.algorithm).load(str(bundle.policy_path), device="cpu")
        size = about.window_size * len(about.feature_columns) + 2
        self.recurrent = about.algorithm == "recurrent"
        if self.recurrent:
            actor = ActorWeights.from_model(model, size)
            self.packed = PackedActors.of([actor])
            self.window_in, self.bias = actor.window_in, actor.bias0
            layers, hidden = len(actor.upper) + 1, actor.hidden
            self.layer0_input = np.zeros((1, hidden + 2), dtype=np.float32)
            self.hidden = np.zeros((1, layers, hidden), dtype=np.float32)
            self.cell = np.zeros((1, layers, hidden), dtype=np.float32)
        else:
            mlp_actor = MlpActorWeights.from_model(model, size)
            first = mlp_actor
            self.window_in, self.bias = mlp_actor.window_in, mlp_actor.bias0
            self.tail = mlp_actor.tail[None]
            self.widths = np.array([first.bias0.shape[0]] + [w.shape[1] for w, _, _ in first.later], dtype=np.int64)
            self.activations = np.array([first.first_activation] + [c for _, _, c in first.later], dtype=np.int64)
            self.mlp = np.concatenate([w.reshape(-1) for w, _, _ in first.later] or [np.zeros(0, np.float32)])[None]
            self.mlp_bias = np.concatenate([b for _, b, _ in first.later] or [np.zeros(0, np.float32)])[None]
            self.position_pnl = np.zeros((1, 2), dtype=np.float32)

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The carried state: LSTM input row (hidden, position, PnL), h and c; or position and PnL."""
        if self.recurrent:
            return {"layer0_input": self.layer0_input, "hidden": self.hidden, "cell": self.cell}
        return {"position_pnl": self.position_pnl}


@dataclass
class AccountState:
    """The stream's paper account: the evaluator's per-model account arrays, for one model."""

    account: np.ndarray  # float64 (1, 3): equity, entry price, units held
    held: np.ndarray  # int64 (1,)
    alive: np.ndarray  # bool (1,)
    pending: np.ndarray  # int64 (1,): decided at the last bar, not yet filled (-1: none)

    @classmethod
    def opened(cls, initial_balance: float) -> AccountState:
        account = np.zeros((1, 3))
        account[0, 0] = initial_balance
        return cls(account, np.full(1, FLAT, dtype=np.int64), np.ones(1, dtype=np.bool_),
                   np.full(1, NO_ACTION, dtype=np.int64))


class DecisionStream:
    """A bundle deciding on closed bars as they come (see the module docstring).

    :param bundle: a verified bundle
    :param start: bar open time (ns since the epoch) of the earliest bar to decide on; None decides
        from the first bar after the warm-up
    """

    def __init__(self, bundle: Bundle, start: int | None = None) -> None:
        about = bundle.description
        self.bundle = bundle
        self.env = EnvConfig.model_validate(about.env)
        self.costs = CostConfig.model_validate(about.costs)
        self.method = conversion_method(about.account)
        if self.method not in (IDENTITY, OWN_INVERSE):
            raise UnsupportedBundleError(
                f"{bundle.root}: {about.symbol} converts into {about.account['currency']} through a second pair's "
                "bars, which the live stream does not read yet; paper-trade it in an account of its quote currency")
        self.fraction_sizing = about.account["sizing"] == "equity_fraction"
        self.sizing = np.array([float(self.fraction_sizing), float(about.account["size"])])
        self.features = FeatureStream.of(about.feature_config, about.feature_columns,
                                         NormalizationStats.from_dict(about.normalization))
        self.policy = LivePolicy(bundle)
        self.window = about.window_size
        self.warmup = about.warmup_bars
        self.start = start
        # the last window - 1 rows of normalized features (NaN until that many bars came: no decision reads them)
        self.recent = np.full((self.window - 1, len(about.feature_columns)), np.nan, dtype=np.float32)
        self.previous: np.ndarray | None = None  # the last accepted bar: time, open, high, low, close, spread
        self.account = AccountState.opened(self.env.initial_balance)
        self.bars_seen = 0
        self.decisions = 0

    # ---------------------------------------------------------------- input checks
    @property
    def last_time(self) -> int | None:
        return None if self.previous is None else int(self.previous[0])

    def _check_order(self, bars: BarArrays) -> None:
        times = bars.timestamps
        if len(times) > 1 and (np.diff(times) <= 0).any():
            at = int(np.flatnonzero(np.diff(times) <= 0)[0])
            raise BarOrderError(f"bar {bar_time(times[at + 1])} comes after {bar_time(times[at])}: new bars must be in "
                                "time order, each later than the one before")
        if self.last_time is not None and len(times) and times[0] <= self.last_time:
            raise BarOrderError(f"new bar {bar_time(times[0])} is not later than the last processed bar "
                                f"{bar_time(self.last_time)}; pass only bars after it")

    def _accepted(self, bars: BarArrays) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """Which bars pass the impossible-price check, judged against the last accepted bar.

        Vectorized against each bar's predecessor first; only a batch holding a suspect bar is
        walked bar by bar (a refused bar is not the next one's reference)."""
        prices = np.column_stack([bars.open, bars.high, bars.low, bars.close])
        tolerance = 1e-9 * np.abs(bars.high)
        consistent = (np.isfinite(prices).all(axis=1) & (prices > 0).all(axis=1)
                      & (bars.high >= np.maximum(bars.open, bars.close) - tolerance)
                      & (bars.low <= np.minimum(bars.open, bars.close) + tolerance))
        highs, lows = bars.high, bars.low
        if self.previous is not None:
            highs = np.concatenate(([self.previous[2]], highs))
            lows = np.concatenate(([self.previous[3]], lows))
        with np.errstate(invalid="ignore", divide="ignore"):
            logs = np.log(prices)
            reference_low, reference_high = np.log(lows[:-1]), np.log(highs[:-1])  # each bar's predecessor
            judged = logs if self.previous is not None else logs[1:]
            distance = np.maximum(0.0, np.maximum(reference_low[:, None] - judged,
                                                  judged - reference_high[:, None])).max(axis=1, initial=0.0)
        if consistent.all() and not (distance > IMPOSSIBLE_LOG_JUMP).any():
            return np.ones(len(bars), dtype=bool), []
        keep = np.ones(len(bars), dtype=bool)
        rejected: list[tuple[int, str]] = []
        reference = None if self.previous is None else (self.previous[2], self.previous[3])
        for i in range(len(bars)):
            if not consistent[i]:
                keep[i] = False
                rejected.append((int(bars.timestamps[i]), "a price is not a positive number or the high/low do "
                                                          "not contain the open and close"))
                continue
            if reference is not None:
                far = float(np.max(np.maximum(0.0, np.maximum(np.log(reference[1]) - logs[i],
                                                              logs[i] - np.log(reference[0])))))
                if far > IMPOSSIBLE_LOG_JUMP:
                    keep[i] = False
                    rejected.append((int(bars.timestamps[i]), f"a price is {np.exp(far):,.0f}x away from the last "
                                                              "accepted bar: a lost decimal or a bad tick"))
                    continue
            reference = (bars.high[i], bars.low[i])
        return keep, rejected

    # ---------------------------------------------------------------- the step
    def _table(self, bars: BarArrays) -> tuple[np.ndarray, np.ndarray]:
        """Step-table rows of the previous bar and the new bars, with :func:`step_table` itself."""
        previous = self.previous
        times = bars.timestamps if previous is None else np.concatenate(([int(previous[0])], bars.timestamps))
        opens = bars.open if previous is None else np.concatenate(([previous[1]], bars.open))
        closes = bars.close if previous is None else np.concatenate(([previous[4]], bars.close))
        if self.costs.spread_points is None:
            spread = bars.spread if previous is None else np.concatenate(([previous[5]], bars.spread))
        else:
            spread = np.full(len(closes), self.costs.spread_points * float(self.bundle.description.spread_point))
        nights = rollover_nights(times.astype("datetime64[ns]"), self.costs.triple_swap_weekday)
        if self.method == OWN_INVERSE:
            rates = ConversionRates(1.0 / closes, 1.0 / opens)
        else:
            ones = np.ones(len(closes))
            rates = ConversionRates(ones, ones)
        table = step_table(opens, closes, spread, self.costs.commission_per_unit, nights * self.costs.swap_long,
                           nights * self.costs.swap_short, rates)
        if previous is None:  # no bar before the first: a row that no fill reads
            table = np.vstack([np.full((1, TABLE_COLUMNS), np.nan), table])
        return table, times

    def _decide_mask(self, bars: BarArrays) -> np.ndarray:
        index = self.bars_seen + np.arange(len(bars))
        mask = index >= self.warmup
        if self.start is not None:
            mask &= bars.timestamps >= self.start
        return mask

    def advance(self, bars: BarArrays, stand_aside: bool = False) -> StepBatch:
        """Process new closed bars in time order; see the module docstring.

        :param stand_aside: send flat orders whatever the model decides (a paper account standing aside after a
            break alarm); the model still decides at each close and its decisions are returned

        :raises BarOrderError: a bar not later than the one before it or than the last processed bar
            (nothing is changed then)
        """
        self._check_order(bars)
        keep, rejected = self._accepted(bars)
        if not keep.all():
            bars = bars.take(keep)
        n = len(bars)
        raw = self.features.raw(bars)
        normalized = self.features.normalize(raw)
        table, _ = self._table(bars)
        decide = self._decide_mask(bars)
        stacked = np.concatenate([self.recent, normalized])
        projected = np.zeros((n, 1, self.policy.bias.shape[0]), dtype=np.float32)
        rows = np.flatnonzero(decide)
        if len(rows):
            windows = np.stack([stacked[r : r + self.window].reshape(-1) for r in rows]) if self.window > 1 \
                else normalized[rows]
            projected[rows] = project_windows(np.ascontiguousarray(windows), [(self.policy.window_in,
                                                                               self.policy.bias)])
        actions = np.empty(n, dtype=np.int64)
        logits = np.zeros((n, 3), dtype=np.float32)
        profits = np.zeros(n)
        filled = np.zeros(n, dtype=np.bool_)
        marks, held = np.empty((n, 3)), np.empty(n, dtype=np.int64)
        account, policy = self.account, self.policy
        if policy.recurrent:
            packed = policy.packed
            stream_recurrent_actor(projected, decide, table, account.pending, packed.recurrent, packed.upper,
                                   packed.upper_bias, packed.mlp, packed.mlp_bias, packed.mlp_widths,
                                   packed.mlp_activation, packed.action, packed.action_bias, packed.skip,
                                   policy.layer0_input,
                                   policy.hidden, policy.cell, account.account, account.held, account.alive,
                                   self.sizing, actions, logits, profits, filled, marks, held, stand_aside)
        else:
            stream_mlp_actor(projected, decide, table, account.pending, policy.tail, policy.mlp, policy.mlp_bias,
                             policy.widths, policy.activations, policy.position_pnl, account.account, account.held,
                             account.alive, self.sizing, actions, logits, profits, filled, marks, held, stand_aside)
        units, equity = marks[:, 2].copy(), marks[:, 0].copy()
        self.decisions += int((actions >= 0).sum())
        self.bars_seen += n
        self.recent = stacked[len(stacked) - (self.window - 1):].copy()
        if n:
            spread_last = bars.spread[-1] if len(bars.spread) else 0.0
            self.previous = np.array([bars.timestamps[-1], bars.open[-1], bars.high[-1], bars.low[-1],
                                      bars.close[-1], spread_last], dtype=np.float64)
        probabilities = np.where((actions >= 0)[:, None], softmax(logits), np.nan)
        return StepBatch(bars.timestamps, actions, probabilities, filled, held, units, equity, profits,
                         table[1:], table[0], normalized, tuple(rejected))

    # ---------------------------------------------------------------- what a decision means
    @property
    def pending(self) -> int:
        """The action decided at the last bar, to be filled at the next bar's open (-1: none)."""
        return int(self.account.pending[0])

    @property
    def equity(self) -> float:
        return float(self.account.account[0, 0])

    # ---------------------------------------------------------------- persistence
    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly here, as JSON (every float reads back to its bits)."""
        return {
            "features": {"state": self.features.state.tolist()},
            "recent": self.recent.astype(np.float64).tolist(),
            "previous": None if self.previous is None else [int(self.previous[0]), *self.previous[1:].tolist()],
            "policy": {name: values.astype(np.float64).tolist() for name, values in self.policy.state_arrays().items()},
            "account": self.account.account.tolist(), "held": int(self.account.held[0]),
            "alive": bool(self.account.alive[0]), "pending": int(self.account.pending[0]),
            "bars_seen": self.bars_seen, "decisions": self.decisions, "start": self.start,
        }

    def restore(self, raw: dict[str, Any]) -> None:
        """Continue from :meth:`state`'s output (of a stream of the same bundle)."""
        if raw["features"] is not None:  # None: nothing streamed yet
            self.features.state = np.array(raw["features"]["state"], dtype=np.float64)
        columns = len(self.bundle.description.feature_columns)
        self.recent = np.array(raw["recent"], dtype=np.float32).reshape(-1, columns)
        previous = raw["previous"]
        self.previous = None if previous is None else np.array(previous, dtype=np.float64)
        if previous is not None:
            self.previous[0] = float(previous[0])
        for name, values in self.policy.state_arrays().items():
            values[...] = np.array(raw["policy"][name], dtype=np.float32).reshape(values.shape)
        self.account.account[...] = np.array(raw["account"])
        self.account.held[0], self.account.alive[0] = raw["held"], raw["alive"]
        self.account.pending[0] = raw["pending"]
        self.bars_seen, self.decisions, self.start = raw["bars_seen"], raw["decisions"], raw["start"]


__all__ = ["ACTION_NAMES", "BarOrderError", "DecisionStream", "IMPOSSIBLE_LOG_JUMP", "LivePolicy", "StepBatch",
           "UnsupportedBundleError", "bar_time", "conversion_method", "softmax"]
