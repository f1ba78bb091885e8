"""rltrader: train recurrent PPO trading agents on bar data, fast and honestly.

The domain code (data, features, environment, training, evaluation) lives here and runs
without Prefect; ``flows/`` and ``tasks/`` are a thin orchestration layer over it.
"""

__version__ = "0.1.0"
