"""Crash-safe checkpoints: a model zip plus a sidecar that vouches for it.

SB3's ``CheckpointCallback`` writes the zip in place and saves nothing else, so a kill
mid-write leaves a torn file and a resumed run would not know where it was. Here each
checkpoint is two files written atomically, zip first, then ``<name>.json`` holding the
run's position (iteration, timesteps done, early-stopping state, seeds, mode) and the
zip's SHA-256. The sidecar is the commit marker: a zip without one, or whose bytes no
longer match its hash, is never loaded, and the previous checkpoint is used instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rltrader.atomic import atomic_path, write_json
from rltrader.records import CheckpointState

logger = logging.getLogger(__name__)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_model_atomically(model: Any, target: Path) -> str:
    """``model.save`` through a temporary file; returns the SHA-256 of what was written.

    The model is saved to an open file object: given a path without ``.zip`` (as a temp
    name is), SB3 would append the suffix and write somewhere else.
    """
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as handle:
            model.save(handle)
    return sha256_of(target)


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint: the zip to load and the state saved with it."""

    model_path: Path
    state: CheckpointState

    @property
    def timesteps(self) -> int:
        return self.state.timesteps_done


class CheckpointStore:
    """Checkpoints of one run, ``<run_dir>/checkpoints/iter_XX/step_XXXXXXXXX.{zip,json}``."""

    def __init__(self, run_dir: Path, keep: int = 2) -> None:
        """:param run_dir: the run's directory; checkpoints go to its ``checkpoints/iter_XX/``
        :param keep: checkpoints kept per iteration (older ones are deleted after each save)
        """
        self.root = Path(run_dir) / "checkpoints"
        self.keep = keep

    def _iteration_dir(self, iteration: int) -> Path:
        return self.root / f"iter_{iteration:02d}"

    def save(self, model: Any, iteration: int, state: CheckpointState) -> Path:
        """Write a checkpoint of ``model`` at ``state.timesteps_done`` and prune old ones."""
        stem = self._iteration_dir(iteration) / f"step_{state.timesteps_done:09d}"
        zip_path = stem.with_suffix(".zip")
        digest = save_model_atomically(model, zip_path)
        sidecar = state.model_copy(update={"iteration": iteration, "model_sha256": digest})
        write_json(stem.with_suffix(".json"), sidecar.to_json())
        self._prune(iteration)
        return zip_path

    def _sidecars(self, iteration: int) -> list[Path]:
        return sorted(self._iteration_dir(iteration).glob("step_*.json"))

    def _prune(self, iteration: int) -> None:
        for sidecar in self._sidecars(iteration)[: -self.keep]:
            sidecar.unlink(missing_ok=True)
            sidecar.with_suffix(".zip").unlink(missing_ok=True)

    def latest(self, iteration: int) -> Checkpoint | None:
        """The newest checkpoint of ``iteration`` whose zip matches its sidecar, if any."""
        for sidecar in reversed(self._sidecars(iteration)):
            model_path = sidecar.with_suffix(".zip")
            try:
                state = CheckpointState.model_validate(json.loads(sidecar.read_text(encoding="utf-8")))
                intact = model_path.is_file() and sha256_of(model_path) == state.model_sha256
            except (OSError, ValueError):  # a pydantic ValidationError is a ValueError
                intact = False
            if intact:
                return Checkpoint(model_path, state)
            logger.warning("Ignoring damaged checkpoint %s; falling back to the one before it", model_path)
        return None

    def clear(self, iteration: int) -> None:
        """Remove an iteration's checkpoints once the iteration is recorded as finished."""
        directory = self._iteration_dir(iteration)
        for path in directory.glob("*"):
            path.unlink(missing_ok=True)
        if directory.exists():
            directory.rmdir()
