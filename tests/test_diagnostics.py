"""SB3's own training diagnostics reach TensorBoard and ``progress.csv``, on one x axis for the run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rltrader.config import load_config
from rltrader.training.diagnostics import ContinuedCSVOutputFormat
from rltrader.training.trainer import Trainer

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "XAUUSDm_15min.csv"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("diagnostics-cache")
    config = load_config().with_profile("smoke").with_overrides({"cache.dir": str(cache)})
    run_dir = tmp_path_factory.mktemp("diagnostics") / "run"
    Trainer(config, SAMPLE, run_dir).run()
    return run_dir


def _scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_a_smoke_run_writes_sb3_diagnostics_to_tensorboard(smoke_run):
    scalars = _scalars(smoke_run)
    for tag in ("train/approx_kl", "train/explained_variance", "train/clip_fraction", "train/policy_gradient_loss",
                "train/value_loss", "train/entropy_loss", "time/fps", "performance_mode/batch_size",
                "train/risk_aversion"):
        assert scalars.get(tag), f"{tag} missing from {sorted(scalars)}"
    # each update's diagnostics sit at the run's timesteps when its rollout ended: one point per update, the
    # second iteration's after the first's (learn() itself counts from zero each time)
    state = json.loads((smoke_run / "run_state.json").read_text())
    rollout = 512  # the smoke profile: 4 accounts x 128 steps
    expected, done = [], 0
    for record in state["iterations"]:
        updates = -(-record["timesteps"] // rollout)
        expected += [done + rollout * (k + 1) for k in range(updates)]
        done += record["timesteps"]
    assert [step for step, _ in scalars["train/approx_kl"]] == expected
    # the reward's risk aversion was set before every update, never below the configured floor
    assert [step for step, _ in scalars["train/risk_aversion"]] == expected
    floor = load_config().with_profile("smoke").env.risk_aversion
    assert min(value for _, value in scalars["train/risk_aversion"]) >= floor * (1 - 1e-6)  # TensorBoard: float32


def test_progress_csv_holds_the_same_rows(smoke_run):
    rows = list(csv.DictReader((smoke_run / "tensorboard" / "progress.csv").open()))
    kl = [(int(row["time/run_timesteps"]), float(row["train/approx_kl"])) for row in rows if row.get("train/approx_kl")]
    board = _scalars(smoke_run)["train/approx_kl"]
    assert [step for step, _ in kl] == [step for step, _ in board]
    assert [value for _, value in kl] == pytest.approx([value for _, value in board], rel=1e-6)  # TensorBoard: float32


def test_the_csv_continues_a_previous_process_and_drops_a_torn_row(tmp_path):
    path = tmp_path / "progress.csv"
    first = ContinuedCSVOutputFormat(str(path))
    first.write({"a": 1}, {}, 0)
    first.write({"a": 2, "b": 3}, {}, 1)  # a new key rewrites the header, as SB3 does
    first.close()
    path.write_text(path.read_text() + "9,")  # a kill in the middle of the next row
    resumed = ContinuedCSVOutputFormat(str(path))
    resumed.write({"a": 4, "b": 5}, {}, 2)
    resumed.close()
    assert path.read_text().splitlines() == ["a,b", "1,", "2,3", "4,5"]
