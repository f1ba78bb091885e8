"""The Prefect layer: cached task keyed on content, healing, artifacts, and the CLI on top."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect import flow

from flows.preprocess import preprocess_flow
from rltrader.app.cli import main
from rltrader.features.cache import PREFECT_RECORDS_DIR
from rltrader.features.preparation import PreparedData
from tasks.preprocess import preprocess_task

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_flow_caches_by_content_and_heals_a_deleted_parquet(sample_csv, config, cache_dir):
    params = config.model_dump(mode="json")
    first = PreparedData.from_dict(preprocess_flow(str(sample_csv), params))
    second = PreparedData.from_dict(preprocess_flow(str(sample_csv), params))
    assert (first.cache_hit, second.cache_hit) == (False, True)
    records = list((cache_dir / PREFECT_RECORDS_DIR).iterdir())
    assert [r.name for r in records] == ["preprocess-" + first.metadata["cache_key"]]

    first.parquet_path.unlink()
    healed = PreparedData.from_dict(preprocess_flow(str(sample_csv), params))
    assert not healed.cache_hit and healed.parquet_path.exists()
    assert len(healed.load()) == first.metadata["parquet"]["rows"]


def test_prefect_serves_the_record_without_running_the_task(sample_csv, config, cache_dir):
    params = config.model_dump(mode="json")
    storage = Path(cache_dir) / PREFECT_RECORDS_DIR

    @flow
    def twice() -> list[str]:
        task = preprocess_task.with_options(result_storage=storage)
        return [task(str(sample_csv), params, True, return_state=True).name for _ in range(2)]

    assert twice() == ["Completed", "Cached"]


def test_cache_switch_off_writes_no_prefect_record(sample_csv, config, cache_dir):
    result = PreparedData.from_dict(preprocess_flow(str(sample_csv), config.model_dump(mode="json"), use_cache=False))
    assert not result.cache_hit and result.parquet_path.exists()
    assert not (cache_dir / PREFECT_RECORDS_DIR).exists()


def test_flow_publishes_the_data_report_artifact(sample_csv, config):
    from prefect.artifacts import Artifact

    preprocess_flow(str(sample_csv), config.model_dump(mode="json"))
    artifact = Artifact.get("data-report")
    assert artifact is not None and "| bars | 5,864 from 2024-01-02 01:00 to 2024-04-01 23:45 |" in artifact.data


def test_cli_preprocess_prints_the_report_then_hits(sample_csv, cache_dir, capsys):
    args = ["preprocess", "--data_path", str(sample_csv), "--cache_dir", str(cache_dir)]
    assert main(args) == 0
    out = capsys.readouterr().out
    for expected in ("MetaTrader 5 Python API", "5,864 from 2024-01-02 01:00", "15 min", "train", "validation",
                     "test", "bars.parquet"):
        assert expected in out, expected
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and line.split()}
    assert rows["cache"].split()[1] == "miss"
    assert "spread charged  the file's per-bar spread column, half at each fill" in out
    assert main(args) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ") and line.split()}
    assert rows["cache"].split()[1] == "hit"


def test_cli_user_error_inside_the_task_prints_no_traceback(sample_csv, tmp_path, capfd):
    bad = tmp_path / "bad.csv"
    lines = sample_csv.read_text().splitlines()[:300]
    fields = lines[9].split(",")
    fields[2] = f"{float(fields[3]) - 0.5:.2f}"  # high a little below low (far below would be a jump)
    lines[9] = ",".join(fields)
    bad.write_text("\n".join(lines) + "\n")
    assert main(["preprocess", "--data_path", str(bad), "--cache_dir", str(tmp_path / "c")]) == 2
    captured = capfd.readouterr()
    assert "Traceback" not in captured.out + captured.err
    errors = [line for line in captured.err.splitlines() if line.startswith("rltrader:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"rltrader: error: {bad}: line 10: inconsistent bar, high ")
    assert "is below low" in errors[0]
    assert not (tmp_path / "c").exists()  # no features, and no Prefect record of the failure either


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in sorted(root.rglob("*"))} if root.exists() else {}


def test_rejected_files_leave_a_cache_in_use_exactly_as_it_was(sample_csv, config, cache_dir, tmp_path):
    """Through the Prefect task, as `rltrader preprocess` runs it: a failed task persists its exception as a
    result record unless forget_failure removes it; every kind of bad file, and a file without a spread."""
    from test_bad_input import _bad_files

    from rltrader.errors import DataError

    params = config.model_dump(mode="json")
    preprocess_flow(str(sample_csv), params)  # the cache holds a good file's features and record
    before = _snapshot(cache_dir)
    assert any(name.startswith(PREFECT_RECORDS_DIR) for name in before)
    header, *rows = sample_csv.read_text().splitlines()
    spread = header.split(",").index("spread")
    no_spread = "\n".join(",".join(field for i, field in enumerate(line.split(",")) if i != spread)
                          for line in [header, *rows[:400]]) + "\n"
    cases = {**_bad_files(sample_csv), "no_spread_column": (no_spread, r"no spread column.*--spread_points")}
    for case, (content, pattern) in cases.items():
        path = tmp_path / f"{case}.csv"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        with pytest.raises(DataError, match=pattern):
            preprocess_flow(str(path), params)
        assert _snapshot(cache_dir) == before, case
