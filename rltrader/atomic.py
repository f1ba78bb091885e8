"""Atomic file writes.

Every file the pipeline writes goes through here: the content is written to a temporary
file in the same directory and moved over the target with ``os.replace``, which is atomic
on POSIX and Windows. A reader therefore sees the old file or the new one, never half of
one, and a process killed mid-write leaves at most a stray ``.tmp-*`` file, which
``clear-cache`` (for the cache) and a resumed training run (for its results) remove.

A rename is atomic but not durable: after a power cut the directory may still name the old
file, or the new name may point at blocks never written. So the content is fsynced before
the rename and the directory after it (``fsync_directory``), and only then is the write
reported done; a checkpoint "written" is a checkpoint on disk.

The temporary file is created as a plain ``open()`` creates one (0666 less the process's umask,
not ``mkstemp``'s owner-only 0600), and takes the replaced file's mode when there is one;
otherwise every report, model and bundle would be readable by its owner alone (a terminal run
by another account, a shared research folder).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

TEMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; move it over ``target`` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temporary_file(target)
    try:
        yield tmp
        with contextlib.suppress(FileNotFoundError):  # a replaced file keeps its own mode
            os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        fsync_directory(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _new_temporary_file(target: Path) -> Path:
    """An empty file beside ``target`` with a name no other writer holds, created as ``open()`` creates one (0666
    less the umask; ``mkstemp`` would make it owner-only)."""
    while True:
        candidate = target.parent / f"{TEMP_PREFIX}{target.name}.{secrets.token_hex(6)}"
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return candidate
        except FileExistsError:
            continue


def fsync_directory(directory: str | Path) -> None:
    """Flush a directory's entries (a rename, a new or removed file) to disk.

    POSIX only: Windows cannot open a directory, and its NTFS journals renames itself."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_with(target: str | Path, writer: Callable[[Path], Any]) -> Path:
    """Call ``writer(tmp_path)`` and atomically move the result to ``target``."""
    with atomic_path(target) as tmp:
        writer(tmp)
    return Path(target)


def write_text(target: str | Path, text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``target``."""
    return write_with(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(target: str | Path, payload: Any) -> Path:
    """Atomically write ``payload`` as indented JSON to ``target``."""
    return write_text(target, json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")


def remove_stray_temp_files(root: str | Path) -> list[Path]:
    """Delete the ``.tmp-*`` leftovers of writes a killed process never finished.

    Only call this where no other process is writing (a run directory at resume)."""
    strays = sorted(Path(root).rglob(TEMP_PREFIX + "*")) if Path(root).is_dir() else []
    for stray in strays:
        stray.unlink(missing_ok=True)
    return strays
