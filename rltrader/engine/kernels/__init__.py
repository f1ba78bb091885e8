"""The engine's compiled kernels (numba): the training minibatch's LSTM recurrence
(:mod:`.lstm`) and the rollout step after the input projection (:mod:`.rollout`).

They take numpy arrays only and import nothing from torch or SB3; the modules one level
up lay a policy's weights out for them.
"""
