"""Undo an allocator setting that halves training speed in Dask workers.

Dask's nanny starts each worker with ``MALLOC_TRIM_THRESHOLD_=65536`` so that freed
memory goes back to the OS quickly. Setting it also freezes glibc's mmap threshold at
128 KiB (it normally grows to fit the program), so every buffer above that size, which is
most of what a PPO update allocates per minibatch, is a fresh ``mmap`` whose pages fault
in again each time: measured here, training ran at half speed (457 against about 850
timesteps/s). glibc reads the variable once, at start-up, so the fix is ``mallopt`` in
the running process: a larger trim threshold and a fixed 32 MiB mmap threshold.
Elsewhere this does nothing.
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
_relaxed_in: set[int] = set()  # pids already fixed: once per process, not once per task


def relax_heap_trimming() -> bool:
    """Raise glibc's trim threshold if the environment set a small one; True if it did."""
    wanted = os.environ.get("MALLOC_TRIM_THRESHOLD_", "").strip()
    if not sys.platform.startswith("linux") or not wanted.isdigit() or int(wanted) >= _SMALL_THRESHOLD:
        return False
    if os.getpid() in _relaxed_in:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        changed = bool(libc.mallopt(M_TRIM_THRESHOLD, TRAINING_TRIM_THRESHOLD)) \
            and bool(libc.mallopt(M_MMAP_THRESHOLD, TRAINING_MMAP_THRESHOLD))
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to undo
        return False
    if changed:
        _relaxed_in.add(os.getpid())
        logger.info("MALLOC_TRIM_THRESHOLD_=%s (set e.g. by a Dask nanny) halves training speed; heap trim and "
                    "mmap thresholds raised to %d and %d MiB", wanted, TRAINING_TRIM_THRESHOLD >> 20,
                    TRAINING_MMAP_THRESHOLD >> 20)
    return changed
