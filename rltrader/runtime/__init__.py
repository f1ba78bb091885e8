"""How a training process runs, apart from what it trains: the per-update hooks, performance
mode (switched while training runs), the allocator settings of training processes, and
fault injection for showing retries. Nothing here imports the trainer.
"""
