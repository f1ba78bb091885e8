"""Features are causal, splits chronological with gaps, normalization fitted on train only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rltrader.config import Config, FeatureConfig
from rltrader.data import LoadedBars
from rltrader.features import compute_features
from rltrader.features.preparation import build_features_frame, preprocess
from rltrader.features.splits import GAP_CODE


def _scramble_after(bars: pd.DataFrame, t: int, seed: int = 0) -> pd.DataFrame:
    """Replace every bar after position t with different but valid bars."""
    rng = np.random.default_rng(seed)
    changed = bars.copy()
    tail = changed.iloc[t + 1:]
    factor = rng.uniform(0.9, 1.1, size=len(tail))
    for column in ("open", "high", "low", "close", "spread"):
        changed.iloc[t + 1:, changed.columns.get_loc(column)] = tail[column].to_numpy() * factor
    changed.iloc[t + 1:, changed.columns.get_loc("volume")] = rng.integers(1, 5000, size=len(tail))
    return changed


@pytest.mark.parametrize("t", [70, 1000, 3000, 5862])
def test_changing_bars_after_t_changes_no_feature_at_or_before_t(canonical_bars, t):
    config = FeatureConfig(calendar_harmonics=3, signed_volume=True)
    before = compute_features(canonical_bars, config).values
    after = compute_features(_scramble_after(canonical_bars, t, seed=t), config).values
    pd.testing.assert_frame_equal(before.iloc[: t + 1], after.iloc[: t + 1], check_exact=True)
    if t + 1 < len(canonical_bars):  # the scramble really changed something after t
        assert not before.iloc[t + 1:].equals(after.iloc[t + 1:])


def test_features_match_hand_calculations(canonical_bars):
    values = compute_features(canonical_bars, FeatureConfig()).values
    close = canonical_bars["close"].to_numpy()
    assert values["ret_4"].iloc[100] == pytest.approx(np.log(close[100] / close[96]), abs=1e-15)
    returns = np.diff(np.log(close))
    assert values["vol_16"].iloc[100] == pytest.approx(returns[84:100].std(), rel=1e-12)
    window = close[81:101]
    expected_bb = (close[100] - window.mean()) / (2.0 * window.std())
    assert values["bb_position"].iloc[100] == pytest.approx(expected_bb, rel=1e-12)
    stamp = canonical_bars.index[100]
    phase = (stamp.hour * 3600 + stamp.minute * 60) / 86400
    assert values["time_of_day_sin"].iloc[100] == pytest.approx(np.sin(2 * np.pi * phase))
    assert values["spread_rel"].iloc[100] == pytest.approx(canonical_bars["spread"].iloc[100] / close[100])
    assert values["rsi_14"].between(-1, 1).all()


def _loaded(bars: pd.DataFrame) -> LoadedBars:
    return LoadedBars(bars=bars, source=None, source_format="test", time_description="test",
                      bar_interval=pd.Timedelta(minutes=15))


def test_calendar_harmonics_turn_k_times_a_cycle_and_signed_volume_carries_the_moves_sign(canonical_bars):
    """Harmonic k of the time of day repeats every 24/k hours (a 4-hour block pattern, period 8 hours, is the
    third's); the first pair is the one every earlier model was trained on; signed volume is sign(move) x z."""
    plain = compute_features(canonical_bars, FeatureConfig(calendar_harmonics=1, signed_volume=False)).values
    richer = compute_features(canonical_bars, FeatureConfig(calendar_harmonics=3, signed_volume=True)).values
    pd.testing.assert_frame_equal(plain, richer[plain.columns], check_exact=True)  # nothing old changed
    extra = [column for column in richer.columns if column not in plain.columns]
    assert extra == ["signed_volume", "time_of_day_2_sin", "time_of_day_2_cos", "time_of_day_3_sin",
                     "time_of_day_3_cos", "day_of_week_2_sin", "day_of_week_2_cos", "day_of_week_3_sin",
                     "day_of_week_3_cos"]
    hours = canonical_bars.index.hour + canonical_bars.index.minute / 60
    eight_hours_apart = hours.to_numpy()[:, None] == ((hours.to_numpy() + 8) % 24)[None, :]
    first, later = np.nonzero(eight_hours_apart[:200, :200])
    np.testing.assert_allclose(richer["time_of_day_3_sin"].to_numpy()[first],
                               richer["time_of_day_3_sin"].to_numpy()[later], atol=1e-9)
    move = np.sign(canonical_bars["close"].diff()).to_numpy()
    np.testing.assert_array_equal(richer["signed_volume"].to_numpy(), move * richer["volume_z"].to_numpy())


def test_move_patterns_mark_the_sequence_the_last_moves_made(canonical_bars):
    """pattern_<code> is 1 on the bar whose last N moves (oldest first) went as the code says, 0 on every other
    bar; each bar makes exactly one pattern (half each for the two its unchanged close allows); the columns come
    after everything an earlier model was trained on, which they leave as it was."""
    plain = compute_features(canonical_bars, FeatureConfig(move_patterns=0)).values
    values = compute_features(canonical_bars, FeatureConfig(move_patterns=3)).values
    pd.testing.assert_frame_equal(plain, values.iloc[:, :len(plain.columns)], check_exact=True)
    patterns = list(values.columns[len(plain.columns):])
    assert patterns == [f"pattern_{a}{b}{c}" for a in "ud" for b in "ud" for c in "ud"]
    move = np.sign(canonical_bars["close"].diff()).to_numpy()
    for bar in range(3, len(canonical_bars)):
        signs = move[bar - 2:bar + 1]
        expected = {f"pattern_{''.join(code)}": np.prod([(1 + s) / 2 if c == "u" else (1 - s) / 2
                                                         for s, c in zip(signs, code, strict=True)])
                    for code in [(a, b, c) for a in "ud" for b in "ud" for c in "ud"]}
        assert values.iloc[bar][patterns].to_dict() == pytest.approx(expected, abs=0)
        if (signs != 0).all():
            made = "".join("u" if s > 0 else "d" for s in signs)
            assert values.iloc[bar][f"pattern_{made}"] == 1.0 and values.iloc[bar][patterns].sum() == 1.0
    assert values[patterns].iloc[3:].sum(axis=1).eq(1.0).all()
    assert (move[1:] == 0).any()  # the sample has unchanged closes, so the half-and-half case ran


def test_move_patterns_keep_a_fixed_scale_fitted_on_nothing(canonical_bars):
    """A 4-move pattern column normalizes to 0 or 2 (sqrt 4: the block weighs as its 4 signs, not as 16 z-scored
    features), whatever the training rows hold; the calendar's sin/cos pass through; the rest is z-scored."""
    config = Config()
    frame, stats, ranges, _ = build_features_frame(_loaded(canonical_bars), config)
    patterns = [column for column in stats.mean if column.startswith("pattern_")]
    assert len(patterns) == 16 and {stats.mean[c] for c in patterns} == {0.0} and {stats.std[c] for c in patterns} == {0.5}
    values = frame[patterns].to_numpy()
    assert set(np.unique(values)) <= {0.0, 1.0, 2.0} and (values == 2.0).any()  # 1.0: an unchanged close's half
    assert stats.std["time_of_day_sin"] == 1.0 and stats.mean["time_of_day_sin"] == 0.0
    assert stats.mean["ret_1"] != 0.0


def test_signed_volume_lags_are_the_bars_before(canonical_bars):
    values = compute_features(canonical_bars, FeatureConfig(signed_volume_lags=3)).values
    for back in (1, 2, 3):
        np.testing.assert_array_equal(values[f"signed_volume_{back}"].to_numpy()[back:],
                                      values["signed_volume"].to_numpy()[:-back])
    assert compute_features(canonical_bars, FeatureConfig(signed_volume_lags=3)).warmup == 64 + 3


def test_splits_are_chronological_with_window_gaps(canonical_bars):
    config = Config()
    frame, _, ranges, warmup = build_features_frame(_loaded(canonical_bars), config)
    codes = frame["split"].to_numpy()
    assert warmup == 64 and len(frame) == len(canonical_bars) - warmup
    (a0, a1), (b0, b1), (c0, c1) = ranges.train, ranges.validation, ranges.test
    assert a0 == 0 and c1 == len(frame)
    assert b0 - a1 >= config.env.window_size and c0 - b1 >= config.env.window_size
    assert (codes[a1:b0] == GAP_CODE).all() and (codes[b1:c0] == GAP_CODE).all()
    times = frame["timestamp"]
    assert times.iloc[a1 - 1] < times.iloc[b0] and times.iloc[b1 - 1] < times.iloc[c0]
    sizes = ranges.sizes()
    assert sizes["train"] / sum(sizes.values()) == pytest.approx(0.70, abs=0.01)


def test_normalization_uses_training_rows_only(canonical_bars):
    """Changing every bar after the training split leaves the statistics and the
    normalized training features exactly as they were."""
    config = Config()
    frame, stats, ranges, warmup = build_features_frame(_loaded(canonical_bars), config)
    train_end_bar = warmup + ranges.train[1] - 1
    changed, stats_changed, _, _ = build_features_frame(
        _loaded(_scramble_after(canonical_bars, train_end_bar)), config)
    assert stats_changed == stats
    columns = list(stats.mean)
    train = slice(*ranges.train)
    pd.testing.assert_frame_equal(frame[columns].iloc[train], changed[columns].iloc[train], check_exact=True)
    assert not frame[columns].iloc[ranges.test[0]:].equals(changed[columns].iloc[ranges.test[0]:])

    raw = compute_features(canonical_bars, config.features).values.iloc[warmup:].iloc[train]
    assert stats.mean["ret_1"] == pytest.approx(raw["ret_1"].mean(), rel=1e-12)
    assert stats.std["atr_14"] == pytest.approx(raw["atr_14"].std(ddof=0), rel=1e-12)
    normalized_train = frame["ret_1"].iloc[train]
    assert normalized_train.mean() == pytest.approx(0, abs=1e-3)
    assert stats.mean["time_of_day_sin"] == 0.0 and stats.std["time_of_day_sin"] == 1.0


def test_prepared_parquet_holds_prices_splits_and_float32_features(sample_csv, config):
    prepared = preprocess(sample_csv, config)
    frame = prepared.load()
    assert list(frame.columns[:8]) == ["timestamp", "open", "high", "low", "close", "volume", "spread", "split"]
    assert all(frame[c].dtype == np.float32 for c in prepared.feature_columns)
    assert frame[prepared.feature_columns].abs().max().max() <= config.features.clip
    start, end = prepared.split_rows("validation")
    assert (frame["split"].iloc[start:end] == 1).all()
    assert prepared.metadata["bars"]["bars_per_year"] == pytest.approx(23546, rel=0.01)


def test_files_without_volume_or_spread_get_no_such_features(raw_sample, tmp_path, config):
    times = pd.to_datetime(raw_sample["time"], unit="s").dt.strftime("%Y-%m-%d %H:%M")
    path = tmp_path / "ohlc.csv"
    raw_sample[["open", "high", "low", "close"]].assign(Date=times).to_csv(path, index=False)
    prepared = preprocess(path, config.with_overrides({"costs.spread_points": 20.0}))  # no spread column to charge
    assert "volume_z" not in prepared.feature_columns and "spread_rel" not in prepared.feature_columns
    assert {"volume", "spread"}.isdisjoint(prepared.load().columns)
    assert prepared.metadata["splits"]["warmup_bars_dropped"] == 64
