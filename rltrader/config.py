"""Validated configuration.

The YAML files in ``configs/`` are parsed into these pydantic models. Unknown keys are
rejected (a typo must not silently fall back to a default), and every error names the
dotted key, e.g. ``configs/default.yaml: features.rsi_period: Input should be greater
than or equal to 2``. Later issues extend the model with training sections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rltrader.errors import ConfigError

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoadingConfig(_Strict):
    """How to read the bar file. ``None`` means: detect it from the file."""

    sep: str | None = Field(None, description="Column separator: ',', ';', '\\t' or 'tab'.")
    date_format: str | None = Field(None, description="strftime format of the timestamps.")
    dayfirst: bool | None = Field(None, description="Force day-first (True) or month-first (False).")
    point: float | None = Field(
        None, gt=0, description="Price of one spread point; inferred from price digits when unset."
    )

    @model_validator(mode="after")
    def _normalise_sep(self) -> "LoadingConfig":
        if self.sep is not None and self.sep.lower() in {"tab", "\\t"}:
            object.__setattr__(self, "sep", "\t")
        if self.sep is not None and len(self.sep) != 1:
            raise ValueError("sep must be one character, e.g. ',', ';' or 'tab'")
        return self


class MacdConfig(_Strict):
    fast: int = Field(12, ge=2)
    slow: int = Field(26, ge=3)
    signal: int = Field(9, ge=2)

    @model_validator(mode="after")
    def _fast_below_slow(self) -> "MacdConfig":
        if self.fast >= self.slow:
            raise ValueError("macd.fast must be smaller than macd.slow")
        return self


class BollingerConfig(_Strict):
    window: int = Field(20, ge=2)
    num_std: float = Field(2.0, gt=0)


class FeatureConfig(_Strict):
    """Which causal features to compute; every window counts bars, not time."""

    return_horizons: list[int] = Field([1, 4, 16, 64], min_length=1)
    volatility_windows: list[int] = Field([16, 64])
    atr_period: int | None = Field(14, ge=2)
    rsi_period: int | None = Field(14, ge=2)
    macd: MacdConfig | None = MacdConfig()
    bollinger: BollingerConfig | None = BollingerConfig()
    volume_zscore_window: int | None = Field(64, ge=2)
    spread: bool = True
    time_of_day: bool = True
    day_of_week: bool = True
    clip: float = Field(5.0, gt=0, description="Normalized features are clipped to +-clip.")

    @model_validator(mode="after")
    def _positive_windows(self) -> "FeatureConfig":
        for name in ("return_horizons", "volatility_windows"):
            if any(value < 1 for value in getattr(self, name)):
                raise ValueError(f"{name} must hold positive bar counts")
        if any(value < 2 for value in self.volatility_windows):
            raise ValueError("volatility_windows must be at least 2 bars")
        return self


class SplitConfig(_Strict):
    """Chronological split fractions; the gap keeps observation windows from straddling."""

    train: float = Field(0.7, gt=0, lt=1)
    validation: float = Field(0.15, gt=0, lt=1)
    test: float = Field(0.15, gt=0, lt=1)
    gap_bars: int | None = Field(
        None, ge=0, description="Bars left out between splits; at least env.window_size."
    )
    min_bars_per_split: int = Field(100, ge=1)

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> "SplitConfig":
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + validation + test must be 1.0, got {total:g}")
        return self


class EnvConfig(_Strict):
    """The trading environment: what the agent sees, what it may hold, how it is rewarded."""

    window_size: int = Field(32, ge=1, description="Bars of features in one observation.")
    initial_balance: float = Field(10_000.0, gt=0, description="Account equity at the start of an episode.")
    max_position_size: float = Field(
        1.0, gt=0, description="Units held at full long or short (ounces for XAUUSD); flat is 0."
    )
    reward: Literal["log", "relative"] = Field(
        "log", description="log(equity_t+1 / equity_t) or (equity_t+1 - equity_t) / equity_t, net of costs."
    )
    reward_scale: float = Field(100.0, gt=0, description="Rewards are multiplied by this (100 = percent).")
    max_drawdown: float | None = Field(
        0.5, gt=0, lt=1, description="Episode terminates when equity falls this far below its peak."
    )
    episode_length: int | None = Field(
        2048, ge=2, description="Bars per training episode; null runs to the end of the split."
    )
    random_start: bool = Field(True, description="Training episodes start at a random bar of the split.")


class CostConfig(_Strict):
    """What trading costs, in the account currency. Prices are assumed quoted in it too."""

    spread_points: float | None = Field(
        None, ge=0,
        description="Fixed spread in points; null uses the file's per-bar spread column.",
    )
    commission_per_unit: float = Field(0.0, ge=0, description="Charged per unit bought or sold.")
    swap_long: float = Field(0.0, description="Charged per unit held long over a daily rollover.")
    swap_short: float = Field(0.0, description="Charged per unit held short over a daily rollover.")
    triple_swap_weekday: int | None = Field(
        2, ge=0, le=6, description="Weekday (0=Monday) whose rollover counts three nights, as in MT5."
    )


class CacheConfig(_Strict):
    enabled: bool = True
    dir: Path = Path("cache")


class Config(_Strict):
    """The whole configuration; sections match the top-level keys of the YAML file."""

    data: LoadingConfig = LoadingConfig()
    features: FeatureConfig = FeatureConfig()
    splits: SplitConfig = SplitConfig()
    env: EnvConfig = EnvConfig()
    costs: CostConfig = CostConfig()
    cache: CacheConfig = CacheConfig()

    @property
    def gap_bars(self) -> int:
        """The gap actually used: never shorter than one observation window."""
        return max(self.splits.gap_bars or 0, self.env.window_size)

    def with_overrides(self, overrides: dict[str, Any]) -> "Config":
        """Return a copy with dotted-key overrides applied (``{"data.sep": ";"}``), validated."""
        raw = self.model_dump(mode="json")
        for dotted, value in overrides.items():
            if value is None:
                continue
            section, _, key = dotted.partition(".")
            raw.setdefault(section, {})[key] = value
        return parse_config(raw, source="command line")


def _format_validation_error(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown key; check its spelling against configs/default.yaml"
    more = len(error.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{source}: {key}: {message}{suffix}"


def parse_config(raw: dict[str, Any] | None, source: str = "config") -> Config:
    """Validate a mapping into a :class:`Config`, raising :class:`ConfigError` naming the key."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, e.g. 'features:'")
    try:
        return Config.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_format_validation_error(error, source)) from None


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate a YAML config; ``None`` reads the shipped ``configs/default.yaml``."""
    if path is None:
        if not DEFAULT_CONFIG_PATH.exists():
            return Config()
        path = DEFAULT_CONFIG_PATH
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; pass an existing YAML file to --config")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}; fix the syntax") from None
    return parse_config(raw, source=str(path))
