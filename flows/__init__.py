"""Prefect flows: the pipeline as it is triggered from the CLI, the UI or a schedule.

``rltrader`` logs on the ``rltrader`` logger; Prefect forwards it to the run logs when
``PREFECT_LOGGING_EXTRA_LOGGERS`` names it *before* Prefect sets up logging, so this is
set here, ahead of any Prefect import through this package.
"""

import os

_extra = os.environ.get("PREFECT_LOGGING_EXTRA_LOGGERS", "")
if "rltrader" not in _extra.split(","):
    os.environ["PREFECT_LOGGING_EXTRA_LOGGERS"] = ",".join(filter(None, [_extra, "rltrader"]))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")  # the SDK's telemetry: nowhere to send it offline, and a notice on stderr
# the same logger also reports work done outside runs (a warm-up preprocess, a direct Trainer)
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
# a temporary server on a new PREFECT_HOME migrates its database first: about 20 s on two
# cores, Prefect's whole default wait, so a first `rltrader train` could time out
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
