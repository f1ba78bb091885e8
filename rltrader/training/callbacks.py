"""The trainer's one SB3 callback: the points between updates where the run can act.

SB3 calls ``on_rollout_start`` right after an update, when the weights, optimizer and
timestep count agree: the safe moment to validate and checkpoint (a checkpoint taken at
rollout *end* would count timesteps the model has not yet learned from). ``on_rollout_end``
comes just before the next update: the per-update hooks apply runtime settings there, so
a change never lands mid-update. Stopping is signalled through ``_on_step``, the only
callback return value SB3 honours.

The SB3 logger is dumped right after each update too: SB3 writes a rollout's row before
the update that learns from it, so its ``train/*`` diagnostics would wait for the next
rollout's row, and the last update's would never be written. Dumped here, an update's
diagnostics sit at the timesteps of the rollout it learned from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from stable_baselines3.common.callbacks import BaseCallback

from rltrader.runtime.hooks import UpdateHook


class IterationCallback(BaseCallback):
    """Calls ``at_boundary(timesteps_done)`` after each update (False stops the iteration)
    and every hook before each update; ``timesteps_done`` counts from the iteration's start."""

    def __init__(self, timesteps_before: int, at_boundary: Callable[[int], bool],
                 update_hooks: Sequence[UpdateHook] = ()) -> None:
        super().__init__(verbose=0)
        self.timesteps_before = timesteps_before
        self.at_boundary = at_boundary
        self.update_hooks = list(update_hooks)
        self.stop_requested = False

    @property
    def timesteps_done(self) -> int:
        return self.timesteps_before + self.model.num_timesteps

    def _on_rollout_start(self) -> None:
        if self.model.num_timesteps > 0:
            self._dump_update_diagnostics()
        if self.model.num_timesteps > 0 and not self.stop_requested:
            self.stop_requested = not self.at_boundary(self.timesteps_done)

    def _on_step(self) -> bool:
        return not self.stop_requested

    def _on_rollout_end(self) -> None:
        for hook in self.update_hooks:
            hook(self.model, self.timesteps_done)

    def _on_training_end(self) -> None:
        self._dump_update_diagnostics()

    def _dump_update_diagnostics(self) -> None:
        if self.model.logger.name_to_value:  # nothing pending after a stop at a rollout's first step
            self.model.logger.dump(self.model.num_timesteps)
