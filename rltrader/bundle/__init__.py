"""The bundle: the self-contained directory a trained model lives in, which training writes and everything
else reads (the live stream, paper trading, the registry, the exporters)."""

from rltrader.bundle.description import (
    DESCRIPTION_FILE,
    EMA_TOLERANCE,
    MANIFEST_FILE,
    POLICY_FILE,
    SCHEMA_VERSION,
    Bundle,
    BundleDescription,
    BundleError,
    TrainingData,
    describe,
    ema_warmup_bars,
    history_needed,
)
from rltrader.bundle.files import export_bundle, read_bundle, source_bundle, write_bundle

__all__ = ["DESCRIPTION_FILE", "EMA_TOLERANCE", "MANIFEST_FILE", "POLICY_FILE", "SCHEMA_VERSION", "Bundle",
           "BundleDescription", "BundleError", "TrainingData", "describe", "ema_warmup_bars", "export_bundle",
           "history_needed", "read_bundle", "source_bundle", "write_bundle"]
