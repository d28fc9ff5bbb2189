"""Process-wide memory allocator setting for the processes that run the pipeline (the server's worker, the CLI, the
benchmarks).

The renderer, the lift and the fit allocate and free many arrays of tens of MB per call (a four-view 1024^2 z-buffer
is 33.5 MB). glibc's malloc serves blocks above its mmap threshold (dynamic, at most 32 MiB) with fresh mappings and
returns freed heap above its trim threshold to the system, so such arrays are faulted in again page by page on
every call (figures in the README's benchmarks). Raising both thresholds keeps freed blocks in the heap for reuse.
PyTorch's CPU build has no caching allocator of its own, so this is the one place to do it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

# mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks below this come from the heap and are reused after free; a larger one (model weights on load) still gets
# its own mapping and goes back to the system when freed.
MMAP_THRESHOLD = 128 << 20
# Free memory kept at the top of the heap before it is returned to the system.
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Asks glibc's malloc to serve blocks below `mmap_threshold` bytes from its heap and to keep up to
    `trim_threshold` bytes of freed heap, so large arrays freed by one call are reused by the next instead of being
    unmapped and faulted in again. Returns whether the setting took effect: False (and nothing changed) off Linux,
    on another C library (musl, macOS, Windows) or where mallopt refuses a value."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt, glibc_version = libc.mallopt, libc.gnu_get_libc_version  # only glibc has the latter
    except (OSError, AttributeError):  # another C library: its mallopt, if any, takes other parameters
        return False
    glibc_version.restype = ctypes.c_char_p
    if not glibc_version():
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = mallopt(_M_MMAP_THRESHOLD, mmap_threshold) == 1 and mallopt(_M_TRIM_THRESHOLD, trim_threshold) == 1
    if not done:
        log.warning("glibc refused the malloc thresholds; large arrays will be faulted in again on each call")
    return done
