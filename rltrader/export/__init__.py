"""Taking a bundle out of Python: its ONNX graph (features, normalization, policy and state in one graph),
the proof that the graph decides as the backtest, the kernel table of the runtime MetaTrader 5 embeds, and
the Expert Advisor that runs the graph in MetaTrader 5."""
