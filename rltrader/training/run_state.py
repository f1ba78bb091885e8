"""The run's own memory, ``run_state.json``: what is finished and what the run has learned.

SB3's zip holds a model, not a run. This file holds everything needed to carry on after a
crash or to extend a run: the fingerprint of the data and configuration it belongs to
(resuming under another config would mix two experiments), a record per finished
iteration, the early-stopping tracker, and which model is best. It is rewritten
atomically at the end of each iteration; in-iteration progress lives in the checkpoints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rltrader.atomic import write_json
from rltrader.config import Config
from rltrader.errors import UserInputError

STATE_VERSION = 1


def fingerprint(config: Config, data_sha256: str) -> dict[str, Any]:
    """What must match for a results directory to be resumed: data content and settings."""
    # runtime knobs, not the experiment: where the cache lives, how hard the machine works,
    # how failures are retried and where the server is
    settings = config.model_dump(mode="json", exclude={"profiles": True, "cache": {"dir"}, "performance_mode": True,
                                                       "orchestration": True})
    return {"data_sha256": data_sha256, "config": settings}


def _first_difference(old: Any, new: Any, prefix: str = "") -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return _first_difference(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else key)
    return f"{prefix} was {old!r}, now {new!r}"


@dataclass
class RunState:
    """Finished iterations, early-stopping state and the best model of one run."""

    fingerprint: dict[str, Any]
    method: str
    iterations: list[dict[str, Any]] = field(default_factory=list)
    tracker: dict[str, Any] = field(default_factory=dict)
    best: dict[str, Any] | None = None
    preprocess_seconds: float = 0.0
    completed: bool = False

    @property
    def next_iteration(self) -> int:
        return len(self.iterations)

    def save(self, path: Path) -> None:
        write_json(path, {"version": STATE_VERSION, **self.__dict__})

    @classmethod
    def load_or_create(cls, path: Path, expected: dict[str, Any], method: str) -> "RunState":
        """The saved state when it belongs to the same data and config; a new one if none."""
        if not path.is_file():
            return cls(fingerprint=expected, method=method)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise UserInputError(
                f"{path}: unreadable run state; move that results directory away or pass another --results_dir"
            ) from None
        if raw.get("fingerprint") != expected:
            difference = _first_difference(raw.get("fingerprint"), expected)
            raise UserInputError(
                f"{path.parent}: holds a run with other settings ({difference}); "
                "re-run with the same settings to resume, or pass another --results_dir"
            )
        raw.pop("version", None)
        return cls(**raw)
