"""The spread a fill pays: a file without a spread column is refused before anything trains, unless
``--spread_points`` says what to charge."""

from __future__ import annotations

import pytest
from conftest import SAMPLE_CSV, without_spread

from rltrader.config import load_config
from rltrader.errors import DataError
from rltrader.features.preparation import preprocess


def test_a_file_without_spread_is_refused_at_preprocessing_and_spread_points_lets_it_through(tmp_path):
    bars = without_spread(tmp_path / "XAUUSD_M15.csv")
    config = load_config().with_overrides({"cache.dir": str(tmp_path / "cache")})
    with pytest.raises(DataError, match=r"no spread column, so every trade would be free; pass --spread_points N"):
        preprocess(bars, config)
    assert not (tmp_path / "cache").exists()
    fixed = config.with_overrides({"costs.spread_points": 20.0})
    prepared = preprocess(bars, fixed)
    from rltrader.display.data_report import data_report_text
    from rltrader.env import MarketData

    assert "spread charged  fixed 20 points x the point from price digits (costs.spread_points)" in \
        data_report_text(prepared, fixed)
    market = MarketData.from_prepared(prepared, fixed, bars)
    assert market.spread_source == "fixed 20 points x 0.01"
    with pytest.raises(DataError, match="--spread_points"):  # the features are cached; the check is not skipped
        preprocess(bars, config)


@pytest.mark.parametrize("command", ["train", "preprocess", "evaluate"])
def test_spread_points_is_a_flag_of_every_command_that_trades(command, capsys):
    from rltrader.app.arguments import CONFIG_FIELDS, request_from_args
    from rltrader.app.cli import build_parser

    flags = {"evaluate": ["--model", "m.zip"]}.get(command, [])
    args = build_parser().parse_args([command, "--data_path", str(SAMPLE_CSV), "--spread_points", "25", *flags])
    config = (request_from_args(args) if command == "train" else request_from_args(args, CONFIG_FIELDS)).to_config()
    assert config.costs.spread_points == 25.0
