"""Prefect tasks: thin wrappers over ``rltrader`` functions that pass paths and metrics."""
