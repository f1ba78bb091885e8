"""Combinatorial purged cross-validation: the splits and paths the method defines, purge and embargo, training on
several stretches without stepping across a gap, normalization on training rows only, and a whole CPCV run whose
every path bar comes from a model that neither trained nor selected on it.

Budgets are tiny (the ``smoke`` profile); what is asserted is behaviour, never speed or skill.
"""

from __future__ import annotations

import dataclasses
import json
from math import comb
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rltrader.app.cli import main
from rltrader.config import EnvConfig, load_config
from rltrader.data.synthetic import KnownAnswerMarket, write_market
from rltrader.env import MarketData
from rltrader.env.trading_env import EpisodeBounds, TradingEnv
from rltrader.env.vec_env import VecTradingEnv
from rltrader.errors import ConfigError, DataError
from rltrader.features.normalization import fixed_scales
from rltrader.features.pipeline import memory_bars
from rltrader.training.trainer import Trainer
from rltrader.walkforward.cpcv import TEST_CODE, TRAIN_CODE, VALIDATION_CODE, path_assignment, path_count, plan_cpcv
from rltrader.walkforward.data import compute_raw_features, prepare_folds

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "XAUUSDm_15min.csv"


def _plan(rows: int = 12_000, groups: int = 6, tested: int = 2, purge: int = 5, embargo: int = 30):
    return plan_cpcv(rows, groups, tested, purge, embargo, 0.15 / 0.85, None, 100)


@pytest.mark.parametrize(("groups", "tested"), [(4, 1), (4, 2), (5, 2), (6, 2), (6, 3), (8, 2), (7, 5)])
def test_the_splits_and_paths_are_exactly_those_the_method_defines(groups, tested):
    splits = _plan(groups=groups, tested=tested)
    assert len(splits) == comb(groups, tested)
    assert sorted(split.test_groups for split in splits) == sorted(
        tuple(sorted(choice)) for choice in __import__("itertools").combinations(range(groups), tested))
    paths = path_assignment(splits, groups)
    assert len(paths) == path_count(groups, tested) == comb(groups, tested) * tested // groups
    for path in paths:  # every group once per path, from a split that tested it
        assert len(path) == groups
        assert all(group in splits[split].test_groups for group, split in enumerate(path))
    for group in range(groups):  # each split's test of a group goes to exactly one path
        feeding = [path[group] for path in paths]
        assert sorted(feeding) == sorted(split.index for split in splits if group in split.test_groups)


@pytest.mark.parametrize(("groups", "tested"), [(4, 2), (6, 2), (6, 3)])
def test_no_split_trains_or_selects_on_its_test_groups_or_their_purge_and_embargo(groups, tested):
    purge, embargo = 5, 30
    splits = _plan(groups=groups, tested=tested, purge=purge, embargo=embargo)
    for split in splits:
        codes = split.codes()
        learned = np.flatnonzero((codes == TRAIN_CODE) | (codes == VALIDATION_CODE))
        for start, stop in split.test:
            assert (codes[start:stop] == TEST_CODE).all()
            near = np.arange(max(0, start - purge), min(len(codes), stop + embargo))
            assert not np.isin(near, learned).any(), (split.test_groups, start, stop)
        # validation: after the training rows of its stretch, a purge between them, never a test bar
        low, high = split.validation
        assert (codes[low - purge:low] != TRAIN_CODE).all() and (codes[low:high] == VALIDATION_CODE).all()
        assert sum(b - a for a, b in split.train) > 0
        # every bar is in exactly one role, and the tested groups are the split's
        assert sorted(g for g, rows in enumerate(split.groups) if rows in split.test) == list(split.test_groups)


def test_a_plan_that_does_not_fit_is_refused_saying_what_to_change():
    with pytest.raises(DataError, match="lower --groups"):
        plan_cpcv(1_000, 12, 2, 5, 30, 0.2, None, 100)
    with pytest.raises(DataError, match="1 <= test_groups < groups"):
        plan_cpcv(10_000, 4, 4, 5, 30, 0.2, None, 100)


def test_a_bad_cpcv_exits_2_in_one_line_and_writes_nothing(tmp_path, capsys):
    code = main(["walkforward", "--data_path", str(SAMPLE), "--scheme", "cpcv", "--groups", "40", "--results_dir",
                 str(tmp_path / "r"), "--cache_dir", str(tmp_path / "cache")])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "lower --groups" in error, error
    assert not (tmp_path / "cache").exists() and not (tmp_path / "r").exists()


def _cpcv_config(cache: Path, **walk: object):
    overrides = {"cache.dir": str(cache), "walk_forward.profile": "smoke", "walk_forward.scheme": "cpcv",
                 "walk_forward.groups": 4, "walk_forward.test_groups": 2}
    overrides.update({f"walk_forward.{key}": value for key, value in walk.items()})
    return load_config().with_overrides(overrides)


def test_each_splits_statistics_come_from_its_training_rows_only(tmp_path):
    config = _cpcv_config(tmp_path / "cache")
    splits, prepared = prepare_folds(SAMPLE, config)
    raw, meta = compute_raw_features(SAMPLE, config, "key")
    for split, data in zip(splits, prepared, strict=True):
        codes = data.load()["split"].to_numpy()
        assert (codes == split.codes()).all()
        stats = data.metadata["features"]["normalization"]
        train = raw.loc[codes == TRAIN_CODE, meta["feature_columns"]]
        fixed = fixed_scales(meta["feature_columns"])  # sin/cos and move patterns: a scale fitted on nothing
        for column in meta["feature_columns"]:
            if column in fixed:
                assert stats["mean"][column] == 0.0 and stats["std"][column] == fixed[column]
            else:
                assert stats["mean"][column] == pytest.approx(float(train[column].mean()), rel=1e-9, abs=1e-12)

    # prices inside a test group change: past the embargo (the features' memory) a tested bar's weight in any
    # training row's features is below 1e-4, so the split's statistics and its training rows barely move
    # (the exponential averages never forget exactly; rolling windows do), while its test rows change
    bars = pd.read_csv(SAMPLE)
    warmup = int(meta["warmup"])
    split = splits[0]  # tests groups 1 and 2
    low, high = split.test[-1]
    assert split.train[0][0] - high == memory_bars(config.features, True) > warmup  # 125 > 64 bars
    noise = np.random.default_rng(1).normal(0, 0.5, high - low)
    for column in ("open", "high", "low", "close"):
        bars.loc[warmup + low:warmup + high - 1, column] = (bars.loc[warmup + low:warmup + high - 1, column]
                                                          + noise).round(2)
    bars["high"] = bars[["open", "high", "low", "close"]].max(axis=1)
    bars["low"] = bars[["open", "high", "low", "close"]].min(axis=1)
    altered = tmp_path / "altered.csv"
    bars.to_csv(altered, index=False)
    _, reprepared = prepare_folds(altered, config.with_overrides({"cache.dir": str(tmp_path / "cache2")}))
    before_stats = prepared[0].metadata["features"]["normalization"]
    after_stats = reprepared[0].metadata["features"]["normalization"]
    for column, mean in before_stats["mean"].items():
        assert after_stats["mean"][column] == pytest.approx(mean, abs=1e-6 * before_stats["std"][column])
        assert after_stats["std"][column] == pytest.approx(before_stats["std"][column], rel=1e-6)
    columns = prepared[0].feature_columns
    again, before = reprepared[0].load(), prepared[0].load()
    trained = again["split"].to_numpy() == TRAIN_CODE
    assert float((again.loc[trained, columns] - before.loc[trained, columns]).abs().max().max()) < 1e-4  # z-scores
    assert float((again.loc[~trained, columns] - before.loc[~trained, columns]).abs().max().max()) > 0.1


def test_episodes_on_several_training_stretches_never_step_across_a_gap(tmp_path):
    config = _cpcv_config(tmp_path / "cache")
    splits, prepared = prepare_folds(SAMPLE, config)
    split = next(each for each in splits if len(each.train) > 1)  # training before and after a test group
    market = MarketData.from_prepared(prepared[split.index], config)
    env_config = EnvConfig(episode_length=200, random_start=True)
    bounds = EpisodeBounds.of(market, "train", env_config)
    assert len(bounds.segments) == len(split.train)
    env = VecTradingEnv(market, "train", env_config, num_envs=8)
    env.seed(3)
    env.reset()
    rng = np.random.default_rng(0)
    seen = []
    for _ in range(3_000):
        bars_before = env.bar
        _, _, dones, _ = env.step(rng.integers(0, 3, size=8))
        moved = env.bar
        for before, after, done in zip(bars_before, moved, dones, strict=True):
            if not done:  # a step goes one bar forward, within training rows
                assert after == before + 1 and market.split_codes[after] == TRAIN_CODE
        seen.extend(moved.tolist())
    seen_codes = market.split_codes[np.asarray(seen)]
    assert (seen_codes == TRAIN_CODE).all()
    stretch_of = [next(i for i, (a, b) in enumerate(split.train) if a <= bar < b) for bar in seen]
    assert set(stretch_of) == set(range(len(split.train)))  # every stretch is trained on
    single = TradingEnv(market, "train", env_config)  # the gymnasium env draws the same way
    for seed in range(50):
        single.reset(seed=seed)
        start, end = single.bar, single._end
        assert any(a <= start and end < b for a, b in split.train), (start, end)


def test_one_stretch_draws_episodes_exactly_as_before():
    bounds = EpisodeBounds(10, 500, 1, 100, True, ((10, 500),))
    rng, reference = np.random.default_rng(7), np.random.default_rng(7)
    for _ in range(100):
        start = int(reference.integers(10, 400 + 1))
        assert bounds.start_and_end(rng) == (start, min(500, start + 100))


def test_an_evaluation_across_stretches_is_refused(tmp_path):
    config = _cpcv_config(tmp_path / "cache")
    splits, prepared = prepare_folds(SAMPLE, config)
    split = next(each for each in splits if len(each.train) > 1)
    market = MarketData.from_prepared(prepared[split.index], config)
    with pytest.raises(ConfigError, match="stretches"):
        EpisodeBounds.whole(market, "train", config.env)
    one = dataclasses.replace(market, split_rows={**market.split_rows, "test": split.test[0]})
    assert EpisodeBounds.whole(one, "test", config.env).contiguous


@pytest.mark.slow
def test_a_cpcv_run_assembles_every_path_from_models_that_never_saw_its_bars_and_resumes(tmp_path, capsys):
    market = tmp_path / "momentum.csv"
    write_market(KnownAnswerMarket(kind="momentum", bars=6_000, seed=3, phi=0.3), market)
    args = ["walkforward", "--data_path", str(market), "--scheme", "cpcv", "--groups", "4", "--test_groups", "2",
            "--profile", "smoke", "--seeds", "1", "2", "--results_dir", str(tmp_path / "r"),
            "--cache_dir", str(tmp_path / "cache"), "--name", "cv"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "3 out-of-sample paths" in printed and "beats buy-and-hold's on" in printed
    root = tmp_path / "r" / "walkforward-cv"
    summary = json.loads((root / "summary.json").read_text())
    figures = summary["aggregate"]
    assert figures["paths"] == 3 and figures["splits"] == 6 and figures["runs"] == 12
    assert set(figures["path_sharpe_quantiles"]) == {"5%", "25%", "50%", "75%", "95%"}
    assert 0.0 <= figures["p_beats_buy_and_hold"] <= 1.0 and "seed_overfitting" in figures
    paths = pd.read_parquet(root / "cpcv_paths.parquet")
    plan = json.loads((root / "plan.json").read_text())["folds"]
    testers = {group: sorted(split["index"] for split in plan if group in split["test_groups"]) for group in range(4)}
    for path, rows in paths.groupby("path"):
        assert rows["timestamp"].is_monotonic_increasing and rows["timestamp"].is_unique
        assert sorted(rows["group"].unique()) == [0, 1, 2, 3]
        for (group, split), block in rows.groupby(["group", "split"]):
            assert split == testers[group][path]  # the path-th split that tested the group
            trained = plan[split]
            low, high = trained["groups"][group]
            assert len(block) == high - low - 1  # every bar of the group (its first is where equity starts)
            # the model that traded these bars trained on rows coded 0 and selected on rows coded 1, none of them here
            learned = [*map(tuple, trained["train"]), tuple(trained["validation"])]
            assert not any(a < high and low < b for a, b in learned)
    assert (root / "cpcv_paths.png").stat().st_size > 10_000
    mtimes = {path: path.stat().st_mtime_ns for path in root.rglob("best_model.zip")}
    assert main(args) == 0  # re-run: every split is read back, nothing trains again
    assert {path: path.stat().st_mtime_ns for path in root.rglob("best_model.zip")} == mtimes
    again = json.loads((root / "summary.json").read_text())["aggregate"]
    assert again["path_sharpes"] == figures["path_sharpes"]

    # a model trained on the same bars with the same config file beside it carries the CPCV in its trust report,
    # and so does one a study chose (its PBO)
    study = tmp_path / "tune-demo"
    study.mkdir()
    (study / "overfitting.json").write_text(json.dumps({"pbo": 0.31, "trials": 9, "pick": {"trial": 2,
                                                                                             "deflated_sharpe": 0.7}}))
    config = load_config().with_profile("smoke").with_overrides({"cache.dir": str(tmp_path / "cache"),
                                                                 "training.iterations": 1})
    Trainer(config, market, tmp_path / "r" / "42", study_dir=str(study)).run()
    trust = json.loads((tmp_path / "r" / "42" / "bundle" / "bundle.json").read_text())["trust"]
    assert trust["cpcv"]["walkforward"] == str(root) and trust["cpcv"]["paths"] == 3
    assert trust["cpcv"]["path_sharpe_quantiles"] == figures["path_sharpe_quantiles"]
    assert trust["cpcv"]["profile"] == "smoke"  # the budget its runs trained on, said in the report
    assert trust["study"]["pbo"] == 0.31 and trust["study"]["trials"] == 9
    report = (tmp_path / "r" / "42" / "report" / "report.md").read_text()
    assert "CPCV of the same bars and config file" in report and "probability of backtest overfitting 0.31" in report
    assert "its runs trained on the smoke profile)" in report
