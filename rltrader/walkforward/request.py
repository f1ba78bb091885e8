"""What a walk-forward is asked to do: ``rltrader walkforward``'s flags and the ``walk-forward`` flow's parameter.

Like :class:`~rltrader.request.TrainRequest`, one model serves the command line (flags
generated from the fields) and the Prefect UI (a validated form); values left unset fall
back to the config's ``walk_forward:`` section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field

from rltrader.config import Config, load_config, parse_config
from rltrader.request import DEFAULT_DATA, AccountFields


class WalkForwardRequest(AccountFields):
    """Train and test on consecutive windows of one bar file, one run per fold and seed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_path: str = Field(DEFAULT_DATA, description="bar file (CSV/TSV export or parquet)")
    config: str | None = Field(None, description="YAML config (default: configs/default.yaml)")
    name: str | None = Field(None, description="results go to RESULTS_DIR/walkforward-NAME (default: file stem)")
    folds: int | None = Field(None, ge=1, description="test windows, back to back up to the file's end "
                                                      "(default: walk_forward.folds)")
    train_bars: int | None = Field(None, ge=2, description="bars of each training window (with --test_bars)")
    test_bars: int | None = Field(None, ge=2, description="bars of each test window (with --train_bars)")
    validation_bars: int | None = Field(None, ge=2, description="bars of each validation window (default: test_bars)")
    scheme: Literal["rolling", "anchored"] | None = Field(
        None, description="rolling (fixed train length) or anchored (train from the first bar); default: config")
    seeds: list[int] | None = Field(None, description="a run per fold and seed (default: walk_forward.seeds)")
    warm_start_folds: bool | None = Field(
        None, description="fold k+1 starts from fold k's best model of the same seed (default: config, off)")
    parallel: int | None = Field(
        None, ge=1, description="runs trained at once in performance mode; quiet keeps one (default: 1)")
    profile: str | None = Field(None, description="every fold's training budget, a profile (default: quick)")
    results_dir: str = Field("results", description="the walk-forward goes to RESULTS_DIR/walkforward-NAME/")
    cache_dir: str | None = Field(None, description="cache directory (default: cache.dir, ./cache)")
    dask_address: str | None = Field(
        None, description="train on the Dask cluster at this scheduler address, e.g. tcp://host:8786")
    settings_file: str | None = Field(
        None, description="performance mode file read before every update (default: settings.json)")

    @property
    def walk_name(self) -> str:
        return self.name or Path(self.data_path).stem

    @property
    def root(self) -> Path:
        return Path(self.results_dir) / f"walkforward-{self.walk_name}"

    def to_config(self, source: str = "command line") -> Config:
        """The walk-forward's config: the file, then the named values (``walk_forward.*``)."""
        named: dict[str, Any] = {f"walk_forward.{name}": getattr(self, name) for name in (
            "folds", "train_bars", "test_bars", "validation_bars", "scheme", "seeds", "warm_start_folds", "parallel",
            "profile")}
        config = load_config(self.config).with_overrides(
            {"cache.dir": self.cache_dir, **self.account_overrides(), **named}, source=source)
        if self.test_bars is None or self.folds is not None:
            return config
        raw = config.model_dump(mode="json")  # sizes without a count: as many folds as fit
        return parse_config({**raw, "walk_forward": {**raw["walk_forward"], "folds": None}}, source=source)

    def run_config(self, base: Config, seed: int) -> Config:
        """What each fold's run trains with: the walk-forward's profile, and the seed."""
        profiled = base.with_profile(base.walk_forward.profile)
        return profiled.with_overrides({"training.seed": seed}, source=f"walk-forward seed {seed}")


__all__ = ["WalkForwardRequest"]
