"""Z-score normalization fitted on the training split only.

Fitting mean and standard deviation on all rows would tell the model, through the
scale of its inputs, something about the validation and test periods. The statistics
are stored with the features so the same transform applies to new bars later.
"""

from __future__ import annotations

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


def fit_normalization(
    train_features: pd.DataFrame, clip: float, passthrough: tuple[str, ...] = ()
) -> NormalizationStats:
    """Fit on ``train_features`` (the training rows only).

    ``passthrough`` columns (sin/cos encodings, already in [-1, 1]) keep mean 0 and std 1;
    a constant feature keeps std 1 instead of dividing by zero.
    """
    mean = train_features.mean()
    std = train_features.std(ddof=0)
    std = std.where(std > 1e-12, 1.0)
    for column in passthrough:
        mean[column], std[column] = 0.0, 1.0
    return NormalizationStats(
        mean={c: float(mean[c]) for c in train_features.columns},
        std={c: float(std[c]) for c in train_features.columns},
        clip=clip,
    )
