"""Where the engine lived before ``rltrader.engine``: kept so that saved models still load.

A model zip records its policy class by module path; zips saved before the move name
``rltrader.training.engine.FusedLstmPolicy``, and loading them imports this module.
"""

from rltrader.engine import FusedLstmPolicy, FusedRecurrentPPO, SequenceLengthRolloutBuffer

__all__ = ["FusedLstmPolicy", "FusedRecurrentPPO", "SequenceLengthRolloutBuffer"]
