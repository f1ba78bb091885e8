"""Score a policy over a whole split: reference and fast evaluators, metrics, baselines, report."""
