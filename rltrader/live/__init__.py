"""Using a trained model on new bars: the decision stream (the backtest's arithmetic, bar by bar), reading a
terminal's bar file, the next bar's signal, paper accounts, and a new champion taking an account over."""
