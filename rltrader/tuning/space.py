"""The search space of ``tune.space`` as Optuna distributions, and what may not be searched.

Trials are asked for with all their parameters at once (``study.ask(distributions)``), so
the flow that asks can hand a trial's values to a worker process as plain data.
"""

from __future__ import annotations

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from rltrader.config import Config, SearchParameter
from rltrader.errors import ConfigError
from rltrader.training.phases import PHASE_KEYS


def distribution(name: str, parameter: SearchParameter) -> BaseDistribution:
    """The Optuna distribution of one searched key."""
    if parameter.choices is not None:
        for choice in parameter.choices:
            if not isinstance(choice, (str, int, float, bool)) and choice is not None:
                raise ConfigError(f"tune.space.{name}: choices must be numbers, text, true/false or null")
        return CategoricalDistribution(parameter.choices)
    assert parameter.low is not None and parameter.high is not None  # the config validated the range
    if parameter.is_integer:
        return IntDistribution(int(parameter.low), int(parameter.high), log=parameter.log,
                               step=int(parameter.step or 1))
    return FloatDistribution(parameter.low, parameter.high, log=parameter.log, step=parameter.step)


def search_distributions(config: Config) -> dict[str, BaseDistribution]:
    """Every key of ``tune.space`` as a distribution, after checking that searching it changes something."""
    check_space(config)
    return {name: distribution(name, parameter) for name, parameter in config.tune.space.items()}


def check_space(config: Config) -> None:
    """Refuse a search over a key that progressive training overrides: every trial would train alike.

    With ``optimizations.progressive_training`` on, a phase that sets ``learning_rate``
    (say) replaces ``training.learning_rate`` in the iterations it covers; if the first
    phase sets it, no iteration ever reads the searched value."""
    if not config.optimizations.progressive_training or not config.training.phases:
        return
    first_phase = config.training.phases[0]
    for name in config.tune.space:
        section, _, key = name.partition(".")
        if section == "training" and key in PHASE_KEYS and getattr(first_phase, key) is not None:
            raise ConfigError(
                f"tune.space: {name} is replaced by training.phases ({first_phase.name} sets {key}) while "
                "progressive training is on, so searching it would change nothing; search another key, "
                f"remove {key} from the phases, search training.phases.N.{key}, or pass "
                "--no-progressive_training")


__all__ = ["PHASE_KEYS", "check_space", "distribution", "search_distributions"]
