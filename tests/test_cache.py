"""The feature cache is keyed by content and settings, survives processes, and heals."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT

from rltrader.features.cache import FeatureStore
from rltrader.features.preparation import preprocess, preprocessing_key


def test_second_call_hits_and_returns_the_same_file(sample_csv, config):
    first = preprocess(sample_csv, config)
    second = preprocess(sample_csv, config)
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert first.parquet_path == second.parquet_path
    assert first.metadata == second.metadata


def test_key_follows_content_not_path(sample_csv, config, tmp_path):
    renamed = tmp_path / "renamed.csv"
    shutil.copy(sample_csv, renamed)
    assert preprocessing_key(renamed, config) == preprocessing_key(sample_csv, config)
    preprocess(sample_csv, config)
    assert preprocess(renamed, config).cache_hit

    renamed.write_bytes(sample_csv.read_bytes().replace(b"2064.98", b"2064.97", 1))
    assert preprocessing_key(renamed, config) != preprocessing_key(sample_csv, config)
    assert not preprocess(renamed, config).cache_hit


def test_key_follows_feature_split_and_window_settings(sample_csv, config):
    base = preprocessing_key(sample_csv, config)
    for override in ({"features.rsi_period": 10}, {"splits.gap_bars": 50}, {"env.window_size": 48},
                     {"data.point": 0.1}):
        assert preprocessing_key(sample_csv, config.with_overrides(override)) != base, override
    # where the cache lives does not change what is in it
    assert preprocessing_key(sample_csv, config.with_overrides({"cache.dir": "elsewhere"})) == base


def test_deleted_or_truncated_parquet_is_recomputed(sample_csv, config):
    first = preprocess(sample_csv, config)
    first.parquet_path.unlink()
    again = preprocess(sample_csv, config)
    assert not again.cache_hit and again.parquet_path.exists()
    with open(again.parquet_path, "r+b") as handle:
        handle.truncate(100)
    healed = preprocess(sample_csv, config)
    assert not healed.cache_hit
    assert len(healed.load()) == first.metadata["parquet"]["rows"]


def test_cache_switch_off_recomputes(sample_csv, config):
    preprocess(sample_csv, config)
    assert not preprocess(sample_csv, config, use_cache=False).cache_hit
    assert not preprocess(sample_csv, config.with_overrides({"optimizations.cache_environments": False})).cache_hit


def test_cache_hit_across_two_processes(sample_csv, cache_dir):
    script = (
        "import json, sys; from rltrader.config import Config; from rltrader.features.preparation import preprocess;"
        f"c = Config().with_overrides({{'cache.dir': {str(cache_dir)!r}}});"
        f"p = preprocess({str(sample_csv)!r}, c); print(json.dumps([p.cache_hit, str(p.parquet_path)]))"
    )
    runs = [
        json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                                  cwd=PROJECT_ROOT).stdout)
        for _ in range(2)
    ]
    assert runs[0][0] is False and runs[1][0] is True and runs[0][1] == runs[1][1]


def test_clear_cache_dry_run_then_clear(sample_csv, config, cache_dir, capsys):
    from rltrader.app.cli import main

    preprocess(sample_csv, config)
    (cache_dir / ".tmp-bars.parquet.x").write_bytes(b"left by a killed process")
    assert main(["clear-cache", "--dry-run", "--cache_dir", str(cache_dir)]) == 0
    out = capsys.readouterr().out
    assert "would remove 2 item(s)" in out
    assert len(FeatureStore(cache_dir).contents()) == 2
    assert main(["clear-cache", "--cache_dir", str(cache_dir)]) == 0
    assert "removed 2 item(s)" in capsys.readouterr().out
    assert FeatureStore(cache_dir).contents() == []
    assert not preprocess(sample_csv, config).cache_hit


def test_atomic_write_leaves_old_file_when_writer_fails(tmp_path):
    from rltrader.atomic import write_text, write_with

    target = tmp_path / "settings.json"
    write_text(target, "old")

    def broken(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_with(target, broken)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]


def test_atomic_writes_get_the_permissions_open_would_give_not_the_temporary_files_owner_only_ones(tmp_path):
    """mkstemp makes its file 0600; the written file gets 0666 less the umask, or keeps the mode of the file it
    replaces, as a plain open() would."""
    import os
    import stat

    from rltrader.atomic import write_text

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    previous = os.umask(0o022)
    try:
        write_text(tmp_path / "report.md", "first")
        assert mode(tmp_path / "report.md") == 0o644
        os.umask(0o077)
        write_text(tmp_path / "private.json", "{}")
        assert mode(tmp_path / "private.json") == 0o600
        os.chmod(tmp_path / "report.md", 0o640)
        write_text(tmp_path / "report.md", "second")  # replacing keeps the file's own mode
        assert mode(tmp_path / "report.md") == 0o640 and (tmp_path / "report.md").read_text() == "second"
    finally:
        os.umask(previous)


def test_atomic_write_fsyncs_the_content_before_the_rename_and_the_directory_after(tmp_path, monkeypatch):
    """Durable, not only atomic: a power cut after write_text returns must not lose the file."""
    import os
    import stat

    from rltrader import atomic

    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(source, target) -> None:
        events.append("rename")
        real_replace(source, target)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    atomic.write_text(tmp_path / "checkpoint.json", "{}")
    assert events == ["fsync file", "rename", "fsync dir"]
    assert (tmp_path / "checkpoint.json").read_text() == "{}"


def test_feature_code_edits_change_the_cache_key(tmp_path, monkeypatch, sample_csv, config):
    """Editing any feature source changes the key: stale features are never served as a hit."""
    import shutil

    from rltrader.features import preparation
    from rltrader.features.pipeline import FEATURE_SOURCES, source_digest

    copies = []
    for source in FEATURE_SOURCES:
        copies.append(tmp_path / f"{len(copies)}-{source.name}")
        shutil.copy(source, copies[-1])
    before = source_digest(tuple(copies))
    copies[0].write_text(copies[0].read_text() + "\n# an edit\n")
    assert source_digest(tuple(copies)) != before
    key = preparation.preprocessing_key(sample_csv, config)
    monkeypatch.setattr(preparation, "FEATURE_CODE_VERSION", "1+" + source_digest(tuple(copies)))
    assert preparation.preprocessing_key(sample_csv, config) != key
