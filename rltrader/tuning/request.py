"""What a search is asked to do: ``rltrader tune``'s flags and the ``tune`` flow's one parameter.

Like :class:`~rltrader.request.TrainRequest`, one model serves the command line (flags
generated from the fields) and the Prefect UI (a form); unset values fall back to the
config's ``tune:`` section.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from rltrader.config import Config, load_config
from rltrader.request import DEFAULT_DATA


class TuneRequest(BaseModel):
    """An Optuna study over ``tune.space`` on one bar file; the best trial becomes a config file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_path: str = Field(DEFAULT_DATA, description="bar file the trials train on (CSV/TSV export or parquet)")
    config: str | None = Field(None, description="YAML config to search around (default: configs/default.yaml)")
    name: str | None = Field(None, description="study name; results go to RESULTS_DIR/tune-NAME (default: file stem)")
    trials: int | None = Field(None, ge=1, description="finished trials to reach (default: tune.trials)")
    workers: int | None = Field(None, ge=1, description="trials trained at once (default: tune.workers)")
    profile: str | None = Field(None, description="each trial's training budget, a profile (default: tune.profile)")
    storage: str | None = Field(None, description="Optuna RDB URL shared by several machines (default: SQLite)")
    seed: int | None = Field(None, description="training seed of every trial (default: training.seed)")
    results_dir: str = Field("results", description="the study goes to RESULTS_DIR/tune-NAME/ (default: results)")
    cache_dir: str | None = Field(None, description="cache directory (default: cache.dir, ./cache)")
    dask_address: str | None = Field(
        None, description="train trials on the Dask cluster at this scheduler address, e.g. tcp://host:8786")
    settings_file: str | None = Field(
        None, description="performance mode file read before every update (default: settings.json)")

    @property
    def study_name(self) -> str:
        return self.name or Path(self.data_path).stem

    @property
    def root(self) -> Path:
        """The study's directory, ``RESULTS_DIR/tune-NAME`` (``rltrader.tuning.study.study_dir``)."""
        return Path(self.results_dir) / f"tune-{self.study_name}"

    def to_config(self, source: str = "command line") -> Config:
        """The config searched around: the file, then the named values (``tune.*``, ``training.seed``)."""
        return load_config(self.config).with_overrides({
            "cache.dir": self.cache_dir, "training.seed": self.seed, "tune.trials": self.trials,
            "tune.workers": self.workers, "tune.profile": self.profile, "tune.storage": self.storage,
        }, source=source)


__all__ = ["TuneRequest"]
