"""One definition per feature: a feature declared once computes the same in the batch pipeline, the live stream
and the ONNX graph, in the current ONNX Runtime and in 1.14.1 (MetaTrader 5's); the built-in declarations
compute what an independent pandas implementation of each indicator computes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from reference import indicators

from rltrader.config import FeatureConfig, load_config
from rltrader.data import load_bars
from rltrader.data.bar_arrays import bar_arrays
from rltrader.export.graph import GraphError, feature_graph
from rltrader.export.onnx_export import feature_graph_outputs
from rltrader.features.definitions import feature_declarations
from rltrader.features.expressions import CLOSE, HIGH, LOW, VOLUME, cos, ewm, lag, log1p, rolling, sign, where
from rltrader.features.pipeline import compute_features
from rltrader.features.program import FeatureProgram
from rltrader.features.stream import FeatureSteps

SAMPLE = "data/XAUUSDm_15min.csv"


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return load_bars(SAMPLE, load_config().data).bars


def _declared_here() -> dict:
    """Three features no part of rltrader knows, declared only here: each form must follow from this alone."""
    span = HIGH - LOW
    range_mean, range_std = rolling(span / CLOSE, 12)
    return {
        "close_in_range": where(span > 0.0, (CLOSE - LOW) / span - 0.5, 0.0),
        "range_surprise": (span / CLOSE - range_mean) / range_std,
        "pressure": ewm(sign(CLOSE - lag(CLOSE, 3)) * log1p(VOLUME), 0.2) + cos(range_std * 1000.0),
    }


@pytest.fixture(scope="module")
def program() -> FeatureProgram:
    built_in = feature_declarations(FeatureConfig(), has_volume=True, has_spread=True)
    return FeatureProgram.compile({**built_in, **_declared_here()})


def test_a_feature_declared_once_is_the_same_in_batch_stream_and_graph_on_a_whole_file(bars, program):
    fields = bar_arrays(bars).fields()
    batch = FeatureSteps(program).advance(fields)
    stream, rng, pieces, row = FeatureSteps(program), np.random.default_rng(7), [], 0
    while row < len(fields):  # new bars arrive one at a time or in bursts
        step = int(rng.integers(1, 50))
        pieces.append(stream.advance(fields[row : row + step]))
        row += step
    np.testing.assert_array_equal(np.concatenate(pieces), batch)  # to the bit
    assert np.isfinite(batch[100:]).all() and batch.shape == (len(bars), len(program.names))

    graph = feature_graph(program).SerializeToString()
    for runtime_114 in (False, True):
        from_graph = feature_graph_outputs(graph, fields, program.initial_state(), runtime_114=runtime_114)
        assert (np.isnan(from_graph) == np.isnan(batch)).all()
        scale = np.nanmax(np.abs(batch), axis=0)
        assert (np.nan_to_num(np.abs(from_graph - batch)) <= 1e-12 * np.maximum(scale, 1.0)).all(), runtime_114


def test_the_built_in_declarations_compute_the_textbook_indicators(bars):
    """Checked against pandas (``tests/reference/indicators.py``: rolling windows, ``ewm(adjust=False)``)."""
    values = compute_features(bars, FeatureConfig(calendar_harmonics=2)).values
    close, high, low = bars["close"], bars["high"], bars["low"]
    expected = {"ret_4": indicators.log_returns(close, 4), "vol_16": indicators.realized_volatility(close, 16),
                "atr_14": indicators.average_true_range(high, low, close, 14),
                "rsi_14": indicators.relative_strength_index(close, 14),
                "bb_position": indicators.bollinger_position(close, 20, 2.0),
                "volume_z": indicators.rolling_zscore(np.log1p(bars["volume"]), 64),
                **{name: column for name, column in indicators.macd(close, 12, 26, 9).items()}}
    seconds = (bars.index.hour * 3600 + bars.index.minute * 60).to_numpy()
    expected |= dict(indicators.cyclical(seconds / 86400.0, "time_of_day", 2).items())
    expected |= dict(indicators.cyclical((bars.index.day_of_week.to_numpy() + seconds / 86400.0) / 7.0,
                                         "day_of_week", 2).items())
    for name, column in expected.items():
        np.testing.assert_allclose(values[name].to_numpy(), np.asarray(column), rtol=1e-10, atol=1e-14,
                                   err_msg=name)


def test_a_declaration_that_mixes_conditions_and_numbers_is_refused():
    with pytest.raises(TypeError, match="must be a number expression"):
        FeatureProgram.compile({"up": CLOSE > lag(CLOSE, 1)})
    with pytest.raises(TypeError, match="needs a condition"):
        where(CLOSE, 1.0, 0.0)
    with pytest.raises(ValueError, match="at least 2 bars"):
        rolling(CLOSE, 1)


def test_a_graph_metatrader_5s_runtime_cannot_run_is_refused_naming_the_operator_and_type(monkeypatch):
    """1.14.1 has no double Cos kernel: a primitive whose graph form used it would be refused, in one line."""
    import rltrader.features.primitives as primitives

    cos_form = primitives.PRIMITIVES["cos"]
    plain = primitives.Primitive("cos", 1, lambda g, x, params, at: [g.op("Cos", x[0])])
    monkeypatch.setitem(primitives.PRIMITIVES, "cos", plain)
    program = FeatureProgram.compile({"c": cos(CLOSE)})
    with pytest.raises(GraphError) as refused:
        feature_graph(program)
    assert str(refused.value) == ("operator Cos on double has no kernel in onnxruntime 1.14.1 (MetaTrader 5's ONNX "
                                  "Runtime runs Cos on float, float16)")
    monkeypatch.setitem(primitives.PRIMITIVES, "cos", cos_form)
    feature_graph(program)  # the real graph form: Sin(x + pi/2)


def test_without_a_python_3_10_the_runtime_check_fails_saying_what_to_install(monkeypatch, tmp_path):
    """Where MetaTrader 5's runtime cannot be built, its checks fail (they never skip) with what to install."""
    from rltrader.export import runtime114

    monkeypatch.setenv("RLTRADER_ORT114_HOME", str(tmp_path / "nowhere"))
    monkeypatch.setattr(runtime114, "find_python310", lambda: None)
    with pytest.raises(runtime114.RuntimeMissing, match=r"no Python 3\.10 found .*pyenv install 3\.10"):
        runtime114.ensure_runtime()
    assert runtime114.main([]) == 2
