"""A trained model as one self-contained directory: what deciding on new bars needs, and nothing else.

A run's ``best_model.zip`` cannot decide anything alone: its features, their train-split
normalization, the instrument, sizing and costs live in the bar file, the config and the cache
it trained with. A bundle holds them all, so a machine that never saw the training can use it:

- ``policy.zip``: the policy (recurrent or feed-forward), an ordinary SB3 zip;
- ``bundle.json``: the feature definition and column order, the train-split normalization,
  the observation window, the environment, the account, instrument, sizing and cost terms, the
  bar interval, the warm-up (bars of history needed before the first decision: the longest
  feature window, or as many bars as the slowest exponential average needs to forget its start
  to ``EMA_TOLERANCE``), the fingerprint of the training data, and the run's validation and test
  figures;
- ``manifest.json``: the schema version and the SHA-256 of every other file, written last.

:func:`read_bundle` refuses, in one line, a directory whose files do not match their manifest, or
of a schema version this code does not know. A bundle is written whole or not at all: into a
temporary sibling, then renamed into place.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from rltrader import __version__
from rltrader.atomic import TEMP_PREFIX, fsync_directory, write_json
from rltrader.config import Config, EnvConfig, FeatureConfig, as_written_before
from rltrader.data.loader import infer_point
from rltrader.engine.model_files import saved_algorithm
from rltrader.env.account import account_terms
from rltrader.errors import UserInputError
from rltrader.features.cache import file_digest
from rltrader.features.pipeline import warmup_bars
from rltrader.features.preparation import PreparedData

SCHEMA_VERSION = 1
POLICY_FILE = "policy.zip"
DESCRIPTION_FILE = "bundle.json"
MANIFEST_FILE = "manifest.json"
EMA_TOLERANCE = 1e-12
"""How far an exponential average started at the first bar of a history may still be from one started
at the first bar of the training file, relative to its inputs: the warm-up covers that many bars."""


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


def ema_warmup_bars(features: FeatureConfig, tolerance: float = EMA_TOLERANCE) -> int:
    """Bars after which every exponential average of ``features`` has forgotten its start to ``tolerance``.

    An average with weight ``alpha`` on the new value keeps ``(1 - alpha) ** n`` of its start after
    ``n`` bars; Wilder's ATR and RSI use ``alpha = 1 / period``, MACD's ``2 / (span + 1)``."""
    alphas = [1.0 / period for period in (features.atr_period, features.rsi_period) if period]
    if features.macd:
        alphas += [2.0 / (span + 1.0) for span in (features.macd.fast, features.macd.slow, features.macd.signal)]
    if not alphas:
        return 0
    return max(math.ceil(math.log(tolerance) / math.log(1.0 - alpha)) for alpha in alphas)


def history_needed(features: FeatureConfig, has_volume: bool, window_size: int = 1) -> int:
    """Bars of history before the first decision: the longest feature window, or the exponential
    averages' convergence, whichever is longer, plus the ``window_size - 1`` earlier bars the first
    observation holds (each must have converged features too)."""
    return max(warmup_bars(features, has_volume), ema_warmup_bars(features)) + window_size - 1


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


def write_bundle(target: str | Path, policy: str | Path, description: BundleDescription,
                 extra: dict[str, bytes] | None = None) -> Path:
    """Write the bundle into ``target`` whole or not at all (a temporary sibling renamed into place).

    :param target: the bundle's directory; a bundle already there is replaced
    :param policy: the model zip to bundle
    :param description: what :func:`describe` returned
    :param extra: more files by name (an ONNX graph and its parity report); the manifest lists them too
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f"{TEMP_PREFIX}{target.name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        shutil.copyfile(policy, staging / POLICY_FILE)
        write_json(staging / DESCRIPTION_FILE, description.model_dump(mode="json"))
        for name, content in (extra or {}).items():
            (staging / name).write_bytes(content)
        files = {name: file_digest(staging / name) for name in (POLICY_FILE, DESCRIPTION_FILE, *(extra or {}))}
        write_json(staging / MANIFEST_FILE, {"schema_version": SCHEMA_VERSION, "files": files})
        fsync_directory(staging)
        replaced = target.parent / f"{TEMP_PREFIX}{target.name}-old-{os.getpid()}"
        if target.exists():
            target.rename(replaced)
        staging.rename(target)
        fsync_directory(target.parent)
        shutil.rmtree(replaced, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def read_bundle(root: str | Path) -> Bundle:
    """A bundle whose every file matches its manifest; a one-line :class:`BundleError` otherwise."""
    root = Path(root)
    manifest_path = root / MANIFEST_FILE
    if not manifest_path.is_file():
        raise BundleError(root, f"not a model bundle (no {MANIFEST_FILE}); pass the directory `rltrader export` "
                                "wrote, or a run's bundle/")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        version, files = manifest["schema_version"], dict(manifest["files"])
    except (ValueError, KeyError, TypeError):
        raise BundleError(manifest_path, "unreadable manifest; export the bundle again") from None
    if version != SCHEMA_VERSION:
        raise BundleError(root, f"bundle schema version {version!r}, this rltrader {__version__} reads version "
                                f"{SCHEMA_VERSION}; export it again with this version")
    for name in (POLICY_FILE, DESCRIPTION_FILE):
        if name not in files:
            raise BundleError(manifest_path, f"lists no {name}; export the bundle again")
    for name, expected in sorted(files.items()):
        path = root / name
        if not path.is_file():
            raise BundleError(path, "missing from the bundle; export it again")
        if file_digest(path) != expected:
            raise BundleError(path, "does not match the bundle's manifest (changed after export); export it again")
    try:
        description = BundleDescription.model_validate_json((root / DESCRIPTION_FILE).read_text(encoding="utf-8"))
    except ValidationError as error:
        where = ".".join(str(part) for part in error.errors()[0]["loc"])
        raise BundleError(root / DESCRIPTION_FILE, f"not a bundle description ({where}: "
                                                   f"{error.errors()[0]['msg']})") from None
    return Bundle(root=root, description=description)


def source_bundle(source: str | Path) -> Bundle:
    """The verified bundle of a finished run's directory (``source/bundle``), or a bundle itself.

    :raises BundleError: a source without a bundle, or a bundle that fails its manifest
    """
    source = Path(source)
    if not source.is_dir():
        raise BundleError(source, "not a directory; pass a finished run's directory (e.g. results/42) or a bundle")
    root = source if (source / MANIFEST_FILE).is_file() else source / "bundle"
    if not (root / MANIFEST_FILE).is_file():
        if (source / "optimization_summary.json").is_file():
            raise BundleError(source, "finished before rltrader wrote bundles; run its `rltrader train` command "
                                      "again (a finished run redoes only its final report, which writes bundle/)")
        raise BundleError(source, "holds no finished run and no bundle; pass a finished run's directory, "
                                  "e.g. results/42")
    return read_bundle(root)


def export_bundle(source: str | Path, out: str | Path, extra: dict[str, bytes] | None = None) -> Bundle:
    """Copy the bundle of a finished run (``source/bundle``), or a bundle itself, to ``out``, verified.

    :param source: a finished run's directory, or a bundle directory
    :param out: where the bundle goes: a new directory, or one holding a bundle (replaced)
    :param extra: files to add (an ONNX graph and its parity report), listed in the manifest
    :raises BundleError: a source without a bundle, a bundle that fails its manifest, or an ``out``
        that holds something else; nothing is written then
    """
    bundle = source_bundle(source)
    out = Path(out)
    if out.resolve() == bundle.root.resolve():
        raise BundleError(out, "is the bundle itself; pass another --out")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST_FILE).is_file())):
        raise BundleError(out, "exists and is not a bundle; pass a new directory to --out")
    write_bundle(out, bundle.policy_path, bundle.description, extra)
    return read_bundle(out)


__all__ = ["DESCRIPTION_FILE", "EMA_TOLERANCE", "MANIFEST_FILE", "POLICY_FILE", "SCHEMA_VERSION", "Bundle",
           "BundleDescription", "BundleError", "TrainingData", "describe", "ema_warmup_bars", "export_bundle",
           "history_needed", "read_bundle", "source_bundle", "write_bundle"]
