"""Using a trained model: the self-contained bundle (and, to come, streaming decisions on new bars)."""
