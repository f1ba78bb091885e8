"""Prefect tasks: thin wrappers over ``rltrader`` functions that pass paths and metrics.

``rltrader`` logs its progress (loading, features, writing) at INFO on the ``rltrader``
logger. Prefect copies its handlers onto it when ``PREFECT_LOGGING_EXTRA_LOGGERS``
includes ``rltrader`` (the CLI sets that), but leaves the level at the root's WARNING;
setting INFO here makes those lines reach the run logs and the console wherever tasks run.
"""

import logging

logging.getLogger("rltrader").setLevel(logging.INFO)
