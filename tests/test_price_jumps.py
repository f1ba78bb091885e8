"""Impossible prices (a lost decimal point, a bad tick) stop preprocessing; real moves pass.

A price far from both neighbouring bars that comes straight back is an error naming the
line, the column and the value; a gap that holds, a news bar that holds and every real
file shipped pass, and the report shows the largest move it accepted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import PROJECT_ROOT, cache_is_untouched

from rltrader.app.cli import main
from rltrader.data import load_bars
from rltrader.display.data_report import data_report_text
from rltrader.errors import DataError
from rltrader.features.preparation import preprocess

SAMPLE = PROJECT_ROOT / "data" / "XAUUSDm_15min.csv"
PRICES = ("open", "high", "low", "close")
LINE = 302  # counting the header as line 1


def _rows(lines: int = 600) -> tuple[list[str], list[list[str]]]:
    text = SAMPLE.read_text().splitlines()[:lines]
    return text[0].split(","), [line.split(",") for line in text[1:]]


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.write_text("\n".join([",".join(header), *(",".join(row) for row in rows)]) + "\n")
    return path


def _scale(row: list[str], header: list[str], columns: tuple[str, ...], factor: float) -> None:
    for column in columns:
        index = header.index(column)
        row[index] = f"{float(row[index]) * factor:.2f}"


@pytest.mark.parametrize("factor", [1000, 0.001, 10, 0.1])
@pytest.mark.parametrize("column", PRICES)
def test_a_spike_in_one_price_is_an_error_naming_line_column_and_value(tmp_path, config, cache_dir, column, factor):
    header, rows = _rows()
    _scale(rows[LINE - 2], header, (column,), factor)
    typed = float(rows[LINE - 2][header.index(column)])
    path = _write(tmp_path / "spike.csv", header, rows)
    with pytest.raises(DataError) as caught:
        preprocess(path, config)
    message = str(caught.value)
    assert message.startswith(f"{path}: line {LINE}, column '{column}': {typed:.10g} is ")
    assert "away from both neighbouring bars" in message and "--max_jump_mads" in message and "\n" not in message
    assert cache_is_untouched(cache_dir)


@pytest.mark.usefixtures("prefect_harness")  # the command preprocesses through the Prefect flow
def test_the_issues_example_through_the_command_exits_2_in_one_line_writing_nothing(tmp_path, capsys):
    header, rows = _rows()
    _scale(rows[LINE - 2], header, ("high", "close"), 1000)  # a lost decimal point typed twice
    path = _write(tmp_path / "typo.csv", header, rows)
    code = main(["preprocess", "--data_path", str(path), "--cache_dir", str(tmp_path / "cache")])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("rltrader: error:")]
    assert code == 2 and len(errors) == 1
    assert f"line {LINE}, column 'high'" in errors[0] and "1,000x away" in errors[0] and "'close'" in errors[0]
    assert cache_is_untouched(tmp_path / "cache")


def test_real_moves_pass_a_gap_and_a_news_bar_that_hold(tmp_path, config):
    header, rows = _rows()
    gap = [list(row) for row in rows]
    for row in gap[LINE - 2:]:
        _scale(row, header, PRICES, 1.03)  # everything from this bar on opens 3% higher, and stays
    load_bars(_write(tmp_path / "gap.csv", header, gap))

    news = [list(row) for row in rows]
    for row in news[LINE - 1:]:
        _scale(row, header, PRICES, 1.05)
    bar = news[LINE - 2]  # opens where the last bar closed, closes 5% up, and the market stays there
    _scale(bar, header, ("high", "close"), 1.05)
    loaded = load_bars(_write(tmp_path / "news.csv", header, news))
    assert loaded.largest_move["percent"] == pytest.approx(5.0, abs=0.2)
    assert loaded.largest_move["time"] == str(loaded.bars.index[LINE - 2])


@pytest.mark.usefixtures("prefect_harness")
def test_a_reverting_spike_can_be_let_through_with_max_jump_mads(tmp_path, capsys):
    header, rows = _rows(1200)
    _scale(rows[LINE - 2], header, ("high", "close"), 1.10)  # 10% up and straight back: a bad tick, or news
    path = _write(tmp_path / "tick.csv", header, rows)
    flags = ["preprocess", "--data_path", str(path), "--cache_dir", str(tmp_path / "cache")]
    assert main(flags) == 2
    assert "robust sd of its 1-bar moves" in capsys.readouterr().err
    assert main([*flags, "--max_jump_mads", "1000"]) == 0  # under 5x, so only the series' own scale judged it


SHIPPED = sorted((PROJECT_ROOT / "data").glob("*.csv")) + sorted((PROJECT_ROOT.parent / "shared" / "data").glob("*.csv"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: f"{path.parent.parent.name}/{path.name}")
def test_every_real_file_shipped_passes_and_reports_its_largest_move(path, config):
    prepared = preprocess(path, config)
    move = prepared.metadata["bars"]["largest_move"]
    assert abs(move["percent"]) > 0 and move["robust_sds"] > 0
    assert "largest move" in data_report_text(prepared)
