"""Walk-forward analysis: retrain on a moving window, trade the next unseen period, repeat.

``folds`` plans each fold's train / validation / test rows; ``data`` writes each fold's
features (computed once per file, normalized on the fold's own training rows); ``runs``
trains one fold x seed with the real trainer in its own results directory; ``schedule``
says which runs may start (warm-started folds wait for their previous fold); ``report``
stitches the test windows into one out-of-sample curve and aggregates across folds and
seeds; ``request`` is what ``rltrader walkforward`` and the ``walk-forward`` flow are asked.
The Prefect layer (``flows/walkforward.py``, ``tasks/walkforward.py``) only orchestrates them.
"""
