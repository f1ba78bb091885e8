"""Load a saved model with a one-line error instead of a traceback when it is not one."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from rltrader.engine.model_files import algorithm_class, saved_algorithm
from rltrader.errors import UserInputError


class ModelError(UserInputError):
    """A model file that is missing, not a stable-baselines3 zip, or not a (Recurrent)PPO."""

    def __init__(self, path: str | Path, message: str) -> None:
        super().__init__(f"{path}: {message}")


def load_model(path: str | Path) -> Any:
    """``RecurrentPPO.load`` or ``PPO.load``, whichever saved it, on the CPU (evaluation never needs a GPU)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(path, "model file not found; pass the .zip that training saved to --model")
    if not zipfile.is_zipfile(path):
        raise ModelError(path, "not a stable-baselines3 model (.zip); pass the file that model.save() wrote")
    try:
        return algorithm_class(saved_algorithm(path)).load(path, device="cpu")
    except Exception as error:  # noqa: BLE001 - any load failure is the file's fault, reported in one line
        raise ModelError(path, f"cannot be loaded as a PPO or RecurrentPPO model ({type(error).__name__}: {error})"
                         ) from None
