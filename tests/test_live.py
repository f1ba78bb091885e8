"""Deciding on new bars: the streamed features, actions and account are the backtest's, bar for bar; a
paper account is kill-safe and keyed by bar time; bad input is refused in one line with nothing written."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rltrader.app.cli import main
from rltrader.bundle import read_bundle
from rltrader.config import load_config
from rltrader.data import load_bars
from rltrader.data.bar_arrays import bar_arrays
from rltrader.engine.model_files import algorithm_class
from rltrader.env import MarketData, evaluation_config
from rltrader.env.trading_env import EpisodeBounds
from rltrader.evaluation.fast import fast_actions
from rltrader.evaluation.ledger import replay
from rltrader.features.normalization import NormalizationStats
from rltrader.features.pipeline import compute_features
from rltrader.features.preparation import preprocess
from rltrader.features.stream import FeatureStream
from rltrader.live.bars import read_bar_file
from rltrader.live.paper import PaperAccount
from rltrader.live.stream import BarOrderError, DecisionStream
from rltrader.training.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "XAUUSDm_15min.csv"
H1 = ROOT / "data" / "XAUUSD_H1_2016_2026.csv"


def _run(root: Path, **overrides: object) -> tuple[Path, object]:
    config = load_config().with_profile("smoke").with_overrides({"cache.dir": str(root / "cache"),
                                                                 "training.iterations": 1, **overrides})
    Trainer(config, SAMPLE, root / "run").run()
    return root / "run", config


@pytest.fixture(scope="module")
def recurrent_run(tmp_path_factory) -> tuple[Path, object]:
    return _run(tmp_path_factory.mktemp("live-recurrent"))


@pytest.fixture(scope="module")
def feedforward_run(tmp_path_factory) -> tuple[Path, object]:
    return _run(tmp_path_factory.mktemp("live-feedforward"), **{"training.algorithm": "feedforward",
                                                                "env.window_size": 4})


def _backtest(run_dir: Path, config):  # noqa: ANN001, ANN202
    """The fast evaluator on the test split: market, bounds, actions, ledger, the file row of the first decision."""
    prepared = preprocess(SAMPLE, config)
    market = MarketData.from_prepared(prepared, config, SAMPLE)
    bundle = read_bundle(run_dir / "bundle")
    model = algorithm_class(bundle.description.algorithm).load(str(bundle.policy_path), device="cpu")
    actions = fast_actions([model], market, "test", config.env)[0]
    bounds = EpisodeBounds.of(market, "test", evaluation_config(config.env))
    ledger = replay(market, bounds.first, actions, config.env.initial_balance)
    return bundle, market, bounds, actions, ledger, bounds.first + prepared.metadata["splits"]["warmup_bars_dropped"]


def _stream_split(bundle, bars, first: int, last: int, cuts) -> tuple[np.ndarray, np.ndarray, list[float]]:  # noqa: ANN001
    """Stream the warm-up, then the split in pieces of the given sizes; features, actions, equity per bar."""
    stream = DecisionStream(bundle)
    stream.advance(bars.rows(first - bundle.description.warmup_bars, first))
    features, actions, equity = [], [], []
    row = first
    while row <= last:
        size = min(next(cuts), last + 1 - row)
        batch = stream.advance(bars.rows(row, row + size))
        features.append(batch.features)
        actions.append(batch.actions)
        equity += batch.equity.tolist()
        row += size
    return np.concatenate(features), np.concatenate(actions), equity


@pytest.mark.parametrize("which", ["recurrent_run", "feedforward_run"])
def test_streamed_decisions_are_the_fast_evaluators_on_the_whole_test_split(which, request):
    run_dir, config = request.getfixturevalue(which)
    bundle, market, bounds, actions, ledger, first = _backtest(run_dir, config)
    bars = read_bar_file(SAMPLE, bundle.description).bars
    last = bounds.last + first - bounds.first
    assert bars.timestamps[first] == market.timestamps[bounds.first].astype(np.int64)
    assert len(np.unique(actions)) > 1, "the model should trade for this test to mean something"
    rng = np.random.default_rng(0)
    for cuts in (iter(lambda: 1, None), iter(lambda: int(rng.integers(1, 40)), None)):  # one bar per call, and chunks
        features, streamed, equity = _stream_split(bundle, bars, first, last, cuts)
        np.testing.assert_array_equal(features, market.features[bounds.first : bounds.last + 1])
        np.testing.assert_array_equal(streamed[: len(actions)], actions)
        assert equity[len(actions)] == ledger.equity[-1]


def test_a_restored_stream_continues_exactly(recurrent_run):
    run_dir, _ = recurrent_run
    bundle = read_bundle(run_dir / "bundle")
    bars = read_bar_file(SAMPLE, bundle.description).bars
    whole = DecisionStream(bundle)
    expected = whole.advance(bars)
    first = DecisionStream(bundle)
    head = first.advance(bars.rows(0, 3000))
    second = DecisionStream(bundle)
    second.restore(json.loads(json.dumps(first.state())))
    tail = second.advance(bars.rows(3000, len(bars)))
    np.testing.assert_array_equal(np.concatenate([head.actions, tail.actions]), expected.actions)
    np.testing.assert_array_equal(np.concatenate([head.equity, tail.equity]), expected.equity)
    assert second.state() == whole.state()


def test_streamed_raw_features_equal_the_batch_pipeline_on_a_whole_file_bit_for_bit():
    config = load_config()
    bars = load_bars(H1, config.data).bars
    batch = compute_features(bars, config.features)
    columns = list(batch.values.columns)
    stream = FeatureStream.of(config.features, columns, NormalizationStats(dict.fromkeys(columns, 0.0),
                                                                        dict.fromkeys(columns, 1.0), 5.0))
    arrays = bar_arrays(bars)
    raw = np.concatenate([stream.raw(arrays.rows(0, 20_000)), stream.raw(arrays.rows(20_000, 20_001)),
                          stream.raw(arrays.rows(20_001, len(arrays)))])
    np.testing.assert_array_equal(raw[batch.warmup :], batch.values.to_numpy()[batch.warmup :])


def test_a_bar_not_later_than_the_last_is_refused_and_changes_nothing(recurrent_run):
    bundle = read_bundle(recurrent_run[0] / "bundle")
    bars = read_bar_file(SAMPLE, bundle.description).bars
    stream = DecisionStream(bundle)
    stream.advance(bars.rows(0, 500))
    before = json.dumps(stream.state())
    with pytest.raises(BarOrderError, match=r"new bar 2024-01-\d\d \d\d:\d\d:\d\d is not later than the last processed"):
        stream.advance(bars.rows(499, 501))
    assert json.dumps(stream.state()) == before


def test_an_impossible_price_is_skipped_and_the_next_good_bar_continues(recurrent_run):
    bundle = read_bundle(recurrent_run[0] / "bundle")
    bars = read_bar_file(SAMPLE, bundle.description).bars.rows(0, 600)
    bad = dataclasses.replace(bars, **{name: getattr(bars, name).copy() for name in ("open", "high", "low", "close")})
    for column in (bad.open, bad.high, bad.low, bad.close):
        column[550] *= 10  # a lost decimal point
    stream = DecisionStream(bundle)
    first = stream.advance(bad.rows(0, 550))
    before = json.dumps(stream.state())
    skipped = stream.advance(bad.rows(550, 551))
    assert len(skipped) == 0 and "10x away from the last accepted bar" in skipped.rejected[0][1]
    assert json.dumps(stream.state()) == before  # state unchanged
    rest = stream.advance(bad.rows(551, 600))
    reference = DecisionStream(bundle)  # the same bars without the bad one
    without = reference.advance(bars.rows(0, 550))
    without_rest = reference.advance(bars.rows(551, 600))
    np.testing.assert_array_equal(np.concatenate([first.actions, rest.actions]),
                                  np.concatenate([without.actions, without_rest.actions]))
    assert stream.state() == reference.state()


def _paper(root: Path, bundle, data: Path, start: str) -> PaperAccount:  # noqa: ANN001
    import pandas as pd

    return PaperAccount(root, bundle, data, int(pd.Timestamp(start).value))


def test_paper_ledger_is_the_same_however_the_bars_arrive_and_no_bar_is_traded_twice(recurrent_run, tmp_path):
    bundle = read_bundle(recurrent_run[0] / "bundle")
    lines = SAMPLE.read_text().splitlines(keepends=True)
    live = tmp_path / "XAUUSD_M15_live.csv"
    live.write_text("".join(lines[:1001]))
    start = "2024-01-17 06:00"
    grown = _paper(tmp_path / "grown", bundle, live, start)
    grown.process(grown.new_bars())
    for end in (1003, 1010, 1050, 1200):  # the terminal appends bars; the account is reopened each time
        live.write_text("".join(lines[:end]))
        account = _paper(tmp_path / "grown", bundle, live, start)
        account.process(account.new_bars())
    again = _paper(tmp_path / "grown", bundle, live, start)
    assert len(again.new_bars()) == 0  # every bar is already in the ledger
    whole = _paper(tmp_path / "whole", bundle, live, start)
    whole.process(whole.new_bars())
    assert (tmp_path / "grown" / "ledger.csv").read_bytes() == (tmp_path / "whole" / "ledger.csv").read_bytes()
    ledger = json.loads((tmp_path / "grown" / "state.json").read_text())["ledger"]
    assert len(ledger["time"]) == len(set(ledger["time"])) > 100 and ledger["time"][0] == "2024-01-17 06:00:00"


def test_paper_cli_writes_ledger_summary_and_picture_and_refuses_an_inserted_old_bar(recurrent_run, tmp_path,
                                                                                     capsys):
    bundle_dir = recurrent_run[0] / "bundle"
    lines = SAMPLE.read_text().splitlines(keepends=True)
    live = tmp_path / "XAUUSD_M15_live.csv"
    live.write_text("".join(lines[:1500]))
    paper_dir = tmp_path / "paper"
    command = ["paper", "--bundle", str(bundle_dir), "--data_path", str(live), "--name", "demo", "--paper_dir",
               str(paper_dir), "--start", "2024-01-24 00:00"]
    assert main(command) == 0
    out = capsys.readouterr().out
    assert "rltrader paper demo:" in out and "buy-and-hold" in out
    files = sorted(path.name for path in (paper_dir / "demo").iterdir())
    assert files == ["equity.png", "ledger.csv", "run.lock", "state.json", "summary.json"]
    summary = json.loads((paper_dir / "demo" / "summary.json").read_text())
    assert summary["paper"]["final_equity"] > 0 and summary["backtest_test"]["sharpe"] is not None
    state = (paper_dir / "demo" / "state.json").read_bytes()
    # a bar slipped in before the last processed one would never be traded: refused, nothing written
    header, *rows = lines[:1500]
    stamp, rest = rows[1480].split(",", 1)
    inserted = f"{int(stamp) + 420},{rest}"  # 7 minutes after a processed bar
    live.write_text(header + "".join(rows[:1481]) + inserted + "".join(rows[1481:]))
    assert main(command) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "is not later than the last processed bar" in error and "remove it" in error
    assert (paper_dir / "demo" / "state.json").read_bytes() == state


@pytest.mark.parametrize("case", ["symbol", "interval", "short"])
def test_signal_refuses_a_file_the_bundle_cannot_read_in_one_line(case, recurrent_run, tmp_path, capsys):
    bundle_dir = recurrent_run[0] / "bundle"
    if case == "symbol":
        data = tmp_path / "EURUSD_M15.csv"
        shutil.copyfile(SAMPLE, data)
        expected = "holds EURUSD bars (by its name) but the bundle trades XAUUSD; pass XAUUSD bars"
    elif case == "interval":
        data = tmp_path / "XAUUSD_H1.csv"
        data.write_text("".join(H1.read_text().splitlines(keepends=True)[:2000]))
        expected = "holds H1 bars but the bundle trades M15 bars; export M15 bars"
    else:
        data = tmp_path / "XAUUSD_M15_short.csv"
        data.write_text("".join(SAMPLE.read_text().splitlines(keepends=True)[:201]))
        warmup = read_bundle(bundle_dir).description.warmup_bars
        expected = f"holds 200 bars; the bundle needs at least {warmup + 1} ({warmup} bars of warm-up"
    before = sorted(tmp_path.rglob("*"))
    assert main(["signal", "--bundle", str(bundle_dir), "--data_path", str(data)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and expected in captured.err
    assert sorted(tmp_path.rglob("*")) == before


def test_signal_prints_the_next_bars_decision_as_one_json_line(recurrent_run, capsys):
    bundle_dir = recurrent_run[0] / "bundle"
    assert main(["signal", "--bundle", str(bundle_dir), "--data_path", str(SAMPLE)]) == 0
    line = capsys.readouterr().out.strip()
    record = json.loads(line)
    assert record["bar"] == "2024-04-01 23:45:00" and record["history_bars"] == 5864
    assert record["action"] in ("short", "flat", "long") and abs(sum(record["probabilities"].values()) - 1) < 1e-5
    assert record["decisions"] == 5864 - read_bundle(bundle_dir).description.warmup_bars


def test_each_bar_of_a_batch_gets_its_own_record(recurrent_run):
    from rltrader.live.signal import decision_record

    bundle = read_bundle(recurrent_run[0] / "bundle")
    bars = read_bar_file(SAMPLE, bundle.description).bars
    stream = DecisionStream(bundle)
    stream.advance(bars.rows(0, 1000))
    batch = stream.advance(bars.rows(1000, 1003))
    records = [decision_record(stream, batch, index) for index in range(3)]
    assert [r["history_bars"] for r in records] == [1001, 1002, 1003]
    assert [r["decisions"] for r in records] == [stream.decisions - 2, stream.decisions - 1, stream.decisions]
    assert decision_record(stream, batch) == records[-1]


@pytest.mark.slow
def test_signal_follow_prints_a_line_per_appended_bar_and_stops_on_sigterm(recurrent_run, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    lines = SAMPLE.read_text().splitlines(keepends=True)
    live = tmp_path / "XAUUSD_M15_live.csv"
    live.write_text("".join(lines[:3001]))
    process = subprocess.Popen([sys.executable, "-m", "rltrader", "signal", "--bundle",
                                str(recurrent_run[0] / "bundle"), "--data_path", str(live), "--follow", "--poll", "0.1"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    import queue
    import threading

    printed: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [printed.put(text) for text in process.stdout], daemon=True).start()

    def line(timeout: float = 120) -> str:  # never wait forever on a process that prints nothing
        try:
            return printed.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line from `rltrader signal --follow` in {timeout} s") from None

    try:
        first = json.loads(line())
        assert first["history_bars"] == 3000
        with live.open("a") as handle:  # the terminal appends two closed bars
            handle.write("".join(lines[3001:3003]))
        records = [json.loads(line(30)) for _ in range(2)]
        assert [r["history_bars"] for r in records] == [3001, 3002]
        assert records[0]["bar"] > first["bar"] and records[1]["bar"] > records[0]["bar"]
        stopping = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 128 + signal.SIGTERM
        assert time.monotonic() - stopping < 10
        assert "stopped by SIGTERM" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_second_process_on_one_paper_account_is_refused_naming_the_first(recurrent_run, tmp_path):
    import subprocess
    import sys

    from rltrader.live.paper import holding

    bundle = read_bundle(recurrent_run[0] / "bundle")
    live = tmp_path / "XAUUSD_M15_live.csv"
    live.write_text("".join(SAMPLE.read_text().splitlines(keepends=True)[:1200]))
    first = _paper(tmp_path / "demo", bundle, live, "2024-01-17 06:00")
    with holding(first):  # a second process tries the same account while this one holds it
        code = ("import sys; from pathlib import Path; from rltrader.bundle import read_bundle; "
                "from rltrader.live.paper import PaperAccount, holding; "
                f"a = PaperAccount(Path({str(tmp_path / 'demo')!r}), read_bundle({str(bundle.root)!r}), "
                f"Path({str(live)!r}));\n"
                "try:\n    holding(a).__enter__()\nexcept Exception as e:\n    print(e)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert "another paper trader is using this paper account: pid" in out and "pass another --name" in out


PAPER_V1 = Path(__file__).resolve().parent / "fixtures" / "paper_v1"


def test_a_paper_account_written_before_the_compiled_features_goes_on_as_a_new_one_would(tmp_path):
    """``tests/fixtures/paper_v1``: a recurrent smoke bundle and its paper account after the sample's first 1,100
    bars (from 2024-01-17 06:00), written by the code before features were compiled from their declarations
    (paper state version 1, the features' own rings). Opened now, its feature state is rebuilt from the file and
    it trades the next bars as an account opened by this code at the same bar does."""
    lines = SAMPLE.read_text().splitlines(keepends=True)
    live = tmp_path / "XAUUSD_M15_live.csv"
    live.write_text("".join(lines[:1101]))
    shutil.copytree(PAPER_V1 / "bundle", tmp_path / "bundle")
    shutil.copytree(PAPER_V1 / "account", tmp_path / "paper" / "old")
    state = json.loads((tmp_path / "paper" / "old" / "state.json").read_text())
    assert state["version"] == 1 and "log_closes" in state["stream"]["features"]
    state.update(bundle=str(tmp_path / "bundle"), data_path=str(live))
    (tmp_path / "paper" / "old" / "state.json").write_text(json.dumps(state))
    live.write_text("".join(lines[:1400]))
    bundle = read_bundle(tmp_path / "bundle")
    old = _paper(tmp_path / "paper" / "old", bundle, live, "2024-01-17 06:00")
    old.process(old.new_bars())
    new = _paper(tmp_path / "paper" / "new", bundle, live, "2024-01-17 06:00")
    new.process(new.new_bars())
    old_ledger, new_ledger = old.ledger_frame(), new.ledger_frame()
    assert len(old_ledger) == len(new_ledger) > 300 and len(set(new_ledger["decision"])) > 1
    pd.testing.assert_series_equal(old_ledger["decision"], new_ledger["decision"])
    np.testing.assert_allclose(old_ledger["equity"], new_ledger["equity"], rtol=1e-9)
    assert json.loads((tmp_path / "paper" / "old" / "state.json").read_text())["version"] == 2
