"""``rltrader tune``: an Optuna search over config keys, scored on validation (domain code, no Prefect)."""
