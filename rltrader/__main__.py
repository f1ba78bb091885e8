"""``python -m rltrader``: the same as the ``rltrader`` command."""

from rltrader.app.cli import entry_point

entry_point()
