"""Causal features, chronological splits and train-only normalization."""

from rltrader.features.pipeline import FEATURE_CODE_VERSION, FeatureMatrix, compute_features

__all__ = ["FEATURE_CODE_VERSION", "FeatureMatrix", "compute_features"]
