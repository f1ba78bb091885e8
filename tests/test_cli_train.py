"""``rltrader train`` flags, ``compare`` and ``clear-cache --dry-run``: parse -> config, no training.

Every flag must reach the config key it names, both in the CLI's own config (used for
the progress display) and in the config the Prefect flow builds from the request the
CLI hands it (after a JSON round trip, as a deployment's parameters arrive): the two
must be the same config.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from rltrader.app.arguments import request_from_args
from rltrader.app.cli import build_parser, main
from rltrader.config import load_config
from rltrader.jobs.requests import TrainRequest

SAMPLE = "data/XAUUSDm_15min.csv"


def _configs(*flags: str):
    args = build_parser().parse_args(["train", "--data_path", SAMPLE, *flags])
    request = request_from_args(args)
    flow_request = TrainRequest.model_validate(json.loads(request.model_dump_json()))
    return request.to_config(), flow_request.to_config(source="train-pipeline request"), args


@pytest.mark.parametrize("flag, value, key", [
    ("--seed", "7", "training.seed"),
    ("--iterations", "3", "training.iterations"),
    ("--total_timesteps", "30000", "training.total_timesteps"),
    ("--min_timesteps", "5000", "training.min_timesteps"),
    ("--early_stopping_patience", "5", "training.early_stopping_patience"),
    ("--convergence_threshold", "0.05", "training.convergence_threshold"),
    ("--eval_freq", "2048", "training.eval_freq"),
    ("--checkpoint_freq", "4096", "training.checkpoint_freq"),
    ("--cache_dir", "elsewhere", "cache.dir"),
    ("--point", "0.001", "data.point"),
    ("--sep", ";", "data.sep"),
    ("--spread_points", "20.0", "costs.spread_points"),
])
def test_each_value_flag_reaches_its_key(flag, value, key):
    cli, flow, _ = _configs(flag, value)
    section, name = key.split(".")
    got = getattr(getattr(cli, section), name)
    assert str(got) == value or got == type(got)(value)
    assert cli == flow


@pytest.mark.parametrize("flag, key", [
    ("--no-adaptive_timesteps", "optimizations.adaptive_timesteps"),
    ("--no-warm_start", "optimizations.warm_start"),
    ("--no-early_stopping", "optimizations.early_stopping"),
    ("--no-progressive_training", "optimizations.progressive_training"),
    ("--no-fast_evaluation", "optimizations.fast_evaluation"),
    ("--no-fast_engine", "optimizations.fast_engine"),
    ("--no-cache_environments", "optimizations.cache_environments"),
])
def test_each_switch_turns_only_its_optimization_off(flag, key):
    cli, flow, _ = _configs(flag)
    default = load_config()
    section, name = key.split(".")
    assert getattr(getattr(cli, section), name) is False
    assert cli.model_dump(exclude={section: {name}}) == default.model_dump(exclude={section: {name}})
    assert cli == flow


def test_profile_original_and_the_rest():
    cli, flow, args = _configs("--profile", "smoke", "--seed", "5", "--use_original_training",
                               "--parallel_candidates", "3", "--verbose", "0", "--benchmark_mode",
                               "--results_dir", "out", "--config", "configs/default.yaml")
    assert cli.training.iterations == 2 and cli.training.seed == 5  # the profile, then the flag
    assert not any(cli.optimizations.model_dump().values()) and not cli.optimizations.cache_environments
    assert cli == flow
    assert (args.parallel_candidates, args.verbose, args.benchmark_mode, args.results_dir) == (3, 0, True, Path("out"))


def test_a_switch_left_on_keeps_what_the_config_file_says(tmp_path):
    raw = load_config().model_dump(mode="json")
    raw["optimizations"]["warm_start"] = False
    import yaml

    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(raw))
    cli, flow, _ = _configs("--config", str(path))
    assert cli.optimizations.warm_start is False and flow.optimizations.warm_start is False


@pytest.mark.parametrize("flags, expected", [
    (["--seed", "abc"], "argument --seed: invalid int value: 'abc'"),
    (["--verbose", "3"], "argument --verbose: invalid choice: 3"),
    (["--seed", "-1"], "training.seed"),
    (["--iterations", "0"], "training.iterations"),
    (["--min_timesteps", "90000"], "min_timesteps must not exceed total_timesteps"),
    (["--profile", "nope"], "profile 'nope' is not defined"),
    (["--parallel_candidates", "0"], "--parallel_candidates must be 1 or more"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_flag_values_give_one_line(flags, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(["train", "--data_path", SAMPLE, *flags]))
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert expected in error and "\n" not in error and "Traceback" not in error


FINISHED_RUN = Path(__file__).resolve().parent / "fixtures" / "state_v1" / "finished" / "optimization_summary.json"


def _summary(run_dir: Path, seconds: float, score: float, timesteps: int, test_sharpe: float = 1.0,
             seed: int = 42) -> None:
    """A finished run's summary (one written by rltrader 0.1) with these figures."""
    run_dir.mkdir(parents=True)
    summary = json.loads(FINISHED_RUN.read_text())
    summary.update(total_time_seconds=seconds, total_timesteps=timesteps, early_stops=1, warm_starts=2,
                   report=str(run_dir / "report" / "report.md"), seed=seed)
    summary["best_model"].update(score=score, metric="sharpe")
    summary["test"]["agent"]["sharpe"] = test_sharpe
    (run_dir / "optimization_summary.json").write_text(json.dumps(summary))


def test_compare_judges_quality_on_test_over_seeds_with_an_interval(tmp_path, capsys):
    originals, optimizeds = [], []
    for index, (before, after) in enumerate([(1.0, 1.2), (2.0, 2.1), (0.5, 0.9), (1.5, 1.4), (3.0, 3.3)]):
        # the optimized side's validation scores are far lower: validation never decides
        _summary(tmp_path / f"o{index}", 600.0, 5.0, 400_000, test_sharpe=before, seed=42 + 1000 * index)
        _summary(tmp_path / f"p{index}", 150.0, -5.0, 120_000, test_sharpe=after, seed=42 + 1000 * index)
        originals.append(str(tmp_path / f"o{index}"))
        optimizeds.append(str(tmp_path / f"p{index}"))
    assert main(["compare", "--original", *originals, "--optimized", *optimizeds, "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    differences = [0.2, 0.1, 0.4, -0.1, 0.3]
    assert figures["differences"] == pytest.approx(differences)
    half = 2.132 * statistics.stdev(differences) / 5 ** 0.5  # Student t, 4 degrees of freedom, 90%
    assert figures["difference_interval"] == pytest.approx([0.18 - half, 0.18 + half])
    assert figures["quality_metric"] == "test_sharpe" and figures["quality_held"] is True
    assert figures["speedup"] == 4.0 and len(figures["pairs"]) == 5
    assert main(["compare", "--original", *originals, "--optimized", *optimizeds]) == 0
    out = capsys.readouterr().out
    assert "speedup 4.00x; quality held (test Sharpe, optimized - original 0.18, 90% interval" in out
    assert "10.0 min" in out and "2.5 min" in out


def test_compare_says_not_shown_for_one_seed_or_a_wide_interval_and_names_a_missing_run(tmp_path, capsys):
    _summary(tmp_path / "a", 100.0, 1.0, 10, test_sharpe=2.0)
    _summary(tmp_path / "b", 50.0, 9.0, 10, test_sharpe=2.5)
    main(["compare", "--original", str(tmp_path / "a"), "--optimized", str(tmp_path / "b")])
    assert "speedup 2.00x; quality not shown (test Sharpe: optimized - original 0.50 on 1 seed: no interval" in \
        capsys.readouterr().out
    _summary(tmp_path / "c", 100.0, 1.0, 10, test_sharpe=5.0)
    _summary(tmp_path / "d", 50.0, 1.0, 10, test_sharpe=-4.0)
    main(["compare", "--original", str(tmp_path / "a"), str(tmp_path / "c"),
          "--optimized", str(tmp_path / "b"), str(tmp_path / "d")])
    assert "quality not shown (test Sharpe, optimized - original -4.25" in capsys.readouterr().out
    assert main(["compare", "--original", str(tmp_path / "a"), "--optimized", str(tmp_path / "nope")]) == 2
    assert "nope: no optimization_summary.json" in capsys.readouterr().err
    assert main(["compare", "--original", str(tmp_path / "a"), "--optimized", str(tmp_path / "b"),
                 str(tmp_path / "d")]) == 2
    assert "as many original runs as optimized ones" in capsys.readouterr().err


def test_clear_cache_dry_run_removes_nothing(tmp_path, capsys):
    from rltrader.features.preparation import preprocess

    cache = tmp_path / "cache"
    preprocess(SAMPLE, load_config().with_overrides({"cache.dir": str(cache)}))
    before = sorted(path for path in cache.rglob("*"))
    assert main(["clear-cache", "--dry-run", "--cache_dir", str(cache)]) == 0
    assert "would remove" in capsys.readouterr().out
    assert sorted(path for path in cache.rglob("*")) == before and before


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("preprocess", "evaluate", "train", "compare", "mode", "serve", "clear-cache"):
        assert command in out


def test_a_resumed_run_says_from_where_at_the_default_verbosity(tmp_path):
    """``tests/fixtures/state_v1/interrupted``: iteration 1 of 2 trained, iteration 2 checkpointed at 256 timesteps."""
    import shutil

    from rltrader.display.training import resume_line
    from rltrader.training.resume import resume_point

    run_dir = tmp_path / "run"
    shutil.copytree(Path(__file__).parent / "fixtures" / "state_v1" / "interrupted", run_dir)
    point = resume_point(run_dir)
    assert resume_line(point, 2) == (f"Resuming {run_dir}: 1 of 2 iterations trained; iteration 2 goes on from its "
                                     "checkpoint at 256 timesteps")
    assert resume_point(run_dir, lambda: {"data_sha256": "another file", "config": {}}) is None  # not this run: not resumed
    assert resume_point(tmp_path / "new") is None
