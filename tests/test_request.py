"""One training request: the CLI's flags are generated from it, and the CLI, the flow and the
deployments build the same config from it (no Prefect server needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deployments.serve import build_deployments, default_request
from flows.train import train_pipeline
from rltrader.app.arguments import request_from_args
from rltrader.app.cli import build_parser
from rltrader.config import load_config
from rltrader.jobs.requests import FLOW_ONLY, SWITCHES, TrainRequest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLE = PROJECT_ROOT / "data" / "XAUUSDm_15min.csv"

FLAGS_BEFORE_THE_REQUEST = {  # `rltrader train --help` of rltrader 0.1, the guide's spellings
    "-h", "--help", "--data_path", "--date_format", "--dayfirst", "--no-dayfirst", "--sep", "--point", "--config",
    "--cache_dir", "--profile", "--results_dir", "--seed", "--iterations", "--total_timesteps", "--min_timesteps",
    "--early_stopping_patience", "--convergence_threshold", "--eval_freq", "--checkpoint_freq",
    "--no-adaptive_timesteps", "--no-warm_start", "--no-early_stopping", "--no-progressive_training",
    "--no-fast_evaluation", "--no-fast_engine", "--no-cache_environments", "--use_original_training",
    "--benchmark_mode", "--settings_file", "--parallel_candidates", "--verbose",
} | {"--benchmark_seeds"} | {  # added since: benchmark mode judges quality over several seeds;
    "--algorithm", "--window_size"} | {  # the feed-forward option and the observation window (issue 19)
    "--max_jump_mads"} | {  # how far a price may jump from both neighbouring bars (issue 24)
    "--sizing", "--equity_fraction", "--lots", "--account_currency", "--conversion_path", "--symbol",
    "--contract_size"} | {  # position size and the account currency (issue 23)
    "--spread_points", "--keep_candidates"}  # a fixed spread; forks kept after adoption (issue 22)


def _train_parser():
    commands = next(action for action in build_parser()._actions if action.dest == "command")
    return commands.choices["train"]


def test_train_lists_the_same_flags_as_before_each_one_a_request_field():
    parser = _train_parser()
    flags = {option for action in parser._actions for option in action.option_strings}
    assert flags == FLAGS_BEFORE_THE_REQUEST
    fields = {action.dest for action in parser._actions} - {"help", "benchmark_mode", "verbose"}
    assert fields == set(TrainRequest.model_fields) - set(FLOW_ONLY)  # every other flag is a request field
    for name, field in TrainRequest.model_fields.items():
        assert field.description, f"TrainRequest.{name} has no description"


def _argv(request: TrainRequest) -> list[str]:
    """The ``rltrader train`` command line that asks for ``request`` (flow-only fields left out)."""
    argv = ["train"]
    for name, value in request.model_dump(exclude_defaults=True).items():
        if name in SWITCHES:
            argv.append(f"--no-{name}")
        elif isinstance(value, bool):
            argv.append(f"--{name}" if value else f"--no-{name}")
        else:
            argv += [f"--{name}", str(value)]
    return argv


@pytest.mark.parametrize("fields", [
    {},
    {"profile": "smoke", "seed": 7, "iterations": 3, "no_switches": ["warm_start", "cache_environments"]},
    {"profile": "quick", "total_timesteps": 30000, "min_timesteps": 5000, "convergence_threshold": 0.05,
     "eval_freq": 2048, "checkpoint_freq": 4096, "early_stopping_patience": 5, "sep": ";", "point": 0.001,
     "dayfirst": True, "use_original_training": True, "parallel_candidates": 2},
])
def test_cli_flow_and_deployment_build_the_same_config_from_one_request(fields, tmp_path):
    fields = dict(fields)
    off = {name: False for name in fields.pop("no_switches", [])}
    paths = {"config": PROJECT_ROOT / "configs" / "default.yaml", "data_path": SAMPLE,
             "results_dir": tmp_path / "results", "settings_file": tmp_path / "settings.json",
             "cache_dir": tmp_path / "cache"}
    deployment_defaults = default_request(paths["config"], paths["data_path"], paths["results_dir"],
                                          paths["settings_file"], paths["cache_dir"])
    request = deployment_defaults.model_copy(update={**fields, **off})
    expected = request.to_config()

    # the CLI: flags -> parsed -> request -> config
    from_cli = request_from_args(build_parser().parse_args(_argv(request)))
    assert from_cli == request and from_cli.to_config() == expected

    # a deployment: its default request as Prefect stores it (JSON), the form's edits, Prefect's validation
    [train, *_] = build_deployments(load_config(), paths["config"], paths["data_path"], paths["results_dir"],
                                   paths["settings_file"], paths["cache_dir"])
    stored = json.loads(json.dumps(train.parameters))
    assert TrainRequest.model_validate(stored["request"]) == deployment_defaults
    edited = {"request": {**stored["request"], **json.loads(request.model_dump_json(exclude_defaults=True))}}
    validated = train_pipeline.validate_parameters(edited)
    assert validated["request"] == request
    assert validated["request"].to_config(source="train-pipeline request") == expected


def test_the_flow_parameter_is_one_form_of_documented_fields():
    schema = train_pipeline.parameters.model_dump()
    assert list(schema["properties"]) == ["request"]
    definition = schema["definitions"]["TrainRequest"]
    assert set(definition["properties"]) == set(TrainRequest.model_fields)
    assert all(prop.get("description") for prop in definition["properties"].values())


def test_request_errors_name_the_flag_or_field(capsys):
    from rltrader.app.cli import main

    assert main(["train", "--data_path", str(SAMPLE), "--parallel_candidates", "0"]) == 2
    assert capsys.readouterr().err.strip() == "rltrader: error: --parallel_candidates must be 1 or more, got 0"
    from prefect.exceptions import ParameterTypeError

    with pytest.raises(ParameterTypeError, match="parallel_candidates"):
        train_pipeline.validate_parameters({"request": {"parallel_candidates": 0}})
    with pytest.raises(ParameterTypeError, match="bogus"):
        train_pipeline.validate_parameters({"request": {"bogus": 1}})


def test_the_other_commands_take_their_reading_and_cache_flags_from_the_request(tmp_path):
    from rltrader.app.arguments import resolve_config

    parse = build_parser().parse_args
    off = resolve_config(parse(["preprocess", "--data_path", str(SAMPLE), "--no-cache_environments", "--sep", ";",
                                 "--cache_dir", str(tmp_path)]))
    assert off.optimizations.cache_environments is False and off.data.sep == ";" and off.cache.dir == tmp_path
    assert resolve_config(parse(["preprocess", "--data_path", str(SAMPLE)])).optimizations.cache_environments
    evaluate = resolve_config(parse(["evaluate", "--model", "m.zip", "--data_path", str(SAMPLE), "--seed", "9"]))
    assert evaluate == load_config()  # --seed there seeds the random baseline, not training
