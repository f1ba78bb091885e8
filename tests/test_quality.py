"""The quality yardstick: known-answer markets, their oracle, Sharpe intervals, the null distribution,
trials, and one end-to-end check that training on a planted edge learns some of it."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from rltrader.app.cli import main
from rltrader.config import Config, load_config
from rltrader.data.synthetic import KnownAnswerMarket, oracle_actions, read_market, sidecar_path, write_market
from rltrader.env import MarketData, evaluation_config
from rltrader.env.trading_env import EpisodeBounds
from rltrader.evaluation.ledger import replay
from rltrader.evaluation.metrics import compute_metrics
from rltrader.evaluation.report import evaluate_actions
from rltrader.evaluation.significance import (
    deflated_sharpe,
    expected_maximum_sharpe,
    null_distribution,
    random_policies,
    sharpe_estimate,
)
from rltrader.records import CandidateEntry, Hyperparameters, IterationRecord
from rltrader.training.run_state import count_trials
from tests.conftest import cache_is_untouched

SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="module")
def time_of_day(tmp_path_factory):
    """A time-of-day known-answer market (12,000 M15 bars), preprocessed like any bar file."""
    from rltrader.features.preparation import preprocess

    root = tmp_path_factory.mktemp("synth")
    path = root / "time_of_day.csv"
    write_market(KnownAnswerMarket(kind="time_of_day", bars=12_000, seed=3), path)
    config = load_config().with_overrides({"cache.dir": str(root / "cache")})
    market = MarketData.from_prepared(preprocess(path, config), config)
    return path, config, market


def _bounds(market: MarketData, split: str, config: Config) -> EpisodeBounds:
    return EpisodeBounds.of(market, split, evaluation_config(config.env))


def _oracle(market: MarketData, split: str, config: Config) -> np.ndarray:
    bounds = _bounds(market, split, config)
    return oracle_actions(market.known_answer, market.timestamps, market.close, market.trade_cost, bounds.first,
                          bounds.last - bounds.first)


def test_a_known_answer_market_goes_through_the_normal_loader_and_knows_its_oracle(time_of_day):
    path, config, market = time_of_day
    assert market.known_answer is not None and market.known_answer.kind == "time_of_day"
    assert path.read_text().splitlines()[0] == "time,open,high,low,close,tick_volume,spread,real_volume"
    assert market.spread_source == "per-bar spread column"
    # same seed, same bytes; an edited file loses its oracle rather than being scored against the wrong one
    again = write_market(KnownAnswerMarket(kind="time_of_day", bars=12_000, seed=3), path.with_name("again.csv"))
    assert again.sha256 == market.known_answer.sha256
    assert read_market(path, data_sha256="0" * 64) is None
    # a copy elsewhere hits the cache entry built from the first path, yet finds its own oracle
    from rltrader.features.preparation import preprocess

    copy = path.with_name("copy.csv")
    copy.write_bytes(path.read_bytes())
    sidecar_path(copy).write_bytes(sidecar_path(path).read_bytes())
    prepared = preprocess(copy, config)
    assert prepared.cache_hit and prepared.metadata["source"]["path"] != str(copy)
    sidecar_path(path).rename(path.with_name("elsewhere.json"))
    try:
        assert MarketData.from_prepared(prepared, config, copy).known_answer == market.known_answer
        assert MarketData.from_prepared(prepared, config).known_answer is None  # the first path lost its oracle
    finally:
        path.with_name("elsewhere.json").rename(sidecar_path(path))


@pytest.mark.parametrize("split", SPLITS)
def test_the_oracle_scores_edge_captured_one_and_ranks_top_of_the_null(time_of_day, split):
    _, config, market = time_of_day
    report = evaluate_actions(market, split, config.env, _oracle(market, split, config), seed=1)
    agent = report.metrics["agent"]
    assert agent["edge_captured"] == pytest.approx(1.0)
    assert report.metrics["oracle"]["total_return"] > 0.02  # the planted edge is there after costs
    assert agent["null_percentile"] > 99 and agent["psr_vs_zero"] > 0.99


def test_half_random_decisions_capture_part_of_the_edge_and_random_or_flat_none(time_of_day):
    _, config, market = time_of_day
    oracle = _oracle(market, "test", config)
    rng = np.random.default_rng(5)
    half = np.where(rng.random(len(oracle)) < 0.5, rng.integers(0, 3, len(oracle)), oracle)
    partly = evaluate_actions(market, "test", config.env, half, seed=1).metrics["agent"]
    assert 0.15 < partly["edge_captured"] < 0.85
    for actions in (np.full(len(oracle), 1), rng.integers(0, 3, len(oracle))):  # flat, random
        agent = evaluate_actions(market, "test", config.env, actions, seed=1).metrics["agent"]
        assert abs(agent["edge_captured"]) < 0.15
        if agent["sharpe"] is not None:  # flat has no Sharpe, and so no rank
            assert 2.5 < agent["null_percentile"] < 97.5


def test_the_null_distribution_is_the_ledger_run_a_thousand_times(time_of_day):
    _, config, market = time_of_day
    bounds = _bounds(market, "validation", config)
    steps = bounds.last - bounds.first
    null = null_distribution(market, bounds.first, steps, 10_000.0, 0.1, policies=1_000, seed=9)
    policies = random_policies(steps, 0.1, 1_000, 9)
    assert len(null.sharpe) == 1_000 and abs(np.mean(policies[:, 1:] != policies[:, :-1]) - 0.1) < 0.005
    for index in (0, 17, 999):
        metrics = compute_metrics(replay(market, bounds.first, policies[index], 10_000.0), market, bounds.first)
        assert null.sharpe[index] == pytest.approx(metrics["sharpe"], rel=1e-9)
        assert null.total_return[index] == pytest.approx(metrics["total_return"], rel=1e-9)


@pytest.mark.parametrize("turnover", [0.0, 0.02, 0.3, 1.0])
def test_random_policies_are_the_same_in_any_block_and_switch_at_the_agents_rate(turnover):
    whole = random_policies(5_000, turnover, 40, 3)
    assert np.array_equal(random_policies(5_000, turnover, 10, 3, first_policy=25), whole[25:35])
    assert not np.array_equal(random_policies(5_000, turnover, 40, 4), whole)  # another seed, another stream
    switches = np.mean(whole[:, 1:] != whole[:, :-1])
    assert switches == pytest.approx(turnover, abs=0.01)
    assert set(np.unique(whole[:, 0])) <= {0, 1, 2}


def _newey_west_sharpe_error(returns: np.ndarray, periods: float) -> float:
    """Lo's GMM standard error written out independently: explicit sums over every lag."""
    n = len(returns)
    mu, var = returns.mean(), returns.var()
    u = np.stack([returns - mu, (returns - mu) ** 2 - var], axis=1)
    u = u - u.mean(axis=0)
    lags = math.floor(4 * (n / 100) ** (2 / 9))
    s = sum(np.outer(u[t], u[t]) for t in range(n)) / n
    for lag in range(1, lags + 1):
        gamma = sum(np.outer(u[t], u[t - lag]) for t in range(lag, n)) / n
        s = s + (1 - lag / (lags + 1)) * (gamma + gamma.T)
    d = np.array([1 / math.sqrt(var), -mu / (2 * var**1.5)])
    return math.sqrt(d @ s @ d / n) * math.sqrt(periods)


def test_the_sharpe_interval_matches_an_independent_computation():
    returns = np.random.default_rng(2).standard_t(5, 600) * 0.001 + 0.0002
    estimate = sharpe_estimate(returns, 23_546.0)
    expected = _newey_west_sharpe_error(returns, 23_546.0)
    assert estimate.standard_error == pytest.approx(expected, rel=1e-9)
    assert estimate.sharpe == pytest.approx(returns.mean() / returns.std(ddof=1) * math.sqrt(23_546.0))
    assert estimate.low == pytest.approx(estimate.sharpe - 1.959964 * expected, rel=1e-6)
    # i.i.d. normal returns: close to the textbook sqrt((1 + SR^2 / 2) / T), annualized
    normal = np.random.default_rng(3).standard_normal(5_000) * 0.001 + 0.00005
    textbook = math.sqrt((1 + (normal.mean() / normal.std()) ** 2 / 2) / 5_000) * math.sqrt(252)
    assert sharpe_estimate(normal, 252).standard_error == pytest.approx(textbook, rel=0.1)


@pytest.mark.parametrize("phi", [0.0, 0.3])
def test_the_95_percent_interval_covers_the_true_sharpe_95_percent_of_the_time(phi):
    rng = np.random.default_rng(11)
    draws, length, mean = 400, 1_000, 0.05
    covered = 0
    for _ in range(draws):
        shocks = rng.standard_normal(length + 100)
        noise = np.empty_like(shocks)
        noise[0] = shocks[0]
        for t in range(1, len(shocks)):
            noise[t] = phi * noise[t - 1] + math.sqrt(1 - phi**2) * shocks[t]
        estimate = sharpe_estimate(mean + noise[100:], 1.0)  # unit variance: the true Sharpe is the mean
        covered += estimate.low <= mean <= estimate.high
    assert 0.93 <= covered / draws <= 0.97


def test_the_deflated_sharpe_discounts_the_best_of_many_looks():
    estimate = sharpe_estimate(np.random.default_rng(4).standard_normal(900) * 0.001 + 0.0001, 23_546.0)
    assert deflated_sharpe(estimate, 1) == pytest.approx(0.5 + 0.5 * math.erf(
        estimate.sharpe / estimate.standard_error / math.sqrt(2)))
    assert deflated_sharpe(estimate, 20) < deflated_sharpe(estimate, 2) < deflated_sharpe(estimate, 1)
    # the false strategy theorem's approximation against the simulated best of 20 pure-noise looks
    simulated = np.random.default_rng(6).standard_normal((20_000, 20)).max(axis=1).mean()
    assert expected_maximum_sharpe(20, 1.0) == pytest.approx(simulated, abs=0.05)


def _record(iteration: int, looks: int, candidates: int) -> IterationRecord:
    hyper = Hyperparameters(phase="explore", learning_rate=3e-4, n_epochs=10, ent_coef=0.01, clip_range=0.2)
    entries = [CandidateEntry(candidate=k, seed=k, peak_score=0.0, timesteps=1, wall_seconds=1.0, evaluations=looks)
               for k in range(candidates)] if candidates > 1 else None
    return IterationRecord(iteration=iteration, phase="explore", seed=0, budget_timesteps=1, timesteps=1,
                           timesteps_saved=0, early_stopped=False, warm_started=False, validation_score=0.0,
                           wall_seconds=1.0, timesteps_per_second=1.0, hyperparameters=hyper, evaluations=looks,
                           evaluation_seconds=0.0, validation_metrics=None, best_score_after=0.0, resumed_at=0,
                           performance_modes=[], validations=[], candidates=entries)


def test_ranks_read_as_ordinals():
    from rltrader.display.formatting import percentile

    assert [percentile(v) for v in (1, 22, 63.4, 11, 12, 13, 100, 99.6, None)] == [
        "1st", "22nd", "63rd", "11th", "12th", "13th", "100th", "100th", "n/a"]


def test_trials_count_every_look_of_every_candidate():
    assert count_trials([_record(0, 5, 3), _record(1, 4, 3)]) == 5 * 3 + 4 * 3
    assert count_trials([_record(0, 5, 1), _record(1, 2, 1)]) == 7


def test_short_spans_get_no_annualized_figures_long_ones_do(time_of_day):
    _, config, market = time_of_day
    short = evaluate_actions(market, "test", config.env, _oracle(market, "test", config), seed=1)
    long = evaluate_actions(market, "train", config.env, _oracle(market, "train", config), seed=1)
    assert short.metrics["agent"]["span_days"] < 90 and short.metrics["agent"]["cagr"] is None
    assert short.metrics["agent"]["calmar"] is None
    assert long.metrics["agent"]["span_days"] >= 90 and long.metrics["agent"]["cagr"] is not None


def test_synth_writes_a_market_and_refuses_bad_values_without_writing(tmp_path, capsys):
    out = tmp_path / "m.csv"
    assert main(["synth", "momentum", "--bars", "2000", "--phi", "0.2", "--seed", "4", "--out", str(out)]) == 0
    assert "2,000 15-minute bars of a momentum market" in capsys.readouterr().out
    described = json.loads(sidecar_path(out).read_text())
    assert described["phi"] == 0.2 and described["seed"] == 4 and len(out.read_text().splitlines()) == 2_001
    bad = tmp_path / "bad"
    assert main(["synth", "momentum", "--phi", "1.5", "--out", str(bad / "x.csv")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--phi" in error and not bad.exists()
    assert cache_is_untouched(tmp_path / "cache")


@pytest.mark.slow
def test_training_on_a_planted_edge_beats_flat_and_the_null_median(time_of_day, tmp_path):
    from rltrader.training.trainer import Trainer

    path, config, _ = time_of_day
    config = config.with_profile("smoke").with_overrides({"training.iterations": 2, "training.total_timesteps": 4096,
                                                          "training.min_timesteps": 2048})
    summary = Trainer(config, path, tmp_path / "run").run()
    test = summary.test.agent
    assert test["total_return"] > 0 and test["sharpe"] > test["null_median_sharpe"]  # flat returns 0
    assert summary.test.oracle is not None and test["edge_captured"] > 0
    state = json.loads((tmp_path / "run" / "run_state.json").read_text())
    looks = sum(record["evaluations"] for record in state["iterations"])
    assert summary.trials == state["trials"] == looks > 2
    assert summary.validation.agent["trials"] == looks and "deflated_sharpe" not in summary.test.agent
    report = (tmp_path / "run" / "report" / "report.md").read_text()
    assert f"the best of {looks} validation looks" in report and "| Oracle |" in report
    assert "95% interval" in report and "random policies" in report


def test_a_regime_change_market_swaps_its_blocks_at_the_change_and_its_oracle_follows(tmp_path):
    from rltrader.data.synthetic import block_drift, change_time, expected_next_return, generate

    market = KnownAnswerMarket(kind="regime_change", bars=4_000, seed=2, bar_minutes=60, change_at=0.5)
    bars = generate(market)
    times = (bars["time"].to_numpy() * 1_000_000_000).astype("datetime64[ns]")
    change = change_time(market)
    assert np.datetime64(change) == times[2_000]  # half of the bars, as change_at says
    plain = block_drift(times, market.model_copy(update={"kind": "time_of_day"}))
    drift = block_drift(times, market)
    before = times < np.datetime64(change)
    assert (drift[before] == plain[before]).all() and (drift[~before] == -plain[~before]).all()
    expected = expected_next_return(market, times, bars["close"].to_numpy())
    assert (expected[:-1] == drift[1:]).all()  # the oracle knows the new regime from its first bar
    # the planted edge is there: each regime's block returns have the drift's sign on average
    log_returns = np.diff(np.log(bars["close"].to_numpy()), prepend=np.log(market.start_price))
    for part in (before, ~before):
        assert np.mean(log_returns[part] * np.sign(drift[part])) > 0.5 * market.drift
    assert main(["synth", "regime_change", "--bars", "2000", "--out", str(tmp_path / "r.csv")]) == 0
    assert read_market(tmp_path / "r.csv").kind == "regime_change"


@pytest.mark.parametrize("kind", ["volume", "volatility_regime", "day_of_week", "session_trend", "momentum",
                                  "mean_reversion", "time_of_day", "bar_sequence", "delayed_volume"])
def test_each_markets_oracle_expects_what_the_next_bar_then_does_on_average(kind):
    """The oracle's expected next return is the planted one: regressed on it, the realized next log return has a
    slope near 1 (the generator and the oracle agree), and where it plants no edge the next bars average zero."""
    from rltrader.data.synthetic import expected_next_return, generate

    market = KnownAnswerMarket(kind=kind, bars=60_000, seed=4)
    bars = generate(market)
    times = (bars["time"].to_numpy() * 1_000_000_000).astype("datetime64[ns]")
    close = bars["close"].to_numpy()
    expected = expected_next_return(market, times, close)[:-1]
    realized = np.diff(np.log(close))
    planted = np.isfinite(expected) & (expected != 0)
    slope = np.sum(expected[planted] * realized[planted]) / np.sum(expected[planted] ** 2)
    assert 0.7 < slope < 1.3, slope
    if kind in ("volume", "volatility_regime", "delayed_volume"):
        unplanted = ~np.isfinite(expected)
        assert 0.2 < unplanted.mean() < 0.95  # part of the bars carry no edge, and the oracle stays flat there
        assert abs(realized[unplanted].mean()) < 3 * realized[unplanted].std() / np.sqrt(unplanted.sum())


def test_volume_surges_are_in_the_file_and_session_trend_needs_the_clock_and_the_move_together():
    from rltrader.data.synthetic import generate

    volume = generate(KnownAnswerMarket(kind="volume", bars=20_000, seed=1))
    usual = volume["tick_volume"].median()
    assert 0.05 < (volume["tick_volume"] > 1.6 * usual).mean() < 0.15  # about surge_share of the bars
    bars = generate(KnownAnswerMarket(kind="session_trend", bars=60_000, seed=1))
    log_close = np.log(bars["close"].to_numpy())
    move, following = log_close[4:-1] - log_close[:-5], np.diff(log_close)[4:]
    hours = pd.to_datetime(bars["time"].to_numpy()[5:], unit="s").hour
    inside = (hours >= 7) & (hours < 19)
    along = np.sign(move) * following
    assert along[inside].mean() > 0.5 * 0.00015 and along[~inside].mean() < -0.5 * 0.00015
    assert abs(along.mean()) < 0.3 * 0.00015  # the move alone, clock unknown: the two sessions nearly cancel


def test_synth_writes_every_kind_with_its_parameters_as_flags(tmp_path):
    for kind in ("volume", "volatility_regime", "day_of_week", "session_trend", "bar_sequence", "delayed_volume"):
        out = tmp_path / f"{kind}.csv"
        assert main(["synth", kind, "--bars", "2000", "--seed", "3", "--out", str(out)]) == 0
        assert read_market(out).kind == kind
    assert main(["synth", "session_trend", "--session_start", "9", "--session_end", "17", "--bars", "2000",
                 "--out", str(tmp_path / "s.csv")]) == 0
    assert read_market(tmp_path / "s.csv").session_start == 9


def _single_bar_predictability(kind: str, tmp_path, move_patterns: int = 0) -> tuple[dict[str, float], float]:
    return _single_bar_predictability_of(KnownAnswerMarket(kind=kind, bars=60_000, seed=4), tmp_path, move_patterns)


def _single_bar_predictability_of(market: KnownAnswerMarket, tmp_path,
                                  move_patterns: int = 0) -> tuple[dict[str, float], float]:
    """How much of the oracle's edge one bar's features show, out of sample: for each built-in feature (the
    bar's own: the move patterns, which read the last few bars' moves, only when ``move_patterns`` asks), the
    next bar's mean log return per decile of the feature (fitted on the first half of 60,000 bars) is the
    prediction on the second half; its correlation with the realized next return, as a fraction of the oracle's
    expected return's correlation with it. Also all features together in one linear regression."""
    from rltrader.data.loader import load_bars
    from rltrader.data.synthetic import expected_next_return
    from rltrader.features.pipeline import compute_features

    path = tmp_path / f"{market.kind}_{market.sequence_bars}.csv"
    market = write_market(market, path)
    bars = load_bars(path).bars
    features = compute_features(bars, load_config().features.model_copy(update={"move_patterns": move_patterns}))
    values = features.values.to_numpy()[features.warmup:-1]
    close = bars["close"].to_numpy()
    realized = np.diff(np.log(close))[features.warmup:]
    expected = np.nan_to_num(expected_next_return(market, bars.index.to_numpy(), close)[features.warmup:-1])
    half = len(realized) // 2
    oracle = np.corrcoef(expected[half:], realized[half:])[0, 1]
    shown = {}
    for column, name in enumerate(features.values.columns):
        feature = values[:, column]
        edges = np.unique(np.quantile(feature[:half], np.linspace(0, 1, 11)[1:-1]))
        bins = np.searchsorted(edges, feature)
        means = np.array([realized[:half][bins[:half] == b].mean() if (bins[:half] == b).any() else 0.0
                          for b in range(len(edges) + 1)])
        shown[name] = np.corrcoef(means[bins[half:]], realized[half:])[0, 1] / oracle
    fitted = np.linalg.lstsq(np.c_[values[:half], np.ones(half)], realized[:half], rcond=None)[0]
    linear = np.corrcoef(np.c_[values[half:], np.ones(len(realized) - half)] @ fitted, realized[half:])[0, 1] / oracle
    return shown, linear


@pytest.mark.parametrize("kind", ["bar_sequence", "delayed_volume"])
def test_a_memory_markets_edge_is_in_no_single_bars_features(kind, tmp_path):
    """The memory kinds: no feature of one bar (return over 1..64 bars, volatility, RSI, MACD, Bollinger, volume
    z-score, signed volume, the clock) nor all of them in a linear model shows more than a quarter of the edge the
    oracle, which remembers the last bars, has; the same measure finds most of it in the volume kind's signed
    volume (it can see a single bar's edge)."""
    shown, linear = _single_bar_predictability(kind, tmp_path)
    assert max(shown.values()) < 0.25 and linear < 0.25, (shown, linear)
    control, control_linear = _single_bar_predictability("volume", tmp_path)
    assert control["signed_volume"] > 0.5 and control_linear > 0.5


def test_the_default_move_patterns_make_a_sequence_edge_a_straight_line(tmp_path):
    """With the default features (the last 4 moves' patterns among them), one linear model shows most of the
    bar-sequence edge, which the bar's own features do not show (above): the product of three signs is a
    weighted sum of the pattern columns. A sequence edge longer than the patterns stays out of sight."""
    depth = load_config().features.move_patterns
    shown, linear = _single_bar_predictability("bar_sequence", tmp_path, move_patterns=depth)
    assert depth == 4 and linear > 0.8, (shown, linear)
    _, five_bars = _single_bar_predictability_of(
        KnownAnswerMarket(kind="bar_sequence", bars=60_000, seed=4, sequence_bars=5), tmp_path, depth)
    assert five_bars < 0.25, five_bars


@pytest.mark.parametrize("breaks", [[0.5], [0.35, 0.7]], ids=["one-break", "two-breaks"])
@pytest.mark.parametrize("kind", ["momentum", "time_of_day", "volume"])
def test_an_edge_with_breaks_flips_at_each_break_and_its_oracle_follows(kind, breaks):
    """Each regime has the planted edge with the sign its breaks give, the oracle knows the new regime from its first
    bar (its expected next return regressed on what the next bar does: a slope near 1 in every regime), and an
    oracle that missed the breaks (the same market without them) has the sign wrong after the first."""
    from rltrader.data.synthetic import break_times, edge_sign, expected_next_return, generate

    market = KnownAnswerMarket(kind=kind, bars=60_000, seed=4, breaks=breaks)
    bars = generate(market)
    times = (bars["time"].to_numpy() * 1_000_000_000).astype("datetime64[ns]")
    assert [np.datetime64(stamp) for stamp in break_times(market)] == [times[int(60_000 * share)] for share in breaks]
    close = bars["close"].to_numpy()
    expected = expected_next_return(market, times, close)[:-1]
    stale = expected_next_return(market.model_copy(update={"breaks": []}), times, close)[:-1]
    realized = np.diff(np.log(close))
    regime = edge_sign(market, times[1:])  # the regime of the bar whose return is realized
    edges = [0, *(int(60_000 * share) for share in breaks), 60_000 - 1]
    for number, (start, stop) in enumerate(zip(edges, edges[1:], strict=False)):
        part = slice(start + 1, stop - 1)  # bars whose next bar is in the same regime
        assert (regime[part] == (1.0 if number % 2 == 0 else -1.0)).all()
        planted = np.isfinite(expected[part]) & (expected[part] != 0)
        slope = np.sum(expected[part][planted] * realized[part][planted]) / np.sum(expected[part][planted] ** 2)
        assert 0.7 < slope < 1.3, (number, slope)
        if number % 2 == 1:  # the old edge's sign, after a break: it loses
            old = np.sum(stale[part][planted] * realized[part][planted]) / np.sum(stale[part][planted] ** 2)
            assert old < -0.7, (number, old)


def test_synth_writes_breaks_and_refuses_them_where_they_mean_nothing(tmp_path, capsys):
    out = tmp_path / "v.csv"
    assert main(["synth", "volume", "--bars", "4000", "--breaks", "0.4", "0.7", "--out", str(out)]) == 0
    assert read_market(out).breaks == [0.4, 0.7] and "edge flips   at" in capsys.readouterr().out
    for bad in (["mean_reversion", "--breaks", "0.5"], ["momentum", "--breaks", "0.7", "0.4"],
                ["time_of_day", "--breaks", "1.5"]):
        assert main(["synth", *bad, "--bars", "4000", "--out", str(tmp_path / "bad.csv")]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and error.startswith("rltrader: error: --breaks:"), error
    assert not (tmp_path / "bad.csv").exists()
