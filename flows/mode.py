"""Switch performance mode from Prefect: a UI button, or the evening/morning schedules.

The flow writes ``settings.json`` through the same atomic writer as ``rltrader mode``
(running training applies it before its next update) and mirrors the value to the
Prefect Variable ``rltrader_performance_mode``, so the UI's Variables page shows the mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger
from prefect.variables import Variable

from rltrader.config import load_config
from rltrader.runtime.performance_mode import write_mode

MODE_VARIABLE = "rltrader_performance_mode"


@flow(name="set-performance-mode", flow_run_name="performance mode: {mode}")
def set_performance_mode(mode: Literal["quiet", "performance"] = "quiet", settings_file: str | None = None,
                         config: str | None = None) -> str:
    """Write ``mode`` to the settings file (default: ``performance_mode.settings_file`` of ``config``)."""
    path = Path(settings_file) if settings_file else load_config(config).performance_mode.settings_file
    write_mode(path, mode)
    Variable.set(MODE_VARIABLE, mode, overwrite=True)
    get_run_logger().info("Performance mode set to %s in %s; running training applies it before its next update",
                          mode, path.resolve())
    return mode
