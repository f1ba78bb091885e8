"""Features advanced bar by bar from a carried state: the one runner behind the batch columns and the live stream.

:class:`FeatureSteps` holds a compiled program (:mod:`rltrader.features.program`) and its state. The batch
pipeline advances a fresh one over a whole file; the live stream (:class:`FeatureStream`) keeps one and
advances it by each batch of new closed bars, then normalizes as training did. Both run the same
interpreter on the same values, so the stream's features are the batch's to the bit
(``tests/test_live.py`` checks it on whole files, cut into batches at random).
"""

from __future__ import annotations

import numpy as np

from rltrader.config import FeatureConfig
from rltrader.data.bar_arrays import BarArrays
from rltrader.features.definitions import columns_program
from rltrader.features.normalization import NormalizationStats
from rltrader.features.program import FeatureProgram
from rltrader.features.step_kernel import run_program


class FeatureSteps:
    """A feature program and the state it carries between bars.

    :param program: the compiled features
    """

    def __init__(self, program: FeatureProgram) -> None:
        self.program = program
        self._arrays = program.arrays()
        self._window = program.longest_window()
        self.state = program.initial_state()

    def advance(self, fields: np.ndarray) -> np.ndarray:
        """Raw features ``(N, features)`` of the bars ``fields`` (:meth:`BarArrays.fields`); advances the state."""
        out = np.empty((fields.shape[0], len(self.program.names)))
        codes, ints, floats, rings, outputs = self._arrays
        run_program(codes, ints, floats, rings, outputs, self.program.registers, self._window, self.state,
                     np.ascontiguousarray(fields, dtype=np.float64), out)
        return out


class FeatureStream:
    """The features of a bundle, advanced bar by bar, normalized as in training.

    :param program: the bundle's compiled features (:func:`rltrader.features.definitions.feature_program`)
    :param columns: the observation's feature order (the bundle's ``feature_columns``)
    :param normalization: the train-split statistics
    """

    def __init__(self, program: FeatureProgram, columns: list[str], normalization: NormalizationStats) -> None:
        missing = sorted(set(columns) - set(program.names))
        if missing:
            raise ValueError(f"the feature definition computes no {', '.join(missing)}")
        self.steps = FeatureSteps(program)
        self.order = np.array([program.names.index(name) for name in columns], dtype=np.int64)
        self.mean = np.array([normalization.mean[name] for name in columns])
        self.std = np.array([normalization.std[name] for name in columns])
        self.clip = normalization.clip

    @classmethod
    def of(cls, config: FeatureConfig, columns: list[str], normalization: NormalizationStats) -> FeatureStream:
        """The stream of a bundle's feature definition (volume and spread features where its columns hold them)."""
        return cls(columns_program(config, columns), columns, normalization)

    @property
    def state(self) -> np.ndarray:
        return self.steps.state

    @state.setter
    def state(self, values: np.ndarray) -> None:
        if values.shape != self.steps.state.shape:
            raise ValueError(f"a feature state of {values.shape[0]} values; this definition carries "
                             f"{self.steps.state.shape[0]}")
        self.steps.state = np.array(values, dtype=np.float64)

    def raw(self, bars: BarArrays) -> np.ndarray:
        """Raw features of ``bars`` ``(N, columns)`` in the observation's order; advances the state."""
        return self.steps.advance(bars.fields())[:, self.order]

    def normalize(self, raw: np.ndarray) -> np.ndarray:
        """:meth:`NormalizationStats.apply`'s arithmetic: float64 z-score, clip, float32."""
        values = (raw - self.mean) / self.std
        np.clip(values, -self.clip, self.clip, out=values)
        return values.astype(np.float32)


__all__ = ["FeatureStream", "FeatureSteps"]
