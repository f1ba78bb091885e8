"""Position sizing and the account currency: money figures that mean the same on any instrument."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

from rltrader.app.cli import main
from rltrader.config import Config
from rltrader.env import MarketData, TradingEnv, VecTradingEnv
from rltrader.env.account import account_terms
from rltrader.env.conversion import known_price
from rltrader.env.instrument import parse_pair, resolve_instrument
from rltrader.env.market import ACTION_SIGNS, CLOSE_RATE, price_moves, step_profit
from rltrader.errors import UserInputError
from rltrader.evaluation.ledger import replay
from rltrader.evaluation.report import evaluate_actions

SHORT, FLAT, LONG = 0, 1, 2
SPLITS = ("train", "validation", "test")


def random_walk_bars(start: float, n: int, seed: int, spread: float, sd: float = 0.002,
                     start_time: str = "2024-01-01") -> pd.DataFrame:
    """Hourly bars of a geometric random walk with small open gaps, a constant spread column and one feature."""
    rng = np.random.default_rng(seed)
    close = start * np.exp(np.cumsum(rng.normal(0.0, sd, n)))
    open_ = np.concatenate(([start], close[:-1])) * np.exp(rng.normal(0.0, sd / 10, n))
    return pd.DataFrame({"timestamp": pd.date_range(start_time, periods=n, freq="h"), "open": open_, "close": close,
                         "spread": np.full(n, spread), "f": np.zeros(n, np.float32)})


def market_of(frame: pd.DataFrame, config: Config, name: str) -> MarketData:
    """Every split is the whole series; ``name`` is the bar file's name the instrument is read from."""
    rows = {split: (0, len(frame)) for split in SPLITS}
    return MarketData.from_frame(frame, ["f"], rows, 8760.0, config, source=name)


def sized(sizing: str = "equity_fraction", **more) -> Config:
    settings = {"env.sizing": sizing, "env.initial_balance": 10_000.0, "env.window_size": 1,
                "env.max_drawdown": None, "env.episode_length": None, "env.random_start": False, **more}
    return Config().with_overrides(settings)


def buy_and_hold(market: MarketData, balance: float = 10_000.0):
    first, last = 0, len(market.close) - 1
    return replay(market, first, np.full(last - first, LONG), balance)


def test_symbols_are_read_from_mt5_file_names():
    assert parse_pair("XAUUSDm_15min.csv") == ("XAU", "USD")
    assert parse_pair("data/USDJPY_H1_2016_2026.csv") == ("USD", "JPY")
    assert parse_pair("eurusd.csv") == ("EUR", "USD")
    assert parse_pair("momentum.csv") is None and parse_pair("US500_H1.csv") is None
    config = Config().instrument
    assert resolve_instrument(config, "XAUUSDm_15min.csv").contract_size == 100
    assert resolve_instrument(config, "GBPJPY_H1.csv").contract_size == 100_000
    unknown = resolve_instrument(config, "momentum.csv")
    assert unknown.quote is None and "set instrument.quote" in unknown.source


@pytest.mark.parametrize(("name", "start", "spread"), [
    ("XAUUSD_H1.csv", 2000.0, 0.2), ("USDJPY_H1.csv", 150.0, 0.012), ("EURUSD_H1.csv", 1.08, 0.00012)])
def test_buy_and_hold_returns_the_price_return_in_the_account_currency(name, start, spread):
    """With a full position of 1 x equity, holding earns the instrument's price return, less its costs."""
    market = market_of(random_walk_bars(start, 3000, seed=len(name), spread=spread), sized(), name)
    ledger = buy_and_hold(market)
    entry, last = market.open[1], market.close[-1]
    # a dollar account long USDJPY owns dollars bought with yen: worth 1 - p0 / p1 of its notional at p1
    price_return = 1.0 - entry / last if name.startswith("USD") else last / entry - 1.0
    total_return = ledger.equity[-1] / ledger.equity[0] - 1.0
    costs = ledger.trade_costs.sum() / ledger.equity[0]
    assert abs(price_return) > 0.01  # the walk moved: the test can tell returns apart
    assert total_return == pytest.approx(price_return - costs, abs=1e-12)
    # half a spread per unit paid at the one fill, in yen converted at that bar's close for USDJPY
    units, rate = (10_000.0, 1.0 / market.close[1]) if name.startswith("USD") else (10_000.0 / entry, 1.0)
    assert costs == pytest.approx(0.5 * spread * units * rate / 10_000.0, rel=1e-9)


def test_buy_and_hold_on_the_shipped_gold_bars_returns_gold_s_price_return(prepared_market, prepared_sample):
    _, session_config = prepared_sample
    assert prepared_market.terms.sizing == "equity_fraction" and prepared_market.terms.instrument.symbol == "XAUUSD"
    first, last = prepared_market.rows("test")
    ledger = replay(prepared_market, first, np.full(last - 1 - first, LONG), session_config.env.initial_balance)
    entry, close = prepared_market.open[first + 1], prepared_market.close[last - 1]
    costs = ledger.trade_costs.sum() / ledger.equity[0]
    assert ledger.equity[-1] / ledger.equity[0] - 1.0 == pytest.approx(close / entry - 1.0 - costs, abs=1e-12)
    assert ledger.positions[-1] == pytest.approx(session_config.env.initial_balance / entry)  # ounces bought


def test_a_usdjpy_long_of_one_lot_earns_lots_x_contract_x_move_over_the_close():
    config = sized("lots", **{"env.lots": 1.0})
    frame = random_walk_bars(150.0, 50, seed=3, spread=0.0)
    market = market_of(frame, config, "USDJPY_H1.csv")
    ledger = replay(market, 0, np.full(40, LONG), 10_000.0)
    p0 = market.open[1]
    for mark in (1, 10, 40):  # held 1, 10 and 40 bars: the profit is always valued at the current close
        p1 = market.close[mark]
        assert ledger.equity[mark] - 10_000.0 == pytest.approx(1.0 * 100_000 * (p1 - p0) / p1, rel=1e-9)
    assert ledger.positions[1] == 100_000


def test_equity_fraction_sizes_each_new_position_from_equity_at_the_fill():
    config = sized(**{"env.equity_fraction": 0.5})
    market = market_of(random_walk_bars(2000.0, 20, seed=4, spread=0.0), config, "XAUUSD_H1.csv")
    ledger = replay(market, 0, np.array([LONG, LONG, SHORT, SHORT, FLAT, LONG]), 10_000.0)
    units = ledger.positions
    assert units[1] == pytest.approx(0.5 * 10_000.0 / market.open[1])  # sized at the first fill
    assert units[2] == units[1]  # held: the units do not change with equity
    assert units[3] == pytest.approx(-0.5 * ledger.equity[2] / market.open[3])  # re-sized at the reversal
    assert units[5] == 0.0 and units[6] == pytest.approx(0.5 * ledger.equity[5] / market.open[6])


def test_units_sizing_reproduces_the_unconverted_arithmetic_bit_for_bit(prepared_market, prepared_sample):
    """rltrader 0.1's step profit, written out here independently, replayed over the shipped sample."""
    _, session_config = prepared_sample
    config = session_config.with_overrides({"env.sizing": "units", "env.max_position_size": 1.0})
    market = MarketData.from_prepared(prepared_sample[0], config)
    first, last = market.rows("validation")
    actions = np.random.default_rng(0).integers(0, 3, last - 1 - first)
    ledger = replay(market, first, actions, 10_000.0)

    gap, body = price_moves(market.open, market.close)
    fills = np.arange(first + 1, first + len(actions) + 1)
    held = ACTION_SIGNS[np.concatenate(([FLAT], actions[:-1]))]
    target = ACTION_SIGNS[actions]
    pnl = held * gap[fills] + target * body[fills] - np.abs(target - held) * market.trade_cost[fills]
    assert np.array_equal(ledger.step_pnl, pnl)
    assert np.array_equal(ledger.equity, np.cumsum(np.concatenate(([10_000.0], pnl))))
    assert market.terms.conversion.description.startswith("none: XAUUSD is quoted in USD")


def test_vectorized_env_equals_trading_envs_bit_for_bit_with_conversion():
    """USDJPY in a dollar account, sized from equity: the compiled step still equals N TradingEnvs."""
    config = sized(**{"env.max_drawdown": 0.01, "env.episode_length": 30, "env.random_start": True,
                      "costs.commission_per_unit": 0.00001})
    market = market_of(random_walk_bars(150.0, 600, seed=5, spread=0.01), config, "USDJPY_H1.csv")
    assert market.terms.conversion.method == "own_inverse"
    single = DummyVecEnv([lambda: TradingEnv(market, "train", config.env) for _ in range(4)])
    vectorized = VecTradingEnv(market, "train", config.env, num_envs=4)
    single.seed(11)
    vectorized.seed(11)
    assert np.array_equal(single.reset(), vectorized.reset())
    rng = np.random.default_rng(1)
    for _ in range(300):
        actions = rng.integers(0, 3, 4)
        obs_a, rewards_a, dones_a, _ = single.step(actions)
        obs_b, rewards_b, dones_b, _ = vectorized.step(actions)
        assert np.array_equal(obs_a, obs_b) and np.array_equal(rewards_a, rewards_b)
        assert np.array_equal(dones_a, dones_b)
    assert vectorized.get_attr("equity") == single.get_attr("equity")
    assert vectorized.get_attr("position") == single.get_attr("position")


def test_compiled_steps_follow_the_reference_step_profit():
    """Every step of a converted, equity-sized ledger is ``step_profit`` of its units, entry and rows."""
    config = sized(**{"env.equity_fraction": 2.0, "costs.swap_long": 0.3, "costs.swap_short": -0.1})
    market = market_of(random_walk_bars(150.0, 300, seed=12, spread=0.02), config, "USDJPY_H1.csv")
    actions = np.random.default_rng(3).integers(0, 3, 250)
    ledger = replay(market, 0, actions, 10_000.0)
    entry, expected = 0.0, []
    for i, (held, target) in enumerate(zip(ledger.positions[:-1], ledger.positions[1:], strict=True)):
        t = i + 1
        expected.append(step_profit(held, target, entry, market.step_table[t], market.step_table[t - 1]))
        if actions[i] != (FLAT if i == 0 else actions[i - 1]):  # a new position fills at this open
            entry = market.open[t]
    assert np.array_equal(ledger.step_pnl, expected)
    assert np.any(ledger.swap_costs != 0) and np.any(np.diff(market.step_table[:, CLOSE_RATE]) != 0)


def test_the_ledger_replays_what_the_environment_earned_with_conversion():
    config = sized()
    market = market_of(random_walk_bars(150.0, 400, seed=6, spread=0.01), config, "USDJPY_H1.csv")
    env = TradingEnv(market, "train", config.env)
    env.reset(seed=0)
    actions = np.random.default_rng(2).integers(0, 3, 200)
    equity = []
    for action in actions:
        env.step(action)
        equity.append(env.equity)
    assert np.array_equal(replay(market, 0, actions, 10_000.0).equity[1:], equity)


def test_a_cross_converts_through_the_conversion_file(tmp_path):
    """GBPJPY in a dollar account: yen profits at 1 / USDJPY, read as of each bar's close."""
    usdjpy = random_walk_bars(150.0, 200, seed=7, spread=0.01)
    conversion = tmp_path / "USDJPY_H1.csv"
    usdjpy.rename(columns={"timestamp": "time"}).assign(high=lambda f: f[["open", "close"]].max(axis=1) + 0.01,
                                                         low=lambda f: f[["open", "close"]].min(axis=1) - 0.01
                                                         )[["time", "open", "high", "low", "close"]].to_csv(
        conversion, index=False)
    config = sized("lots", **{"env.lots": 1.0, "account.conversion_path": str(conversion)})
    market = market_of(random_walk_bars(190.0, 150, seed=8, spread=0.0), config, "GBPJPY_H1.csv")
    assert "1 / USDJPY from USDJPY_H1.csv" in market.terms.conversion.description
    written = pd.read_csv(conversion)  # as the loader reads it back (the CSV keeps 6 decimals)
    ledger = replay(market, 0, np.full(20, LONG), 10_000.0)
    p0, p1 = market.open[1], market.close[20]
    # the bar stamped 20:00 closes at 21:00, which is when USDJPY's 20:00 bar closes too
    rate = 1.0 / written["close"].to_numpy()[20]
    assert ledger.equity[20] - 10_000.0 == pytest.approx(100_000 * (p1 - p0) * rate, rel=1e-9)


def test_known_price_never_looks_ahead():
    stamps = pd.date_range("2024-01-01", periods=4, freq="D").to_numpy()
    opens, closes = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 2.5, 3.5, 4.5])
    day = np.timedelta64(1, "D")
    times = stamps[:2] + np.array([np.timedelta64(0, "h"), np.timedelta64(12, "h")])  # day 0 00:00, day 1 12:00
    # at a daily bar's open only its open is known; half-way through day 1, day 0's close is older than day 1's open
    assert known_price(stamps, opens, closes, day, times).tolist() == [1.0, 2.0]
    # at day 0's close (just before day 1 opens) its close is the latest; at day 1's open, that open is
    assert known_price(stamps, opens, closes, day, stamps[:1] + day, closing=True).tolist() == [1.5]
    assert known_price(stamps, opens, closes, day, stamps[:1] + day).tolist() == [2.0]


def test_a_cross_without_a_conversion_file_is_one_line_and_writes_nothing(tmp_path, capsys, sample_csv):
    bars = tmp_path / "GBPJPY_H1.csv"
    bars.write_bytes(sample_csv.read_bytes())  # any bars: the name says GBPJPY
    with pytest.raises(UserInputError, match=r"GBPJPY is quoted in JPY and the account is in USD: give "
                                             r"--conversion_path .* USDJPY or JPYUSD"):
        account_terms(sized(), bars)
    code = main(["preprocess", "--data_path", str(bars), "--cache_dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--conversion_path" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "cache").exists()
    wrong = tmp_path / "EURUSD_H1.csv"
    wrong.write_bytes(sample_csv.read_bytes())
    code = main(["preprocess", "--data_path", str(bars), "--conversion_path", str(wrong), "--cache_dir",
                 str(tmp_path / "cache")])
    assert code == 2 and "its name says EURUSD" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


def test_reports_state_sizing_contract_currency_and_conversion():
    config = sized("lots", **{"env.lots": 0.5})
    market = market_of(random_walk_bars(150.0, 300, seed=9, spread=0.01), config, "USDJPY_H1.csv")
    report = evaluate_actions(market, "test", config.env, np.full(298, LONG), seed=0)
    account = report.info["account"]
    assert account["currency"] == "USD" and account["sizing"] == "lots" and account["size"] == 50_000
    assert account["instrument"] == {"symbol": "USDJPY", "base": "USD", "quote": "JPY", "contract_size": 100_000.0,
                                     "source": "file name USDJPY_H1.csv"}
    assert "1 / USDJPY's own price" in account["conversion"]
    from rltrader.display.tables import evaluation_text

    text = evaluation_text(report)
    assert "Account USD 10,000 trading USDJPY (USD/JPY, 100,000 units per lot)" in text
    assert "0.5 lots x 100,000 units" in text
