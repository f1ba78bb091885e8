"""What every entry point is asked to do: the requests of ``train``, ``walkforward`` and ``tune``.

Each request is one pydantic model that serves the command line (``rltrader.app.cli`` generates
the flags from the fields: same names, the descriptions as help), the Prefect UI (the flow's one
parameter, rendered as a validated form), ``rltrader serve`` and ``prefect.yaml`` (their
defaults). Each turns itself into the run's :class:`~rltrader.config.Config` through its
``to_config``, so a flag and a form field of the same name can never mean two things.

The fields every request has (the bar file, the config file, where results and the cache go,
the Dask cluster, the performance-mode file) are declared once, in :class:`RequestBase`; the
account, instrument and spread fields once, in :class:`AccountFields`.

Field names are the guide's flag names. A switch left ``True`` means "as the config file
says" (what a missing ``--no-...`` flag means); ``False`` turns that optimization off.
Values left ``None`` keep the config's. Limits on the training values (``seed >= 0``, a
batch size that divides the rollout, ...) are the config's, checked when the config is
built, so their errors name the config key.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rltrader.config import Config, OptimizationConfig, load_config, parse_config

if TYPE_CHECKING:
    from rltrader.retraining.retrain import RetrainSpec

DEFAULT_DATA = "data/XAUUSDm_15min.csv"

LOADING_FIELDS = ("date_format", "dayfirst", "sep", "point", "max_jump_mads")
"""How to read the bar file: ``data.<name>`` overrides (None = detect, or as the config says)."""

TRAINING_FIELDS = ("algorithm", "seed", "iterations", "total_timesteps", "min_timesteps", "early_stopping_patience",
                   "convergence_threshold", "eval_freq", "checkpoint_freq")
"""``training.<name>`` overrides (None = as the config and the profile say)."""

ENV_FIELDS = ("window_size",)
"""``env.<name>`` overrides (None = as the config and the profile say)."""

ACCOUNT_FIELDS = {
    "sizing": "env.sizing", "equity_fraction": "env.equity_fraction", "lots": "env.lots",
    "account_currency": "account.currency", "conversion_path": "account.conversion_path",
    "symbol": "instrument.symbol", "contract_size": "instrument.contract_size",
    "spread_points": "costs.spread_points",
}
"""The account, the instrument and the spread fills pay: flag name -> config key (None = as the config says)."""

SWITCHES = tuple(OptimizationConfig.model_fields)
"""The optimizations, by the guide's names, which are also their keys under ``optimizations:``."""

FLOW_ONLY = ("candidate_workers", "dask_address", "overrides", "run_dir")
"""Fields the flow takes that ``rltrader train`` has no flag for."""


def with_param_lines(model: type[BaseModel]) -> str:
    """``model``'s docstring with a ``:param name: description`` line per field, from the descriptions
    the command line's help and the UI's form already show: one text per field, read by ``help()``
    and documentation tools as sb3-contrib's ``:param`` lines are."""
    lines = [f":param {name}: {field.description}" for name, field in model.model_fields.items() if field.description]
    return "\n\n".join(part for part in ((model.__doc__ or "").rstrip(), "\n".join(lines)) if part)


def _form_description(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """The UI's form shows each field's own description: the model's is its summary, without the
    ``:param`` lines that repeat them."""
    schema["description"] = (model.__doc__ or "").split("\n\n:param ")[0].strip()


class RequestBase(BaseModel):
    """The fields every request has: the bar file and config it reads, where its results and cache go,
    the Dask cluster it may fan out to, the performance-mode file its runs read."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_form_description)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.__doc__ = with_param_lines(cls)

    data_path: str = Field(DEFAULT_DATA, description="bar file: CSV/TSV export or parquet")
    config: str | None = Field(None, description="YAML config (default: configs/default.yaml)")
    results_dir: str = Field(
        "results", description="where results go (default: results): a run in RESULTS_DIR/SEED, a walk-forward "
                               "in RESULTS_DIR/walkforward-NAME, a study in RESULTS_DIR/tune-NAME")
    cache_dir: str | None = Field(None, description="cache directory (default: cache.dir, ./cache)")
    dask_address: str | None = Field(
        None, description="train on the Dask cluster at this scheduler address, e.g. tcp://host:8786")
    settings_file: str | None = Field(
        None, description="performance mode file read before every update (default: settings.json)")


def _switch(description: str) -> Any:
    return Field(True, description=f"{description}. Off (false) runs without it; on keeps the config's setting.")


class AccountFields(BaseModel):
    """How big a position is, what currency the money is in and what spread a fill pays; shared by every
    request that trades."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sizing: Literal["equity_fraction", "lots", "units"] | None = Field(
        None, description="full position: equity_fraction (share of equity, default), lots (x contract size) or "
                          "units (fixed, rltrader 0.1); default: env.sizing")
    equity_fraction: float | None = Field(
        None, description="notional of a full position / equity with --sizing equity_fraction (default 1)")
    lots: float | None = Field(None, description="lots at full position with --sizing lots (default 0.01)")
    account_currency: str | None = Field(
        None, description="currency of the account, e.g. USD; profits are converted into it (default USD)")
    conversion_path: str | None = Field(
        None, description="bar file of the account/quote pair for a cross, e.g. USDJPY_H1.csv for GBPJPY")
    symbol: str | None = Field(
        None, description="the traded symbol, e.g. XAUUSD (default: the first six letters of the file name)")
    contract_size: float | None = Field(
        None, description="units per lot (default: 100 for XAU, 100,000 for FX, from instrument.contract_sizes)")
    spread_points: float | None = Field(
        None, description="a fixed spread in points for every fill, e.g. 20 for XAUUSD with point 0.01 "
                          "(default: the file's spread column; a file without one needs this)")

    def account_overrides(self) -> dict[str, Any]:
        """The config keys these fields set (None values are skipped by ``with_overrides``)."""
        return {key: getattr(self, name) for name, key in ACCOUNT_FIELDS.items()}


class TrainRequest(AccountFields, RequestBase):
    """A training run: the bar file, the configuration and its overrides, where results go."""

    date_format: str | None = Field(None, description="strftime format of the timestamps, e.g. '%d.%m.%Y %H:%M'")
    dayfirst: bool | None = Field(
        None, description="force day-first (--dayfirst) or month-first (--no-dayfirst) dates; default: detect")
    sep: str | None = Field(None, description="column separator: ',', ';' or 'tab'; default: detect")
    point: float | None = Field(None, description="price of one spread point; default: from price digits")
    max_jump_mads: float | None = Field(
        None, description="a price this many robust sds of the 1-bar moves away from both neighbouring bars is "
                          "an error (lost decimal, bad tick); default: data.max_jump_mads, 50")
    profile: str | None = Field(None, description="named overrides from profiles: in the config (e.g. quick, "
                                                  "feedforward)")
    algorithm: Literal["recurrent", "feedforward"] | None = Field(
        None, description="recurrent (RecurrentPPO, LSTM) or feedforward (PPO, MLP on the window); default: config")
    window_size: int | None = Field(None, description="bars of features in one observation (default: env.window_size)")
    seed: int | None = Field(None, description="run seed; iteration i uses seed + i")
    iterations: int | None = Field(None, description="training iterations (default: training.iterations)")
    total_timesteps: int | None = Field(None, description="timesteps of the first iteration")
    min_timesteps: int | None = Field(None, description="adaptive timesteps never go below this")
    early_stopping_patience: int | None = Field(None, description="0 disables early stopping")
    convergence_threshold: float | None = Field(
        None, description="a validation gain must exceed this to count as an improvement")
    eval_freq: int | None = Field(None, description="timesteps between validations")
    checkpoint_freq: int | None = Field(None, description="timesteps between checkpoints")
    adaptive_timesteps: bool = _switch("later iterations train fewer timesteps")
    warm_start: bool = _switch("each iteration continues from the best model so far")
    early_stopping: bool = _switch("stop an iteration once validation stops improving")
    progressive_training: bool = _switch("phases explore -> refine -> fine_tune set the hyperparameters")
    fast_evaluation: bool = _switch("validate with the compiled evaluator (same actions as model.predict)")
    fast_engine: bool = _switch("train on the fused recurrent engine (same math as sb3-contrib)")
    cache_environments: bool = _switch("reuse the cached features of the bar file")
    use_original_training: bool = Field(
        False, description="every optimization off: the baseline the speedup is measured against")
    parallel_candidates: int = Field(
        1, description="train N candidates per iteration side by side and keep the best (default 1)")
    keep_candidates: int = Field(
        0, ge=0, description="after each adoption keep the N best candidates' forks on disk (default 0: "
                             "only their figures, in the run state)")
    candidate_workers: int | None = Field(
        None, description="at most this many candidates train at once (default: all of them)")
    overrides: dict[str, Any] | None = Field(
        None, description='any config key by its dotted name, e.g. {"training.n_envs": 4}; '
                          "applied after the file, before the named values")
    run_dir: str | None = Field(None, description="the run's directory, instead of RESULTS_DIR/SEED")
    benchmark_seeds: int = Field(
        5, description="benchmark mode: seeds per method (SEED, SEED + 1000, ...); quality is judged over them")

    @field_validator("parallel_candidates", "candidate_workers", "benchmark_seeds")
    @classmethod
    def _at_least_one(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"must be 1 or more, got {value}")
        return value

    def to_config(self, source: str = "command line") -> Config:
        """The run's config: file, then ``overrides`` and how to read the bars, then the profile,
        then the named values and switches (the most specific wins), then ``use_original_training``."""
        loading = {f"data.{name}": getattr(self, name) for name in LOADING_FIELDS}
        base = load_config(self.config).with_overrides(
            {**(self.overrides or {}), **loading, **self.account_overrides(), "cache.dir": self.cache_dir},
            source=source)
        named = {f"training.{name}": getattr(self, name) for name in TRAINING_FIELDS}
        named.update({f"env.{name}": getattr(self, name) for name in ENV_FIELDS})
        named.update({f"optimizations.{name}": False for name in SWITCHES if not getattr(self, name)})
        config = base.with_profile(self.profile).with_overrides(named, source=source)
        return config.original_method() if self.use_original_training else config

    def run_path(self, seed: int) -> Path:
        """Where the run lives: ``run_dir`` if given, else ``results_dir/<seed>``."""
        return Path(self.run_dir) if self.run_dir else Path(self.results_dir) / str(seed)



class WalkForwardRequest(AccountFields, RequestBase):
    """Train and test on consecutive windows of one bar file, one run per fold and seed."""

    name: str | None = Field(None, description="results go to RESULTS_DIR/walkforward-NAME (default: file stem)")
    folds: int | None = Field(None, ge=1, description="test windows, back to back up to the file's end "
                                                      "(default: walk_forward.folds)")
    train_bars: int | None = Field(None, ge=2, description="bars of each training window (with --test_bars)")
    test_bars: int | None = Field(None, ge=2, description="bars of each test window (with --train_bars)")
    validation_bars: int | None = Field(None, ge=2, description="bars of each validation window (default: test_bars)")
    scheme: Literal["rolling", "anchored", "cpcv"] | None = Field(
        None, description="rolling (fixed train length), anchored (train from the first bar) or cpcv (combinatorial "
                          "purged cross-validation: --groups, --test_groups); default: config")
    groups: int | None = Field(None, ge=2, description="cpcv: consecutive groups of the file, N (default: 6)")
    test_groups: int | None = Field(None, ge=1, description="cpcv: groups each split tests on, k; C(N,k) splits, "
                                                            "C(N,k)*k/N paths (default: 2)")
    purge_bars: int | None = Field(None, ge=0, description="cpcv: training bars dropped before each test group "
                                                           "(default: the gap, at least env.window_size)")
    embargo_bars: int | None = Field(None, ge=0, description="cpcv: training bars dropped after each test group "
                                                             "(default: the features' memory, 125 bars with the "
                                                             "default features)")
    seeds: list[int] | None = Field(None, description="a run per fold and seed (default: walk_forward.seeds)")
    warm_start_folds: bool | None = Field(
        None, description="fold k+1 starts from fold k's best model of the same seed (default: config, off)")
    parallel: int | None = Field(
        None, ge=1, description="runs trained at once in performance mode; quiet keeps one (default: 1)")
    profile: str | None = Field(
        None, description="every fold's training budget, a profile (default: config, none: train's own budget)")

    @property
    def walk_name(self) -> str:
        return self.name or Path(self.data_path).stem

    @property
    def root(self) -> Path:
        return Path(self.results_dir) / f"walkforward-{self.walk_name}"

    def to_config(self, source: str = "command line") -> Config:
        """The walk-forward's config: the file, then the named values (``walk_forward.*``)."""
        named: dict[str, Any] = {f"walk_forward.{name}": getattr(self, name) for name in (
            "folds", "train_bars", "test_bars", "validation_bars", "scheme", "groups", "test_groups", "purge_bars",
            "embargo_bars", "seeds", "warm_start_folds", "parallel", "profile")}
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



class TuneRequest(RequestBase):
    """An Optuna study over ``tune.space`` on one bar file; the best trial becomes a config file."""

    name: str | None = Field(None, description="study name; results go to RESULTS_DIR/tune-NAME (default: file stem)")
    trials: int | None = Field(None, ge=1, description="finished trials to reach (default: tune.trials)")
    workers: int | None = Field(None, ge=1, description="trials trained at once (default: tune.workers)")
    profile: str | None = Field(None, description="each trial's training budget, a profile (default: tune.profile)")
    storage: str | None = Field(None, description="Optuna RDB URL shared by several machines (default: SQLite)")
    seed: int | None = Field(None, description="training seed of every trial (default: training.seed)")
    more_data: list[str] | None = Field(
        None, description="more bar files every trial also trains on, one run each: the trial scores the mean, each "
                          "file's best validation score as a fraction of its oracle's on a known-answer market")
    time_target: float | None = Field(
        None, gt=0, description="seconds a trial's run may take before its score pays tune.time_penalty per multiple "
                                "overrun (default: tune.time_target_seconds)")

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
            "tune.time_target_seconds": self.time_target,
        }, source=source)



class RetrainRequest(AccountFields, RequestBase):
    """Train a challenger on the latest bars of a file and promote it over the model's champion only on evidence."""

    name: str = Field(description="the model's name: its registry is REGISTRY_DIR/NAME")
    registry_dir: str | None = Field(None, description="where model registries live (default: RESULTS_DIR/registry)")
    start: Literal["cold", "warm", "warm_reset"] | None = Field(
        None, description="how the challenger starts: cold (fresh), warm (the champion's weights and optimizer) or "
                          "warm_reset (its weights, a fresh optimizer, more entropy); default: retrain.start")
    train_bars: int | None = Field(
        None, ge=2, description="bars the challenger trains on (default: retrain.train_bars)")
    validation_bars: int | None = Field(
        None, ge=2, description="bars that select the challenger's best model (default: retrain.validation_bars)")
    holdout_bars: int | None = Field(
        None, ge=2, description="recent bars both models are compared on (default: retrain.holdout_bars)")
    promote_probability: float | None = Field(
        None, description="promote when P(challenger better) reaches this (default: retrain.promote_probability, 0.9)")
    drawdown_tolerance: float | None = Field(
        None, description="and its max drawdown is at most this much worse (default: retrain.drawdown_tolerance)")
    profile: str | None = Field(None, description="the challenger's training budget, a profile (default: quick)")
    seed: int | None = Field(None, description="the challenger's training seed (default: training.seed)")
    after_break: bool | None = Field(
        None, description="after a paper account's break alarm on the champion, train the challenger on the bars "
                          "since the break (default: retrain.after_break, on)")

    @property
    def registry_root(self) -> Path:
        return Path(self.registry_dir) if self.registry_dir else Path(self.results_dir) / "registry"

    def to_config(self, source: str = "command line") -> Config:
        """The retrain's config: the file, then the named values (``retrain.*``, ``training.seed``)."""
        named = {f"retrain.{name}": getattr(self, name) for name in (
            "start", "train_bars", "validation_bars", "holdout_bars", "promote_probability", "drawdown_tolerance",
            "profile", "after_break")}
        return load_config(self.config).with_overrides(
            {"cache.dir": self.cache_dir, **self.account_overrides(), **named, "training.seed": self.seed},
            source=source)

    def run_config(self, base: Config) -> Config:
        """What the challenger trains with: the retrain's profile applied."""
        return base.with_profile(base.retrain.profile)

    def to_spec(self, source: str = "command line") -> RetrainSpec:
        """The retrain every step takes (:class:`~rltrader.retraining.retrain.RetrainSpec`)."""
        from rltrader.retraining.retrain import RetrainSpec

        return RetrainSpec(name=self.name, data_path=self.data_path, registry_dir=str(self.registry_root),
                           config=self.run_config(self.to_config(source)), settings_file=self.settings_file)


__all__ = [
    "ACCOUNT_FIELDS", "DEFAULT_DATA", "ENV_FIELDS", "FLOW_ONLY", "LOADING_FIELDS", "SWITCHES", "TRAINING_FIELDS",
    "AccountFields", "RequestBase", "RetrainRequest", "TrainRequest", "TuneRequest", "WalkForwardRequest",
]
