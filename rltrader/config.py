"""Validated configuration.

The YAML files in ``configs/`` are parsed into these pydantic models. Unknown keys are
rejected (a typo must not silently fall back to a default), and every error names the
dotted key, e.g. ``configs/default.yaml: features.rsi_period: Input should be greater
than or equal to 2``.

Named *profiles* (``profiles:`` in the YAML) are bundles of overrides selected with
``--profile NAME``; a bare key in a profile (``n_epochs: 3``) means ``training.n_epochs``.
"""

from __future__ import annotations

import zoneinfo
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

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
    max_jump_mads: float | None = Field(
        50.0, gt=0, description="A price further than this many robust sds of the 1-bar moves from both "
        "neighbouring bars is an error (a lost decimal, a bad tick); 5x away always is; null turns it off.")

    @model_validator(mode="after")
    def _normalise_sep(self) -> LoadingConfig:
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
    def _fast_below_slow(self) -> MacdConfig:
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
    signed_volume: bool = Field(
        True, description="volume_z with the sign of the bar's move: how hard the bar was bought or sold, a "
                           "direction a policy reads without multiplying two features itself")
    signed_volume_lags: int = Field(
        0, ge=0, le=32, description="signed_volume of each of the N bars before this one (signed_volume_1 .. "
                                    "_N): a surge a few bars back, in the policy's view; 0 = none")
    move_patterns: int = Field(
        4, ge=0, le=5, description="which of the 2^N up/down sequences the last N moves made, one column each "
                                   "(pattern_udu: up, down, up, oldest first): any edge set by that sequence "
                                   "is then a straight line in the columns; 0 = none")
    spread: bool = True
    time_of_day: bool = True
    day_of_week: bool = True
    calendar_harmonics: int = Field(
        3, ge=1, le=6, description="sin/cos pairs per calendar cycle: harmonic k turns k times a day (a week), so a "
                                   "pattern of k blocks a day is a straight line in the features a policy reads")
    clip: float = Field(5.0, gt=0, description="Normalized features are clipped to +-clip.")

    @model_validator(mode="after")
    def _positive_windows(self) -> FeatureConfig:
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
    def _fractions_sum_to_one(self) -> SplitConfig:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + validation + test must be 1.0, got {total:g}")
        return self


class EnvConfig(_Strict):
    """The trading environment: what the agent sees, what it may hold, how it is rewarded."""

    window_size: int = Field(1, ge=1, description="Bars of features in one observation (the LSTM carries history).")
    initial_balance: float = Field(10_000.0, gt=0, description="Account equity at the start of an episode.")
    sizing: Literal["equity_fraction", "lots", "units"] = Field(
        "equity_fraction",
        description="How big a full long or short is: equity_fraction (a notional of equity_fraction x equity "
        "at the fill, converted to units there and held until the next trade), lots (lots x the instrument's "
        "contract size) or units (max_position_size units, rltrader 0.1's arithmetic).",
    )
    equity_fraction: float = Field(
        1.0, gt=0, le=100, description="sizing equity_fraction: notional of a full position / equity (1 = unlevered)."
    )
    lots: float = Field(0.01, gt=0, description="sizing lots: lots held at full long or short.")
    max_position_size: float = Field(
        1.0, gt=0, description="sizing units: units held at full long or short (ounces for XAUUSD); flat is 0."
    )
    reward: Literal["log", "relative"] = Field(
        "log", description="log(equity_t+1 / equity_t) or (equity_t+1 - equity_t) / equity_t, net of costs."
    )
    reward_scale: float = Field(300.0, gt=0, description="Rewards are multiplied by this (100 = percent).")
    risk_aversion: float = Field(
        0.0773, ge=0, description="The reward is x - risk_aversion * x**2 for the scaled return x: a mean-variance "
                               "utility. At 0 the agent is indifferent between holding through a bar with no edge "
                               "and standing aside, so it holds, and its Sharpe pays for the noise.")
    risk_aversion_gain: float = Field(
        0.0, ge=0, lt=2, description="0 = risk_aversion fixed (the default). k > 0: before each update the "
        "training sets the risk aversion to max(risk_aversion, k x A / (2 B)) for the mean A and mean square B of "
        "the scaled returns of the rollout before: A / (2 B) is the risk aversion of the differential Sharpe ratio "
        "(Moody and Saffell), under which holding a bar pays only if it adds to the agent's own Sharpe, so the "
        "penalty grows as the agent finds an edge and prices out the bars where it has none. Below 2 it never "
        "prices out a market whose edge is the same on every bar. Measured in bench/README.md (learning_curves).")
    max_drawdown: float | None = Field(
        0.5, gt=0, lt=1, description="Episode terminates when equity falls this far below its peak."
    )
    episode_length: int | None = Field(
        2048, ge=2, description="Bars per training episode; null runs to the end of the split."
    )
    random_start: bool = Field(True, description="Training episodes start at a random bar of the split.")


class CostConfig(_Strict):
    """What trading costs: the spread is in price points (quote currency, converted like profits);
    commission and swap are in the account currency."""

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


def _currency_code(value: Any) -> str:
    """A three-letter ISO code, upper-cased (``usd`` is USD)."""
    if not isinstance(value, str) or len(value) != 3 or not value.isalpha():
        raise ValueError(f"must be a three-letter currency code such as USD, got {value!r}")
    return value.upper()


class AccountConfig(_Strict):
    """The account's currency: profits, costs and equity are in it, converted at each bar's close."""

    currency: str = Field("USD", description="ISO code of the account currency, e.g. USD.")
    conversion_path: Path | None = Field(
        None, description="Bar file of a pair between the account currency and the instrument's quote currency "
        "(e.g. USDJPY_H1.csv for GBPJPY in a USD account); needed only for crosses.",
    )

    @field_validator("currency", mode="before")
    @classmethod
    def _currency_code(cls, value: Any) -> Any:
        return _currency_code(value)


#: Contract sizes MetaTrader uses, by symbol or base currency; FX is any currency pair.
DEFAULT_CONTRACT_SIZES = {"XAU": 100.0, "XAG": 5000.0, "XPT": 100.0, "XPD": 100.0, "FX": 100_000.0}


class InstrumentConfig(_Strict):
    """What is traded. ``None`` means: read it from the bar file's name (``XAUUSDm_15min.csv`` is XAUUSD)."""

    symbol: str | None = Field(None, description="e.g. XAUUSD; default: the first six letters of the file name.")
    base: str | None = Field(None, description="Base currency or metal, e.g. XAU.")
    quote: str | None = Field(None, description="Currency the prices are quoted in.")
    contract_size: float | None = Field(
        None, gt=0, description="Units in one lot; default: contract_sizes by symbol, then base, then FX.")
    contract_sizes: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_CONTRACT_SIZES),
        description="Units per lot by symbol or base currency; the key FX covers every currency pair.")

    @field_validator("base", "quote", mode="before")
    @classmethod
    def _currency_code(cls, value: Any) -> Any:
        return None if value is None else _currency_code(value)

    @field_validator("symbol", mode="before")
    @classmethod
    def _upper_case(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class CacheConfig(_Strict):
    """Where preprocessed features live; whether they are reused is ``optimizations.cache_environments``."""

    dir: Path = Path("cache")


class PolicyConfig(_Strict):
    """Network sizes: ``MlpLstmPolicy`` (recurrent) or ``MlpPolicy`` (feed-forward, which uses
    only the two heads and the activation)."""

    lstm_hidden_size: int = Field(64, ge=1)
    n_lstm_layers: int = Field(1, ge=1)
    net_arch_pi: list[int] = Field([64, 64], description="Hidden layers of the actor (after the LSTM if recurrent).")
    net_arch_vf: list[int] = Field([64, 64], description="Hidden layers of the critic (after the LSTM if recurrent).")
    activation: Literal["tanh", "relu"] = "tanh"
    enable_critic_lstm: bool = Field(True, description="The critic has its own LSTM (sb3-contrib default).")
    observation_skip: bool = Field(
        True, description="Recurrent: the actor's and critic's MLPs read the observation beside the LSTM's output "
                          "(a skip connection around the LSTM); off, they read the LSTM's output only (stock "
                          "MlpLstmPolicy). Needs enable_critic_lstm.")

    @model_validator(mode="after")
    def _skip_needs_a_critic_lstm(self) -> PolicyConfig:
        if self.observation_skip and not self.enable_critic_lstm:
            raise ValueError("observation_skip needs enable_critic_lstm: true (or set observation_skip: false)")
        return self


class PhaseConfig(_Strict):
    """One stage of progressive training: from ``start`` (a fraction of the iterations) on,
    these hyperparameters replace the base ones; unset ones keep the base value."""

    name: str = Field(min_length=1)
    start: float = Field(ge=0, lt=1, description="Fraction of the iterations at which this phase begins.")
    learning_rate: float | None = Field(None, gt=0)
    n_epochs: int | None = Field(None, ge=1)
    ent_coef: float | None = Field(None, ge=0)
    clip_range: float | None = Field(None, gt=0)


class TrainingConfig(_Strict):
    """The iterative PPO loop and its optimizations' parameters."""

    algorithm: Literal["recurrent", "feedforward"] = Field(
        "recurrent",
        description="recurrent: sb3-contrib RecurrentPPO with MlpLstmPolicy (the LSTM carries history); "
        "feedforward: stable-baselines3 PPO with MlpPolicy on the observation window.",
    )
    iterations: int = Field(6, ge=1)
    seed: int = Field(42, ge=0)
    total_timesteps: int = Field(
        65_536, ge=1, description="Timesteps of iteration 0 (of every iteration when not adaptive)."
    )
    min_timesteps: int = Field(8_192, ge=1, description="Adaptive timesteps never go below this.")
    timestep_decay: float = Field(0.05, ge=0, lt=1, description="Each iteration trains this fraction fewer timesteps.")
    n_envs: int = Field(16, ge=1, description="Training accounts stepped together.")
    n_steps: int = Field(256, ge=2, description="Steps per environment per rollout.")
    batch_size: int = Field(512, ge=2, description="Minibatch size; must divide n_steps * n_envs.")
    n_epochs: int = Field(4, ge=1)
    learning_rate: float = Field(3e-4, gt=0)
    gamma: float = Field(0.976, gt=0, le=1)
    gae_lambda: float = Field(0.828, gt=0, le=1)
    clip_range: float = Field(0.2, gt=0)
    ent_coef: float = Field(0.01, ge=0)
    vf_coef: float = Field(0.5, ge=0)
    max_grad_norm: float = Field(0.5, gt=0)
    policy: PolicyConfig = PolicyConfig()
    selection_metric: Literal["sharpe", "sortino", "calmar", "total_return", "cagr"] = Field(
        "sharpe", description="Validation metric that picks the best model."
    )
    eval_freq: int = Field(8_192, ge=1, description="Timesteps between validation evaluations (early stopping).")
    early_stopping_patience: int = Field(
        4, ge=0, description="Evaluations without improvement before an iteration stops; 0 disables."
    )
    convergence_threshold: float = Field(
        0.01, ge=0, description="A smoothed score must beat the best smoothed score by more than this to count as "
                                "an improvement."
    )
    early_stopping_smoothing: float = Field(
        0.7, gt=0, le=1, description="Weight of the newest validation look in the smoothed score early stopping "
                                     "counts on (an exponential average); 1 = each raw look (the rule before "
                                     "smoothing)."
    )
    checkpoint_freq: int = Field(10_000, ge=1, description="Timesteps between checkpoints (at rollout boundaries).")
    keep_checkpoints: int = Field(2, ge=1, description="Checkpoints kept per iteration (older ones are deleted).")
    phases: list[PhaseConfig] = Field(
        default_factory=lambda: [
            PhaseConfig(name="explore", start=0.0, learning_rate=3e-4, n_epochs=4, ent_coef=0.01, clip_range=0.2),
            PhaseConfig(name="refine", start=0.375, learning_rate=1.5e-4, n_epochs=8, ent_coef=0.01, clip_range=0.15),
            PhaseConfig(name="fine_tune", start=0.75, learning_rate=5e-5, n_epochs=5, ent_coef=0.005, clip_range=0.1),
        ],
        description="Progressive training stages, by start.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> TrainingConfig:
        rollout = self.n_steps * self.n_envs
        if rollout % self.batch_size:
            raise ValueError(
                f"batch_size {self.batch_size} must divide n_steps * n_envs = {rollout} "
                "(RecurrentPPO crashes on a one-sample last minibatch)"
            )
        if self.min_timesteps > self.total_timesteps:
            raise ValueError("min_timesteps must not exceed total_timesteps")
        starts = [phase.start for phase in self.phases]
        if starts and (starts[0] != 0 or starts != sorted(set(starts))):
            raise ValueError("phases must be listed by increasing start, the first at start: 0")
        return self

    @property
    def rollout_size(self) -> int:
        """Timesteps collected per update; learn() always runs whole rollouts."""
        return self.n_steps * self.n_envs


class OptimizationConfig(_Strict):
    """The trainer's optimizations, all on by default; every one off is the original method.

    The field names are the guide's flag names (``--no-warm_start``, ...)."""

    adaptive_timesteps: bool = Field(True, description="Later iterations train fewer timesteps.")
    warm_start: bool = Field(True, description="Each iteration continues from the best model so far.")
    early_stopping: bool = Field(True, description="Stop an iteration once validation stops improving.")
    progressive_training: bool = Field(True, description="Phases set learning rate, epochs, entropy, clip range.")
    fast_evaluation: bool = Field(True, description="Validate with the compiled evaluator (same actions).")
    fast_engine: bool = Field(
        True, description="Fused, unpadded LSTM passes and fused Adam (same math as stock sb3-contrib).")
    cache_environments: bool = Field(True, description="Reuse the preprocessed features of an unchanged bar file.")


class ModeConfig(_Strict):
    """What one performance mode does to each update (see ``rltrader/runtime/performance_mode.py``)."""

    batch_multiplier: float = Field(gt=0, description="x training.batch_size, then the nearest valid size below.")
    epochs_multiplier: float = Field(gt=0, description="x the phase's n_epochs, rounded half up, at least 1.")
    torch_threads: int | None = Field(None, ge=1, description="Torch CPU threads; null = every core.")
    niceness: int = Field(0, ge=0, le=19, description="Added to the process's nice value (Unix); 0 = unchanged.")


class PerformanceModeConfig(_Strict):
    """Quiet (the machine stays usable) and performance (all out), switched while training runs."""

    settings_file: Path = Field(Path("settings.json"), description="Read before every update; missing = quiet.")
    quiet: ModeConfig = ModeConfig(batch_multiplier=1.0, epochs_multiplier=1.0, torch_threads=1, niceness=10)
    performance: ModeConfig = ModeConfig(batch_multiplier=2.0, epochs_multiplier=1.5, torch_threads=None, niceness=0)


def known_timezone(value: str) -> str:
    """``value`` if it names an IANA time zone (the crons of the schedules are read in it)."""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {value!r}; use an IANA name such as UTC or Europe/London") from None
    return value


def cron_fields(value: str) -> str:
    """``value`` if it has a cron expression's five fields."""
    if len(value.split()) != 5:
        raise ValueError(f"{value!r} is not a cron expression: five fields, minute hour day month weekday")
    return value


class ModeScheduleConfig(_Strict):
    """When the ``performance-mode`` deployment switches modes (cron, in ``timezone``)."""

    timezone: str = Field("UTC", description="IANA name, e.g. Europe/London; the crons are read in it.")
    performance_cron: str = Field("0 20 * * *", description="When performance mode starts (evening).")
    quiet_cron: str = Field("0 7 * * *", description="When quiet mode starts again (morning).")

    _known_timezone = field_validator("timezone")(classmethod(lambda cls, value: known_timezone(value)))
    _five_fields = field_validator("performance_cron", "quiet_cron")(classmethod(lambda cls, value: cron_fields(value)))


class OrchestrationConfig(_Strict):
    """How the Prefect layer runs the pipeline: retries, the local server, the mode schedule."""

    retries: int = Field(2, ge=0, description="Retries of a failed training task (never for data/config errors).")
    retry_delay_seconds: list[float] = Field(
        default_factory=lambda: [10.0, 60.0], min_length=1, description="Delay before each retry (last one repeats).")
    server_host: str = Field("127.0.0.1", description="Where rltrader serve starts a Prefect server if none runs.")
    server_port: int = Field(4200, ge=1, le=65535)
    mode_schedule: ModeScheduleConfig = ModeScheduleConfig()


class SearchParameter(_Strict):
    """One searched config key: a range (``low``/``high``, optionally ``log`` or ``step``) or ``choices``.

    A range of two integers (and an integer ``step``, if any) is searched over integers."""

    low: float | None = None
    high: float | None = None
    log: bool = Field(False, description="Sample the range on a log scale (low must be > 0).")
    step: float | None = Field(None, gt=0, description="Grid step within the range.")
    choices: list[Any] | None = Field(None, min_length=1, description="Values to choose from, instead of a range.")

    @model_validator(mode="after")
    def _range_or_choices(self) -> SearchParameter:
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either choices or low/high, not both")
            return self
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError("a range needs low < high (or give choices)")
        if self.log and self.low <= 0:
            raise ValueError("log needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined")
        return self

    @property
    def is_integer(self) -> bool:
        values = [self.low, self.high] + ([] if self.step is None else [self.step])
        return self.choices is None and all(float(value).is_integer() for value in values)


class TunePrunerConfig(_Strict):
    """Optuna's median pruner, fed the best validation score at each of a trial's validation looks."""

    n_startup_trials: int = Field(3, ge=0, description="Trials that finish unpruned before pruning starts.")
    n_warmup_steps: int = Field(2, ge=0, description="Validation looks of a trial before it may be pruned.")


class TuneConfig(_Strict):
    """``rltrader tune``: an Optuna study over config keys, scored on validation only."""

    trials: int = Field(20, ge=1, description="Finished trials (complete or pruned) the study runs to.")
    workers: int = Field(2, ge=1, description="Trials trained at once (process pool or Dask workers).")
    profile: str | None = Field("quick", description="Profile of every trial (its training budget); null = none.")
    storage: str | None = Field(None, description="Optuna RDB URL; null = SQLite in the study's results folder.")
    sampler_seed: int = Field(0, ge=0, description="Seed of the TPE sampler (the search is reproducible).")
    pruner: TunePrunerConfig = TunePrunerConfig()
    time_target_seconds: float | None = Field(
        None, gt=0, description="A trial's run (one per bar file) longer than this loses time_penalty x its overrun "
                                "(in multiples of the target) from its score; null = time is free.")
    time_penalty: float = Field(0.5, ge=0, description="Score lost per multiple of time_target_seconds overrun.")
    space: dict[str, SearchParameter] = Field(
        default_factory=lambda: {
            "training.algorithm": SearchParameter(choices=["recurrent", "feedforward"]),
            "env.window_size": SearchParameter(choices=[1, 4, 16]),
            "training.gamma": SearchParameter(low=0.9, high=0.999),
            "training.gae_lambda": SearchParameter(low=0.8, high=0.99),
        },
        description="Dotted config key -> its range or choices.",
    )


FOLD_PROFILE_OF_OLD_PLANS = "quick"
"""What the folds of a walk-forward planned before its ``plan.json`` recorded their profile trained on (the default
then): read so, an old walk-forward is neither resumed with folds of a second budget nor reported as train's."""


class WalkForwardConfig(_Strict):
    """``rltrader walkforward``: retrain on a moving window, trade the next unseen period, repeat.

    Each fold has its own train / validation / test (in that order, with ``gap_bars``
    between them) and its own normalization; the folds' test windows follow each other, so
    their equity curves stitch into one out-of-sample curve. Sizes count bars; left unset,
    ``folds`` windows are fitted to the file with the first fold split as ``splits:`` says."""

    scheme: Literal["rolling", "anchored", "cpcv"] = Field(
        "rolling", description="rolling: every train window is train_bars long; anchored: every one starts at the "
                               "first bar and grows by test_bars per fold; cpcv: combinatorial purged cross-validation "
                               "(groups, test_groups), every split's test groups assembled into full out-of-sample "
                               "paths.")
    groups: int = Field(6, ge=2, description="cpcv: consecutive groups the file is cut into (N).")
    test_groups: int = Field(2, ge=1, description="cpcv: groups each split tests on (k); C(N, k) splits make "
                                                  "C(N, k)*k/N paths.")
    purge_bars: int | None = Field(None, ge=0, description="cpcv: training bars dropped before each test group "
                                                           "(and before validation); at least env.window_size; "
                                                           "null = gap_bars.")
    embargo_bars: int | None = Field(None, ge=0, description="cpcv: training bars dropped after each test group; "
                                                             "at least env.window_size; null = the features' memory (a "
                                                             "bar's weight in them below 1e-4: 125 bars "
                                                             "with the default features).")
    folds: int | None = Field(6, ge=1, description="Folds (test windows); null = as many as the sizes allow.")
    train_bars: int | None = Field(None, ge=2, description="Training bars of the first fold; null = from splits:.")
    validation_bars: int | None = Field(None, ge=2, description="Validation bars of each fold; null = test_bars.")
    test_bars: int | None = Field(None, ge=2, description="Test bars of each fold; null = fitted to the file.")
    seeds: list[int] = Field(default_factory=lambda: [42], min_length=1, description="A training run per fold "
                             "and seed.")
    warm_start_folds: bool = Field(False, description="Fold k+1 starts from fold k's best model (same seed).")
    parallel: int = Field(1, ge=1, description="Runs trained at once (performance mode; quiet keeps one).")
    profile: str | None = Field(None, description="Profile of every fold's run (its budget); null = none: the budget "
                                                 "`rltrader train` uses, so the folds judge what train deploys.")

    @model_validator(mode="after")
    def _sizes_given_together(self) -> WalkForwardConfig:
        if (self.train_bars is None) != (self.test_bars is None):
            raise ValueError("give train_bars and test_bars together (or neither, to fit folds to the file)")
        if self.folds is None and self.test_bars is None:
            raise ValueError("give folds, or train_bars and test_bars")
        if self.scheme == "cpcv" and not 1 <= self.test_groups < self.groups:
            raise ValueError(f"test_groups must be at least 1 and below groups ({self.groups}) for cpcv")
        if self.scheme == "cpcv" and self.warm_start_folds:
            raise ValueError("cpcv splits are not in time order: warm_start_folds needs scheme rolling or anchored")
        return self


class RetrainConfig(_Strict):
    """``rltrader retrain``: a challenger trained on the latest bars replaces the champion only on evidence.

    The window is walk-forward's last fold, ending at the file's last bar: ``train_bars``, a gap,
    ``validation_bars`` (which selects the challenger's best model), a gap, and ``holdout_bars``,
    the recent window that neither model trained or selected on. Champion and challenger are
    scored there with the same costs, and their per-bar return differences are tested (one-sided,
    Newey-West standard error of the mean difference)."""

    train_bars: int = Field(6000, ge=2, description="Bars the challenger trains on (H1: about a year).")
    validation_bars: int = Field(1200, ge=2, description="Bars that select the challenger's best model.")
    holdout_bars: int = Field(600, ge=2, description="Recent bars both models are scored and compared on.")
    start: Literal["cold", "warm", "warm_reset"] = Field(
        "cold", description="cold: a fresh model; warm: the champion's weights and optimizer; warm_reset: the "
                            "champion's weights with a fresh optimizer and raised entropy in the first iteration.")
    reset_ent_coef: float = Field(0.05, ge=0, description="warm_reset: the first iteration's entropy coefficient "
                                                         "(at least; a higher phase value is kept).")
    promote_probability: float = Field(0.9, gt=0.5, lt=1, description="Promote when P(challenger better) reaches "
                                                                      "this (one-sided paired test).")
    drawdown_tolerance: float = Field(0.02, ge=0, lt=1, description="...and its max drawdown is at most this much "
                                                                   "(a fraction of equity) worse than the champion's.")
    profile: str | None = Field("quick", description="The challenger's training budget, a profile; null = none.")
    after_break: bool = Field(True, description="After a paper account's break alarm on the champion, challengers "
                                                "train on the bars since the break (with the break_* sizes) instead "
                                                "of the last train_bars, until the usual windows fit after it.")
    break_min_train_bars: int = Field(900, ge=2, description="after_break: the fewest bars since the break to train "
                                                            "on; until there are enough, the champion is kept.")
    break_validation_bars: int = Field(300, ge=2, description="after_break: bars that select the challenger's model.")
    break_holdout_bars: int = Field(300, ge=2, description="after_break: recent bars both models are compared on.")
    break_promote_probability: float = Field(
        0.8, gt=0.5, lt=1, description="after_break: the P(challenger better) that promotes while challengers train "
                                       "on the bars since the break: each has seen more of the new regime than the "
                                       "champion, and the short held-out window gives the usual level little power.")
    cron: str = Field("30 20 * * *", description="When the retrain deployment runs (after performance mode starts).")
    timezone: str = Field("UTC", description="IANA name the cron is read in.")

    _known_timezone = field_validator("timezone")(classmethod(lambda cls, value: known_timezone(value)))
    _five_fields = field_validator("cron")(classmethod(lambda cls, value: cron_fields(value)))


class Config(_Strict):
    """The whole configuration; sections match the top-level keys of the YAML file."""

    data: LoadingConfig = LoadingConfig()
    features: FeatureConfig = FeatureConfig()
    splits: SplitConfig = SplitConfig()
    env: EnvConfig = EnvConfig()
    costs: CostConfig = CostConfig()
    account: AccountConfig = AccountConfig()
    instrument: InstrumentConfig = InstrumentConfig()
    cache: CacheConfig = CacheConfig()
    training: TrainingConfig = TrainingConfig()
    optimizations: OptimizationConfig = OptimizationConfig()
    performance_mode: PerformanceModeConfig = PerformanceModeConfig()
    orchestration: OrchestrationConfig = OrchestrationConfig()
    tune: TuneConfig = TuneConfig()
    walk_forward: WalkForwardConfig = WalkForwardConfig()
    retrain: RetrainConfig = RetrainConfig()
    profiles: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Named override bundles, selected with --profile NAME."
    )

    @model_validator(mode="before")
    @classmethod
    def _cache_switch_moved(cls, raw: Any) -> Any:
        return moved_cache_switch(raw)

    @model_validator(mode="after")
    def _tune_names_known_keys(self) -> Config:
        raw = self.model_dump(mode="json", exclude={"tune", "walk_forward", "retrain", "profiles"})
        for dotted in self.tune.space:
            node: Any = raw
            for part in dotted.split("."):
                if not _has_child(node, part):
                    raise ValueError(f"tune.space: {dotted!r} is not a config key; use a dotted key such as "
                                     "training.learning_rate")
                node = _child(node, part)
        return self

    @property
    def gap_bars(self) -> int:
        """The gap actually used: never shorter than one observation window."""
        return max(self.splits.gap_bars or 0, self.env.window_size)

    def with_overrides(self, overrides: dict[str, Any], source: str = "command line") -> Config:
        """Return a copy with dotted-key overrides applied (``{"training.policy.n_lstm_layers": 2}``),
        validated; ``None`` values are skipped so unset command-line flags change nothing."""
        raw = self.model_dump(mode="json")
        for dotted, value in overrides.items():
            if value is None:
                continue
            *parents, key = dotted.split(".")
            node = raw
            for part in parents:  # a number steps into a list: training.phases.0.learning_rate
                child = _child(node, part)
                if not isinstance(child, (dict, list)):
                    raise ConfigError(
                        f"{source}: {dotted}: unknown key; check its spelling against configs/default.yaml"
                    )
                node = child
            if isinstance(node, list):
                if not _has_child(node, key):
                    raise ConfigError(f"{source}: {dotted}: no item {key} in that list")
                node[int(key)] = value
            else:
                node[key] = value
        return parse_config(raw, source=source)

    def with_profile(self, name: str | None) -> Config:
        """Apply the profile ``name`` from ``profiles:``; bare keys mean ``training.<key>``."""
        if not name:
            return self
        if name not in self.profiles:
            known = ", ".join(sorted(self.profiles)) or "none defined"
            raise ConfigError(f"profile {name!r} is not defined under profiles: in the config (known: {known})")
        overrides = {(key if "." in key else f"training.{key}"): value for key, value in self.profiles[name].items()}
        return self.with_overrides(overrides, source=f"profiles.{name}")

    def original_method(self) -> Config:
        """The same configuration with every optimization off: the honest baseline."""
        switches = {f"optimizations.{name}": False for name in OptimizationConfig.model_fields}
        return self.with_overrides(switches, source="original method")


ADDED_SINCE: dict[str, dict[str, Any]] = {
    "features": {"calendar_harmonics": 1, "signed_volume": False, "signed_volume_lags": 0, "move_patterns": 0},
    "env": {"risk_aversion": 0.0, "risk_aversion_gain": 0.0},
    "training": {"early_stopping_smoothing": 1.0, "policy": {"observation_skip": False}},
}
"""Keys added since bundles were first written (the learning study of issue 37; ``move_patterns`` and the
recurrent policy's ``observation_skip``, issue 47),
per section, with the value that reproduces what a bundle or run written without them computed: bundles and
run fingerprints saved before are read with these, so an old bundle keeps its 18 (or 27) features and an old
run resumes only under the settings it trained with."""


def as_written_before(section: str, raw: dict[str, Any]) -> dict[str, Any]:
    """A section of a bundle or run record written before :data:`ADDED_SINCE`'s keys, completed with them
    (nested sections key by key: a written ``training.policy`` keeps its keys and gains the missing ones)."""
    return _completed(ADDED_SINCE.get(section, {}), raw)


def _completed(added: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with ``added``'s keys it lacks, recursing where both hold a mapping."""
    merged = {**added, **raw}
    for key, value in added.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            merged[key] = _completed(value, raw[key])
    return merged


def added_since_overrides() -> dict[str, Any]:
    """:data:`ADDED_SINCE` as dotted overrides (``training.policy.observation_skip``): the settings that
    reproduce a run written before those keys existed."""
    def flat(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in values.items():
            out.update(flat(f"{prefix}{key}.", value) if isinstance(value, dict) else {f"{prefix}{key}": value})
        return out

    return flat("", ADDED_SINCE)


def _has_child(node: Any, part: str) -> bool:
    """Whether ``part`` names a key of a mapping or, as a number, an item of a list."""
    if isinstance(node, list):
        return part.isdigit() and int(part) < len(node)
    return isinstance(node, dict) and part in node


def _child(node: dict[str, Any] | list[Any], part: str) -> Any:
    """``node[part]``: a key of a mapping, or an item of a list by its number; None when there is none."""
    if not _has_child(node, part):
        return None
    return node[int(part)] if isinstance(node, list) else node[part]


def moved_cache_switch(raw: Any) -> Any:
    """A config mapping (a file, or a run fingerprint's settings) with rltrader 0.1's ``cache.enabled``
    moved to ``optimizations.cache_environments``, where it is now; anything else as it is."""
    if not isinstance(raw, dict) or not isinstance(raw.get("cache"), dict) or "enabled" not in raw["cache"]:
        return raw
    cache = dict(raw["cache"])
    enabled = cache.pop("enabled")
    optimizations = dict(raw.get("optimizations") or {})
    if optimizations.get("cache_environments", enabled) != enabled:
        raise ValueError("cache.enabled and optimizations.cache_environments disagree; "
                         "keep optimizations.cache_environments only")
    optimizations["cache_environments"] = enabled
    return {**raw, "cache": cache, "optimizations": optimizations}


def _format_validation_error(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
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
