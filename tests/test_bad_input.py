"""Each kind of bad input stops with a one-line error naming the file and where, and
leaves the cache untouched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT, cache_is_untouched

from rltrader.errors import DataError
from rltrader.features.preparation import preprocess


def _csv_lines(sample_csv: Path, n: int = 400) -> list[str]:
    return sample_csv.read_text().splitlines()[: n + 1]


def _edit(sample_csv: Path, line_number: int, column: str, value: str, n: int = 400) -> str:
    """The sample with one cell replaced; line_number counts the header as line 1."""
    lines = _csv_lines(sample_csv, n)
    header = lines[0].split(",")
    fields = lines[line_number - 1].split(",")
    fields[header.index(column)] = value
    lines[line_number - 1] = ",".join(fields)
    return "\n".join(lines) + "\n"


def _bad_files(sample_csv: Path) -> dict[str, tuple[bytes | str, str]]:
    lines = _csv_lines(sample_csv)
    twin = lines[20].split(",")
    twin[5] = str(int(twin[5]) + 1)  # same time, different tick volume
    dup_conflict = lines[:50] + [",".join(twin)] + lines[50:]
    return {
        "empty": ("", r"is empty"),
        "whitespace_only": ("\n\n  \n", r"is empty"),
        "header_only": (lines[0] + "\n", r"header but no data rows"),
        "html": ("<!DOCTYPE html><html><body>Login</body></html>\n", r"HTML"),
        "binary": (bytes(range(256)) * 8, r"binary file"),
        "missing_price_column": (
            "\n".join(",".join(line.split(",")[:4] + line.split(",")[5:]) for line in lines) + "\n",
            r"missing price column\(s\) close",
        ),
        "non_numeric": (_edit(sample_csv, 58, "high", "2066.5x"), r"line 58, column 'high': '2066.5x' is not a number"),
        "nan_price": (_edit(sample_csv, 77, "close", ""), r"line 77, column 'close': value is empty"),
        "nan_literal": (_edit(sample_csv, 78, "open", "NaN"), r"line 78, column 'open': value is empty"),
        "unparseable_timestamp": (
            "DateTime,Open,High,Low,Close\n2024.01.02 01:00:00,1,2,0.5,1.5\n2024.01.02 01:15:00,1,2,0.5,1.5\n"
            "yesterday,1,2,0.5,1.5\n2024.01.02 01:45:00,1,2,0.5,1.5\n",
            r"line 4, column 'DateTime': timestamp 'yesterday' does not match",
        ),
        "non_positive_price": (_edit(sample_csv, 120, "low", "0"), r"line 120, column 'low': price 0 is not positive"),
        "negative_price": (_edit(sample_csv, 121, "open", "-5"), r"line 121, column 'open': price -5 is not positive"),
        # a little off (a far-off price is an impossible jump first: tests/test_price_jumps.py)
        "high_below_low": (_edit(sample_csv, 200, "high", "2042.0"), r"line 200: inconsistent bar, high 2042 is below low"),
        "close_above_high": (_edit(sample_csv, 201, "close", "2045.5"),
                             r"line 201: inconsistent bar, high .* is below close 2045.5"),
        "conflicting_duplicate": ("\n".join(dup_conflict) + "\n", r"lines 21, 51 hold different bars for the same time"),
        "ragged_row": (_edit(sample_csv, 90, "spread", "20,7"), r"line 90 has 9 fields where the header has 8"),
        "too_few_rows": ("\n".join(lines[:150]) + "\n", r"too few rows: 149 bars .* need at least \d+ bars"),
    }


CASES = sorted(_bad_files(PROJECT_ROOT / "data" / "XAUUSDm_15min.csv"))


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_a_clear_error_and_writes_nothing(case, sample_csv, tmp_path, config, cache_dir):
    content, pattern = _bad_files(sample_csv)[case]
    path = tmp_path / f"{case}.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataError, match=pattern) as caught:
        preprocess(path, config)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert cache_is_untouched(cache_dir)


def test_missing_file_is_a_clear_error(tmp_path, config):
    with pytest.raises(DataError, match="file not found; check --data_path"):
        preprocess(tmp_path / "nope.csv", config)


def test_damaged_parquet_is_a_clear_error(tmp_path, config, cache_dir):
    path = tmp_path / "bars.parquet"
    path.write_bytes(b"PAR1" + b"\x00garbage" * 20)
    with pytest.raises(DataError, match="not a readable parquet file"):
        preprocess(path, config)
    assert cache_is_untouched(cache_dir)


@pytest.mark.slow
def test_cli_bad_input_exits_2_with_one_line_and_no_traceback(sample_csv, tmp_path):
    """The real command, in its own process, through Prefect's temporary server."""
    bad = tmp_path / "bad.csv"
    bad.write_text(_edit(sample_csv, 58, "high", "abc"))
    cache = tmp_path / "cache"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "rltrader", "preprocess", "--data_path", str(bad), "--cache_dir", str(cache)],
        capture_output=True, text=True, env=env, timeout=240, cwd=tmp_path,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output
    errors = [line for line in done.stderr.splitlines() if line.startswith("rltrader: error:")]
    assert errors == [f"rltrader: error: {bad}: line 58, column 'high': 'abc' is not a number; fix or remove the row"]
    assert cache_is_untouched(cache)  # no feature file, and no Prefect record of the failure either


def test_cli_bad_config_key_exits_2(tmp_path, sample_csv, capsys):
    from rltrader.app.cli import main

    bad_config = tmp_path / "c.yaml"
    bad_config.write_text("features:\n  rsi_periods: 14\n")
    assert main(["preprocess", "--data_path", str(sample_csv), "--config", str(bad_config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"rltrader: error: {bad_config}: features.rsi_periods: unknown key; check its spelling against configs/default.yaml"
