"""The iterative RecurrentPPO trainer (domain code: no Prefect imports here)."""

from rltrader.training.trainer import RunPaths, Trainer, method_name

__all__ = ["RunPaths", "Trainer", "method_name"]
