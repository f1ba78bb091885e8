"""What a bundle says about its model: the feature definition, normalization, environment, account, costs,
warm-up and figures (``bundle.json``), and the verified handle to a bundle on disk.

The warm-up is the bars of history needed before the first decision: the longest feature window, or as
many bars as the slowest exponential average needs to forget its start to :data:`EMA_TOLERANCE`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from rltrader import __version__
from rltrader.config import Config, EnvConfig, FeatureConfig, as_written_before
from rltrader.data.loader import infer_point
from rltrader.engine.model_files import saved_algorithm
from rltrader.env.account import account_terms
from rltrader.errors import UserInputError
from rltrader.features.pipeline import EMA_TOLERANCE, ema_warmup_bars, warmup_bars
from rltrader.features.preparation import PreparedData

SCHEMA_VERSION = 1
POLICY_FILE = "policy.zip"
DESCRIPTION_FILE = "bundle.json"
MANIFEST_FILE = "manifest.json"


class BundleError(UserInputError):
    """A bundle that cannot be used: missing, tampered with, or of an unknown schema."""

    def __init__(self, path: str | Path, message: str) -> None:
        super().__init__(f"{path}: {message}")


class TrainingData(BaseModel):
    """Which bars the model trained on: enough to tell a different file from more of the same."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    sha256: str
    start: str
    end: str
    bars: int


class BundleDescription(BaseModel):
    """``bundle.json``: everything but the weights that deciding on a new bar needs.

    :param schema_version: the bundle layout this describes (:data:`SCHEMA_VERSION`)
    :param algorithm: ``recurrent`` (LSTM policy, carries (h, c) between bars) or ``feedforward``
    :param features: the feature definition (``features:`` of the config)
    :param feature_columns: the features in the observation's order
    :param normalization: train-split mean and std per feature, and the clip
    :param window_size: bars of features in one observation
    :param env: the environment the policy trained in (reward, sizing, limits)
    :param account: the account, instrument, sizing and conversion terms, as reports state them
    :param costs: spread, commission and swap terms
    :param symbol: the traded symbol (None when neither the config nor the file name says it: a synthetic market)
    :param bar_interval_seconds: the bars' interval; a file of another interval is refused
    :param warmup_bars: bars of history before the first decision: the features' longest window or the
        exponential averages' convergence, plus the observation window's earlier bars
    :param loading: how the training bar file was read (separator, date format, point); new bars are
        read the same way (None in bundles written before it was recorded: the defaults)
    :param spread_point: the price of one spread point when costs use a fixed ``spread_points`` (inferred
        from the training prices when the config left ``data.point`` empty); None with a spread column
    :param test_split: the first and last bar times of the run's test split (what an export verifies on);
        None in bundles written before it was recorded
    :param training_data: the bars the model trained on
    :param figures: the run's validation and test figures (agent and buy-and-hold)
    :param seed: the run's seed
    :param method: ``optimized``, ``original`` or ``custom``
    :param trust: the figures that judge the model (:mod:`rltrader.training.trust`): test intervals, selection
        trials and deflated Sharpe, cost stress, live-stream parity, a study's PBO, a CPCV; None in bundles
        written before it was kept
    :param created_at: when the bundle was written (UTC)
    :param rltrader_version: the version that wrote it
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int
    algorithm: str
    features: dict[str, Any]
    feature_columns: list[str]
    normalization: dict[str, Any]
    window_size: int
    env: dict[str, Any]
    account: dict[str, Any]
    costs: dict[str, Any]
    symbol: str | None
    bar_interval_seconds: float
    warmup_bars: int
    loading: dict[str, Any] | None = None
    spread_point: float | None = None
    test_split: dict[str, str] | None = None
    training_data: TrainingData
    figures: dict[str, Any]
    seed: int
    method: str
    trust: dict[str, Any] | None = None
    created_at: str
    rltrader_version: str

    @property
    def feature_config(self) -> FeatureConfig:
        """The features as the bundle's model was trained on them (a bundle from before calendar harmonics
        and signed volume computes neither)."""
        return FeatureConfig.model_validate(as_written_before("features", self.features))

    @property
    def env_config(self) -> EnvConfig:
        return EnvConfig.model_validate(as_written_before("env", self.env))


class Bundle(BaseModel):
    """A verified bundle on disk: its directory and its description."""

    model_config = ConfigDict(frozen=True)

    root: Path
    description: BundleDescription

    @property
    def policy_path(self) -> Path:
        return self.root / POLICY_FILE


def history_needed(features: FeatureConfig, has_volume: bool, window_size: int = 1) -> int:
    """Bars of history before the first decision: the longest feature window, or the exponential
    averages' convergence, whichever is longer, plus the ``window_size - 1`` earlier bars the first
    observation holds (each must have converged features too)."""
    return max(warmup_bars(features, has_volume), ema_warmup_bars(features, EMA_TOLERANCE)) + window_size - 1


def describe(config: Config, prepared: PreparedData, data_path: str | Path, policy: Path,
             figures: dict[str, Any], method: str) -> BundleDescription:
    """The description of a run's model: its config, its prepared data's metadata, its figures.

    :param config: the run's config
    :param prepared: the data the run trained on (its normalization, columns, bars)
    :param data_path: the bar file (its name gives the symbol when the config does not)
    :param policy: the model zip (its weights say which algorithm saved it)
    :param figures: the run's validation and test figures
    :param method: the run's method
    """
    meta = prepared.metadata
    terms = account_terms(config, data_path)
    columns = prepared.feature_columns
    return BundleDescription(
        schema_version=SCHEMA_VERSION, algorithm=saved_algorithm(policy),
        features=config.features.model_dump(mode="json"), feature_columns=columns,
        normalization=meta["features"]["normalization"], window_size=config.env.window_size,
        env=config.env.model_dump(mode="json"), account=terms.to_json(), costs=config.costs.model_dump(mode="json"),
        symbol=terms.instrument.symbol, bar_interval_seconds=float(meta["bars"]["interval_seconds"]),
        warmup_bars=history_needed(config.features, "volume_z" in columns, config.env.window_size),
        loading=config.data.model_dump(mode="json"), spread_point=_spread_point(config, prepared),
        test_split={"start": str(meta["splits"]["test"]["start"]), "end": str(meta["splits"]["test"]["end"])},
        training_data=TrainingData(path=str(meta["source"]["path"]), sha256=str(meta["source"]["sha256"]),
                                   start=str(meta["bars"]["start"]), end=str(meta["bars"]["end"]),
                                   bars=int(meta["bars"]["count"])),
        figures=figures, seed=config.training.seed, method=method,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"), rltrader_version=__version__)


def _spread_point(config: Config, prepared: PreparedData) -> float | None:
    """The point a fixed spread is counted in, as :class:`~rltrader.env.market.MarketData` reads it."""
    if config.costs.spread_points is None:
        return None
    if config.data.point is not None:
        return float(config.data.point)
    return float(infer_point(prepared.load(columns=["close"])["close"].to_numpy(dtype=float))[0])


__all__ = ["DESCRIPTION_FILE", "EMA_TOLERANCE", "MANIFEST_FILE", "POLICY_FILE", "SCHEMA_VERSION", "Bundle",
           "BundleDescription", "BundleError", "TrainingData", "describe", "ema_warmup_bars", "history_needed"]
