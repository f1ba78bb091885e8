"""The iterative PPO / RecurrentPPO trainer (domain code: no Prefect imports here).

Import what you need from its modules (``rltrader.training.trainer.Trainer``): the package itself loads
nothing, so a command that only reads a run's records does not load torch.
"""
