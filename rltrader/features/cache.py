"""Content-addressed store of preprocessed feature files.

A cache entry is keyed by what determines its content - the bytes of the input file,
the loading/feature/split configuration and the feature-code version - never by the
path string, so renaming a file still hits and editing one in place still misses.

Layout: ``<cache_dir>/features/<key>/bars.parquet`` plus ``meta.json``. Both are written
atomically and ``meta.json`` last, so it doubles as the commit marker: an entry without
it, or whose parquet is missing or of the wrong size, is treated as absent and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from rltrader.atomic import TEMP_PREFIX, write_json, write_with

logger = logging.getLogger(__name__)

FEATURES_DIR = "features"
PREFECT_RECORDS_DIR = "prefect"
PARQUET_NAME = "bars.parquet"
META_NAME = "meta.json"
_digest_memo: dict[tuple, str] = {}


def file_digest(path: str | Path) -> str:
    """SHA-256 of the file's bytes, memoized per (path, size, mtime, inode) in this process."""
    stat = os.stat(path)
    memo_key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if memo_key not in _digest_memo:
        with open(path, "rb") as handle:
            _digest_memo[memo_key] = hashlib.file_digest(handle, "sha256").hexdigest()
    return _digest_memo[memo_key]


def cache_key(content_digest: str, settings: dict[str, Any], code_version: str) -> str:
    """Key from content, the settings that shape the output, and the code version."""
    payload = json.dumps(
        {"content": content_digest, "settings": settings, "code": code_version},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class CacheEntry:
    parquet_path: Path
    meta_path: Path
    metadata: dict[str, Any]


class FeatureStore:
    """The feature cache under one directory."""

    def __init__(self, cache_dir: str | Path) -> None:
        """:param cache_dir: the cache's root (``cache.dir``); feature files live in its ``features/``"""
        self.root = Path(cache_dir)
        self.features_dir = self.root / FEATURES_DIR

    def entry_dir(self, key: str) -> Path:
        return self.features_dir / key

    def lookup(self, key: str) -> CacheEntry | None:
        """Return the complete entry for ``key``, or ``None`` if absent or damaged."""
        directory = self.entry_dir(key)
        meta_path, parquet_path = directory / META_NAME, directory / PARQUET_NAME
        try:
            metadata = json.loads(meta_path.read_text(encoding="utf-8"))
            size = parquet_path.stat().st_size
        except (OSError, ValueError):
            return None
        if size != metadata.get("parquet", {}).get("size_bytes"):
            logger.warning("Cached features %s are incomplete; recomputing", directory)
            return None
        return CacheEntry(parquet_path, meta_path, metadata)

    def write(self, key: str, frame: pd.DataFrame, metadata: dict[str, Any]) -> CacheEntry:
        """Write the parquet, then the metadata that marks the entry complete."""
        directory = self.entry_dir(key)
        parquet_path = write_with(
            directory / PARQUET_NAME, lambda tmp: frame.to_parquet(tmp, index=False, engine="pyarrow")
        )
        metadata = {**metadata, "parquet": {**metadata.get("parquet", {}), "size_bytes": parquet_path.stat().st_size}}
        meta_path = write_json(directory / META_NAME, metadata)
        return CacheEntry(parquet_path, meta_path, metadata)

    def contents(self) -> list[Path]:
        """What ``clear`` would remove: feature entries, Prefect cache records, stray temp files."""
        found: list[Path] = []
        for sub in (FEATURES_DIR, PREFECT_RECORDS_DIR):
            directory = self.root / sub
            if directory.is_dir():
                found.extend(sorted(directory.iterdir()))
        if self.root.is_dir():
            found.extend(sorted(self.root.glob(TEMP_PREFIX + "*")))
        return found

    def clear(self, dry_run: bool = False) -> tuple[list[Path], int]:
        """Remove everything :meth:`contents` lists; returns the paths and bytes freed."""
        paths = self.contents()
        freed = sum(_size(path) for path in paths)
        if not dry_run:
            for path in paths:
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        return paths, freed


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(child.stat().st_size for child in path.rglob("*") if child.is_file())
