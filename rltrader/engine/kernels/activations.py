"""Activation codes shared by every compiled kernel that runs a policy's dense layers.

numba reads module-level integers as compile-time constants, so a kernel branches on
these codes at no cost; :data:`rltrader.engine.policy_arrays.ACTIVATION_CODES` maps torch
modules to them.
"""

IDENTITY, TANH, RELU = 0, 1, 2

__all__ = ["IDENTITY", "RELU", "TANH"]
