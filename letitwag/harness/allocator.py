"""Keep freed large blocks in the process heap while a model runs on the CPU (glibc only).

Why: glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh
``mmap`` and returns it with ``munmap`` on free. A ViT's activations at batch 64 are ~39 MiB
each (3,200 tokens x 3,072 floats), so every elementwise operation of every block faults in
and zeroes new pages. On the 2-core development machine
``benchmarks/bench_image_tower.py --no-compile`` measured the harness's tower layout at 14.60
images/s without this setting and 17.15 with it (same run), and ``bench_evaluate.py`` gave
1.22x CLIP_benchmark before it and 1.28x after (two runs). With mmap off for the run, freed blocks
stay in the heap and the next batch reuses them; the settings are put back afterwards and the
heap is trimmed, so the memory is returned when the run is over. Other C libraries
(musl, macOS) are left alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import platform
from typing import Iterator

logger = logging.getLogger(__name__)

# mallopt(3) parameters and glibc's defaults for them
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
DEFAULT_TRIM_THRESHOLD = 128 * 1024
DEFAULT_MMAP_MAX = 65536
RUN_TRIM_THRESHOLD = 1 << 30  # keep up to 1 GiB of freed heap at its top during the run


def _glibc():
    """glibc's handle, or None on any other C library."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


@contextlib.contextmanager
def reuse_freed_memory() -> Iterator[bool]:
    """For the block: serve large allocations from the heap and keep freed ones for reuse.

    Yields whether the allocator was changed (False off glibc)."""
    libc = _glibc()
    changed = False
    if libc is not None:
        changed = libc.mallopt(M_MMAP_MAX, 0) == 1
        changed = libc.mallopt(M_TRIM_THRESHOLD, RUN_TRIM_THRESHOLD) == 1 or changed
    if changed:
        logger.debug("glibc: large blocks kept in the heap for the run")
    try:
        yield changed
    finally:
        if changed:
            libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
            libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
            libc.malloc_trim(0)
