"""The trainer's per-update hooks: where runtime settings and recorders act on a running training.

The trainer calls every hook before every update (never in the middle of one) with the
model and the iteration's timesteps so far. A hook is any such callable; subclassing
:class:`UpdateHook` adds what the trainer may also ask of it, each with a default, so
the trainer asks every hook the same questions instead of probing for attributes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


class UpdateHook:
    """Called before every update with the model and the iteration's timesteps so far."""

    modes_used: Sequence[str] = ()
    """Performance modes the hook applied to the current model (its iteration's record lists them)."""

    sets_runtime: bool = False
    """Whether the hook sets how the machine trains (batch, epochs, threads): the original method's
    throughput calibration (:mod:`rltrader.training.calibration`) runs under such hooks too."""

    def __call__(self, model: Any, timesteps_done: int) -> None:
        raise NotImplementedError

    def applied_mode(self) -> str | None:
        """The performance mode in force, if this hook sets one."""
        return None

    def recover_from_out_of_memory(self) -> bool:
        """After an out-of-memory error: shrink the work if this hook can; True if it did (then retry)."""
        return False


class FunctionHook(UpdateHook):
    """A plain function ``(model, timesteps_done)`` as a hook with the defaults."""

    def __init__(self, function: Callable[[Any, int], None]) -> None:
        self.function = function

    def __call__(self, model: Any, timesteps_done: int) -> None:
        self.function(model, timesteps_done)


def as_hooks(hooks: Sequence[UpdateHook | Callable[[Any, int], None]]) -> list[UpdateHook]:
    """Every hook as an :class:`UpdateHook` (plain functions wrapped)."""
    return [hook if isinstance(hook, UpdateHook) else FunctionHook(hook) for hook in hooks]


__all__ = ["FunctionHook", "UpdateHook", "as_hooks"]
