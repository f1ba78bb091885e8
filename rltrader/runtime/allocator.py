"""glibc heap settings for training: undo the one Dask workers start with, fix the thresholds.

Dask's nanny starts each worker with ``MALLOC_TRIM_THRESHOLD_=65536`` so that freed
memory goes back to the OS quickly. Setting it also freezes glibc's mmap threshold at
128 KiB (it normally grows to fit the program), so every buffer above that size, which is
most of what a PPO update allocates per minibatch, is a fresh ``mmap`` whose pages fault
in again each time: training then runs at about half speed (``bench/README.md``). glibc
reads the variable once, at start-up, so the fix is ``mallopt`` in the running process: a
larger trim threshold and a fixed 32 MiB mmap threshold.
:func:`fix_heap_thresholds` sets the same two in every training process (see why there).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers
TRAINING_TRIM_THRESHOLD = 64 * 1024 * 1024
TRAINING_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's ceiling on 64-bit
_SMALL_THRESHOLD = 1024 * 1024
_set_in: set[int] = set()  # pids whose thresholds are set: once per process, not once per task


def _set_training_thresholds() -> bool:
    """``mallopt`` the training trim and mmap thresholds, once per process; False where libc
    is not glibc (e.g. musl)."""
    if os.getpid() in _set_in:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        done = bool(libc.mallopt(M_TRIM_THRESHOLD, TRAINING_TRIM_THRESHOLD)) \
            and bool(libc.mallopt(M_MMAP_THRESHOLD, TRAINING_MMAP_THRESHOLD))
    except (OSError, AttributeError):
        return False
    if done:
        _set_in.add(os.getpid())
    return done


def relax_heap_trimming() -> bool:
    """Raise glibc's trim threshold if the environment set a small one; True if it did."""
    wanted = os.environ.get("MALLOC_TRIM_THRESHOLD_", "").strip()
    if not sys.platform.startswith("linux") or not wanted.isdigit() or int(wanted) >= _SMALL_THRESHOLD:
        return False
    first = os.getpid() not in _set_in
    changed = _set_training_thresholds()
    if changed and first:
        logger.info("MALLOC_TRIM_THRESHOLD_=%s (set e.g. by a Dask nanny) halves training speed; heap trim and "
                    "mmap thresholds raised to %d and %d MiB", wanted, TRAINING_TRIM_THRESHOLD >> 20,
                    TRAINING_MMAP_THRESHOLD >> 20)
    return changed


def fix_heap_thresholds() -> bool:
    """Fix glibc's trim and mmap thresholds for a training process; True if they are fixed.

    Left dynamic, glibc raises its mmap threshold to the largest block freed so far and
    trims the heap top whenever 128 KiB are free there: whether a PPO minibatch's
    megabyte-sized buffers come from the heap or from fresh, page-faulting ``mmap`` calls
    then depends on what the process allocated before, and so does training speed (the
    measurements are in ``bench/README.md``). Applied for every method alike (the
    original too), and not where the user set ``MALLOC_MMAP_THRESHOLD_`` themselves. The
    cost is memory: up to 64 MiB of freed heap kept for reuse.
    """
    if not sys.platform.startswith("linux") or os.environ.get("MALLOC_MMAP_THRESHOLD_", "").strip():
        return False
    return _set_training_thresholds()
