"""Every supported export format loads to the same canonical bars as the shipped MT5 file.

The variants are built here from the shipped real XAUUSD M15 bars, the way each tool
writes them, so a format regression shows up as a difference in real prices.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rltrader.config import LoadingConfig
from rltrader.data import load_bars
from rltrader.errors import DataError

PRICES = ["open", "high", "low", "close"]


def _times(raw: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(raw["time"], unit="s")


def _price_text(values: pd.Series, decimal: str = ".") -> pd.Series:
    text = values.map(lambda x: f"{x:.2f}")
    return text.str.replace(".", decimal, regex=False) if decimal != "." else text


def write_mt5_terminal_export(raw: pd.DataFrame, path: Path, encoding: str = "utf-8") -> Path:
    times = _times(raw)
    frame = pd.DataFrame(
        {
            "<DATE>": times.dt.strftime("%Y.%m.%d"),
            "<TIME>": times.dt.strftime("%H:%M:%S"),
            "<OPEN>": _price_text(raw["open"]),
            "<HIGH>": _price_text(raw["high"]),
            "<LOW>": _price_text(raw["low"]),
            "<CLOSE>": _price_text(raw["close"]),
            "<TICKVOL>": raw["tick_volume"],
            "<VOL>": raw["real_volume"],
            "<SPREAD>": raw["spread"],
        }
    )
    text = frame.to_csv(sep="\t", index=False, lineterminator="\r\n")
    path.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le") if encoding == "utf-16" else text.encode())
    return path


def write_script_export(raw: pd.DataFrame, path: Path) -> Path:
    frame = pd.DataFrame(
        {
            "DateTime": _times(raw).dt.strftime("%Y.%m.%d %H:%M:%S"),
            "Open": _price_text(raw["open"]),
            "High": _price_text(raw["high"]),
            "Low": _price_text(raw["low"]),
            "Close": _price_text(raw["close"]),
            "TickVolume": raw["tick_volume"],
            "Spread": raw["spread"],
        }
    )
    frame.to_csv(path, index=False)
    return path


def write_generic(raw: pd.DataFrame, path: Path, *, sep: str, decimal: str, date_format: str,
                  split_date_time: bool = False, header_case=str.title) -> Path:
    times = _times(raw)
    columns: dict[str, pd.Series] = {}
    if split_date_time:
        date_part, _, time_part = date_format.partition(" ")
        columns["date"] = times.dt.strftime(date_part)
        columns["time"] = times.dt.strftime(time_part)
    else:
        columns["Date"] = times.dt.strftime(date_format)
    for name in PRICES:
        columns[header_case(name)] = _price_text(raw[name], decimal)
    columns[header_case("volume")] = raw["tick_volume"]
    pd.DataFrame(columns).to_csv(path, sep=sep, index=False)
    return path


def write_mt4_history(raw: pd.DataFrame, path: Path) -> Path:
    times = _times(raw)
    frame = pd.DataFrame(
        {"d": times.dt.strftime("%Y.%m.%d"), "t": times.dt.strftime("%H:%M"),
         **{name: _price_text(raw[name]) for name in PRICES}, "v": raw["tick_volume"]}
    )
    frame.to_csv(path, index=False, header=False)
    return path


def write_parquet(raw: pd.DataFrame, path: Path) -> Path:
    frame = raw[PRICES + ["tick_volume", "spread"]].copy()
    frame.index = pd.DatetimeIndex(_times(raw), name="Datetime").tz_localize("UTC")
    frame.to_parquet(path)
    return path


VARIANTS = {
    "mt5_terminal_export": lambda raw, d: write_mt5_terminal_export(raw, d / "XAUUSD_M15.csv"),
    "mt5_terminal_export_utf16": lambda raw, d: write_mt5_terminal_export(raw, d / "XAUUSD_M15_u16.csv", "utf-16"),
    "mt_script_export": lambda raw, d: write_script_export(raw, d / "XAUUSD_H.csv"),
    "generic_iso_comma": lambda raw, d: write_generic(raw, d / "g1.csv", sep=",", decimal=".", date_format="%Y-%m-%d %H:%M:%S"),
    "generic_iso_T_lowercase": lambda raw, d: write_generic(
        raw, d / "g2.csv", sep=",", decimal=".", date_format="%Y-%m-%dT%H:%M:%S", header_case=str.lower),
    "semicolon_decimal_comma_dayfirst": lambda raw, d: write_generic(
        raw, d / "eu.csv", sep=";", decimal=",", date_format="%d.%m.%Y %H:%M"),
    "tab_monthfirst_upper": lambda raw, d: write_generic(
        raw, d / "us.tsv", sep="\t", decimal=".", date_format="%m/%d/%Y %H:%M", header_case=str.upper),
    "separate_date_time_columns": lambda raw, d: write_generic(
        raw, d / "dt.csv", sep=",", decimal=".", date_format="%Y-%m-%d %H:%M", split_date_time=True),
    "mt4_history_headerless": lambda raw, d: write_mt4_history(raw, d / "XAUUSD15.csv"),
    "parquet_datetime_index": lambda raw, d: write_parquet(raw, d / "bars.parquet"),
}


EXPECTED_FORMAT = {
    "mt5_terminal_export": "MT5 terminal 'Export bars' (sep=tab, decimal='.', utf-8)",
    "mt5_terminal_export_utf16": "MT5 terminal 'Export bars' (sep=tab, decimal='.', utf-16)",
    "mt_script_export": "MetaTrader script export",
    "generic_iso_comma": "generic CSV",
    "generic_iso_T_lowercase": "generic CSV",
    "semicolon_decimal_comma_dayfirst": "generic CSV (sep=';', decimal=','",
    "tab_monthfirst_upper": "generic CSV (sep=tab",
    "separate_date_time_columns": "generic CSV",
    "mt4_history_headerless": "MT4 history export (no header)",
    "parquet_datetime_index": "parquet",
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_format_loads_to_the_canonical_bars(variant, raw_sample, canonical_bars, tmp_path):
    loaded = load_bars(VARIANTS[variant](raw_sample, tmp_path))
    assert loaded.source_format.startswith(EXPECTED_FORMAT[variant])
    bars = loaded.bars
    assert bars.index.equals(canonical_bars.index)
    assert bars.index.tz is None and bars.index.dtype == "datetime64[ns]"
    for column in PRICES:
        assert bars[column].dtype == np.float64
        np.testing.assert_array_equal(bars[column].to_numpy(), canonical_bars[column].to_numpy())
    assert "volume" in bars
    np.testing.assert_array_equal(bars["volume"].to_numpy(), canonical_bars["volume"].to_numpy())
    if "spread" in bars:
        np.testing.assert_allclose(bars["spread"].to_numpy(), canonical_bars["spread"].to_numpy(), rtol=0, atol=1e-12)
    assert loaded.bar_interval == pd.Timedelta(minutes=15)
    assert loaded.repairs == ()


def test_shipped_mt5_api_file_is_recognised(sample_csv, raw_sample):
    loaded = load_bars(sample_csv)
    assert loaded.source_format.startswith("MetaTrader 5 Python API")
    assert len(loaded.bars) == len(raw_sample) == 5864
    # spread arrives in points; XAUUSD has 2-digit prices, so a point is 0.01
    np.testing.assert_allclose(loaded.bars["spread"].to_numpy(), raw_sample["spread"].to_numpy() * 0.01)
    # real market gaps (weekends, daily breaks) are kept as gaps, never filled
    assert len(loaded.gaps) > 0 and len(loaded.bars) == len(raw_sample)


def test_explicit_overrides_are_used(raw_sample, tmp_path):
    path = write_generic(raw_sample, tmp_path / "eu.txt", sep=";", decimal=",", date_format="%d.%m.%Y %H:%M")
    loaded = load_bars(path, LoadingConfig(sep=";", date_format="%d.%m.%Y %H:%M"))
    assert loaded.bars.index[0] == pd.Timestamp("2024-01-02 01:00")
    with pytest.raises(DataError, match="does not match"):
        load_bars(path, LoadingConfig(date_format="%m.%d.%Y %H:%M"))


def test_point_override_scales_spread(sample_csv, raw_sample):
    loaded = load_bars(sample_csv, LoadingConfig(point=0.1))
    np.testing.assert_allclose(loaded.bars["spread"].to_numpy(), raw_sample["spread"].to_numpy() * 0.1)


def _first_twelve_days(raw: pd.DataFrame) -> pd.DataFrame:
    return raw[_times(raw).dt.day <= 12].reset_index(drop=True)


@pytest.mark.parametrize("date_format, order", [("%d/%m/%Y %H:%M", "day-first"), ("%m/%d/%Y %H:%M", "month-first")])
def test_day_month_order_is_detected_from_time_order(raw_sample, tmp_path, date_format, order):
    """Only days 1-12: both orders parse, only the right one makes time run forward."""
    subset = _first_twelve_days(raw_sample)
    path = write_generic(subset, tmp_path / "d.csv", sep=",", decimal=".", date_format=date_format)
    loaded = load_bars(path)
    assert loaded.bars.index.equals(pd.DatetimeIndex(_times(subset)))
    assert order in loaded.time_description


def test_truly_ambiguous_dates_are_reported_not_guessed(raw_sample, tmp_path):
    """One bar per day on days 1-12 of January: read month-first they are the 1st of Jan..Dec,
    which also runs forward. Both readings are consistent, so the loader must refuse."""
    times = _times(raw_sample)
    daily = raw_sample[(times.dt.month == 1) & (times.dt.day <= 12) & (times.dt.hour == 10) & (times.dt.minute == 0)]
    path = write_generic(daily.reset_index(drop=True), tmp_path / "amb.csv", sep=",", decimal=".", date_format="%d.%m.%Y")
    with pytest.raises(DataError, match="--dayfirst"):
        load_bars(path)
    assert load_bars(path, LoadingConfig(dayfirst=True)).bars.index[0] == pd.Timestamp("2024-01-02")
    assert load_bars(path, LoadingConfig(dayfirst=False)).bars.index[0] == pd.Timestamp("2024-02-01")


def test_newest_first_file_is_reversed_with_a_repair_note(raw_sample, canonical_bars, tmp_path):
    path = write_script_export(raw_sample.iloc[::-1], tmp_path / "rev.csv")
    loaded = load_bars(path)
    assert loaded.bars.index.equals(canonical_bars.index)
    assert any("newest-first" in repair for repair in loaded.repairs)


def test_unsorted_rows_and_exact_duplicates_are_repaired_and_counted(raw_sample, canonical_bars, tmp_path):
    shuffled = raw_sample.copy()
    shuffled.iloc[[10, 11]] = shuffled.iloc[[11, 10]].to_numpy()
    with_dupes = pd.concat([shuffled, shuffled.iloc[100:103]])
    path = tmp_path / "dupes.csv"
    with_dupes.to_csv(path, index=False)
    loaded = load_bars(path)
    assert loaded.bars.index.equals(canonical_bars.index)
    assert "sorted 4 row(s) that were out of time order" in loaded.repairs
    assert "dropped 3 exact duplicate bar(s)" in loaded.repairs
