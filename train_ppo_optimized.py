"""The optimization guide's entry point: ``python train_ppo_optimized.py --data_path ...``.

Forwards every flag to ``rltrader train`` (same flags, same meanings), so the guide's
commands work verbatim from the project root with the project's environment.
"""

import sys

from rltrader.app.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
