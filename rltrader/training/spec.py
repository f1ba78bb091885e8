"""What one training run needs, as one typed value: the run spec every entry point builds.

``rltrader train`` (each iteration task, each candidate, the final report), benchmark mode's
two methods, each walk-forward fold x seed and each tuning trial build a :class:`RunSpec` and
hand it to :meth:`rltrader.training.trainer.Trainer.from_spec`, which runs it to the end
(``run()``) or step by step (``open()``, ``train_iteration(i)``, ``finish()``). So a value is
followed from the request to the trainer by its name, never through a ``**dict`` splat, and a
new entry point (retraining, paper trading) gets the same run by building the same spec.

It is plain data (a frozen pydantic model whose fields are JSON-safe or pickle cleanly):
Prefect's task runners may put the run in this process, a process pool worker, or a Dask
worker on another machine, and the UI shows it as the task's parameter.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from rltrader.config import Config
from rltrader.features.preparation import PreparedData
from rltrader.runtime.hooks import UpdateHook
from rltrader.runtime.performance_mode import ModeSwitcher


class RunSpec(BaseModel):
    """One training run: what it trains on, with which settings, where it lives, where it starts from.

    :param config: the run's full configuration (profile, overrides and switches applied); its
        ``training.seed`` is the run's seed (iteration i trains with seed + i)
    :param data_path: the bar file the run trains on (named in the report and the run's fingerprint)
    :param run_dir: the run's directory: checkpoints, run state, best model, report; the same spec
        on the same directory resumes
    :param prepared: the preprocessed data (paths and metadata, no arrays) when a step before
        already prepared it (the flow's cached task, a walk-forward fold); None preprocesses
    :param preprocess_seconds: what preparing took, counted in the run's total time
    :param initial_model: the first iteration continues from this saved model instead of a fresh
        one (a walk-forward fold warm-started from the previous fold's best)
    :param reset_from_initial: with ``initial_model``, the first iteration starts from its weights with a fresh
        optimizer (Adam's moments learned on older bars would steer the first steps) and an entropy
        coefficient of at least this, so the warm model explores the new window again (a challenger's
        ``warm_reset`` start); None keeps the saved optimizer and the phase's entropy
    :param seed_offset: added to every iteration's seed; parallel candidates of one iteration
        differ by it (candidate 0 has offset 0, so it is exactly the serial run)
    :param settings_file: the performance-mode file read before every update (None: the config's
        ``performance_mode.settings_file``)
    :param follow_performance_mode: switch quiet/performance before every update as the settings
        file says; off for a step that trains nothing (the final report)
    :param workers: runs sharing this machine at once; performance mode shares the cores among them
    :param trust_checks: the final report stresses costs and checks the live stream's parity for the bundle's
        trust report (:mod:`rltrader.training.trust`); walk-forward folds skip them
    :param study_dir: the tune study whose ``best_config.yaml`` the run trains with (its PBO joins the trust report)
    :param config_file: the config file the settings came from (a CPCV of it beside the run joins the trust report)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    config: Config
    data_path: str
    run_dir: str
    prepared: PreparedData | None = None
    preprocess_seconds: float = Field(0.0, ge=0)
    initial_model: str | None = None
    reset_from_initial: float | None = Field(None, ge=0)
    seed_offset: int = Field(0, ge=0)
    settings_file: str | None = None
    follow_performance_mode: bool = True
    workers: int = Field(1, ge=1)
    trust_checks: bool = True
    study_dir: str | None = None
    config_file: str | None = None

    @property
    def seed(self) -> int:
        """The run's seed (``config.training.seed``)."""
        return self.config.training.seed

    def in_directory(self, run_dir: str | Path, **changes: object) -> RunSpec:
        """The same run in another directory (a candidate's fork), with ``changes`` to other fields."""
        return self.model_copy(update={"run_dir": str(run_dir), **changes})

    def update_hooks(self) -> list[UpdateHook]:
        """The hooks every update of this run passes: the performance-mode switch, if followed.

        Built where the run trains (a worker process), after its directory exists: the switch
        writes the mode it applied into the run directory."""
        if not self.follow_performance_mode:
            return []
        settings = Path(self.settings_file) if self.settings_file else self.config.performance_mode.settings_file
        return [ModeSwitcher(self.config.performance_mode, Path(self.run_dir), settings, self.workers)]


__all__ = ["RunSpec"]
