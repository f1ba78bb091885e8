"""Z-score normalization fitted on the training split only.

Fitting mean and standard deviation on all rows would tell the model, through the
scale of its inputs, something about the validation and test periods. The statistics
are stored with the features so the same transform applies to new bars later.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class NormalizationStats:
    mean: dict[str, float]
    std: dict[str, float]
    clip: float

    def apply(self, features: pd.DataFrame) -> pd.DataFrame:
        """Normalize and clip to float32 (the dtype the policy network consumes)."""
        columns = list(self.mean)
        mean = np.array([self.mean[c] for c in columns])
        std = np.array([self.std[c] for c in columns])
        values = (features[columns].to_numpy(dtype=np.float64) - mean) / std
        np.clip(values, -self.clip, self.clip, out=values)
        return pd.DataFrame(values.astype(np.float32), index=features.index, columns=columns)

    def to_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "clip": self.clip}

    @classmethod
    def from_dict(cls, raw: dict) -> NormalizationStats:
        return cls(mean=dict(raw["mean"]), std=dict(raw["std"]), clip=float(raw["clip"]))


def fixed_scales(columns: Iterable[str]) -> dict[str, float]:
    """The columns scaled by a fixed divisor instead of their training statistics (their mean is 0), and it.

    sin/cos encodings are already in [-1, 1]: divisor 1. A move pattern's ``2**N`` indicator columns
    (``pattern_udu``, ...) hold one 1 per bar; z-scored, every bar would light one column at about
    ``2**(N/2)`` standard deviations and the block would weigh as ``2**N`` features in the policy's first
    layer, drowning the bar's other features (N = 4, 3 seeds: volume 0.30 -> 0.09 of the oracle's Sharpe,
    session trend 0.14 -> -0.13). Divided by ``1/sqrt(N)`` (values 0 or ``sqrt(N)``) the block weighs about
    as much as the N signs it encodes: volume 0.30, while a 3-bar sequence edge is still learned (0.78;
    ``bench/README.md``, "Move patterns")."""
    scales = {}
    for column in columns:
        if column.endswith(("_sin", "_cos")):
            scales[column] = 1.0
        elif column.startswith("pattern_"):
            scales[column] = 1.0 / math.sqrt(len(column) - len("pattern_"))
    return scales


def fit_normalization(
    train_features: pd.DataFrame, clip: float, fixed: dict[str, float] | None = None
) -> NormalizationStats:
    """Fit on ``train_features`` (the training rows only).

    ``fixed`` columns keep mean 0 and the given std (:func:`fixed_scales`); a constant feature
    keeps std 1 instead of dividing by zero.
    """
    mean = train_features.mean()
    std = train_features.std(ddof=0)
    std = std.where(std > 1e-12, 1.0)
    for column, scale in (fixed or {}).items():
        mean[column], std[column] = 0.0, scale
    return NormalizationStats(
        mean={c: float(mean[c]) for c in train_features.columns},
        std={c: float(std[c]) for c in train_features.columns},
        clip=clip,
    )
