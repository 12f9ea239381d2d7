"""Large buffers straight from the kernel, for the commands that move packs (push, fetch, pull,
clone, get).

glibc's malloc serves an allocation above its mmap threshold (128 KiB at start) with its own
``mmap``, returned to the kernel when freed; but freeing one raises the threshold to its size
(up to 32 MiB). After the first 32 MiB pack buffer is freed, the next ones come from the heaps
of the threads that read them, where freed buffers fragment and stay resident. A fixed
threshold keeps every pack buffer an ``mmap`` of its own: a push of 1M files peaked at 551 MB
resident with the default and at 433 MB with 4 MiB, in the same time. Set only by the CLI (a
program embedding dsrepo keeps its own allocator settings); elsewhere than glibc, nothing.
"""

from __future__ import annotations

import sys

M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter number (malloc.h); setting it also stops the adjustment."""
THRESHOLD = 4 << 20


def fix_mmap_threshold() -> bool:
    """Set glibc's mmap threshold to ``THRESHOLD``; whether it was set."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes  # ~6 ms: only the commands that call this pay for it

    try:
        mallopt = ctypes.CDLL(None).mallopt  # the running process's C library
    except (OSError, AttributeError):
        return False  # not glibc (musl has no mallopt)
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD))
