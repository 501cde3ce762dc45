"""Large buffers given back to the system when freed (glibc), for a restore.

A restore reads members of up to a few MB (an M course's users.xml and
its assignments with 600 submissions) and decodes 1 MiB blocks, one after
another, each freed before the next.  glibc serves an allocation of
128 KiB or more from ``mmap`` and gives it back on ``free`` -- until the
first such block is freed: then it raises that threshold to the block's
size (its "dynamic mmap threshold"), and every later buffer of that size
comes from the heap, where the buffers and the small objects made between
them fragment it.  Fixing the threshold keeps large buffers out of the
heap: an M course's restore peaks 2.4 MB lower on SQLite and 2.9 MB on
PostgreSQL, an S course's the same as before (docs/benchmarks.md, section
15), for 0.4 s more system time on M (fresh pages mapped and zeroed for
each block: 3 % of its CPU).  Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # mallopt's parameter (malloc.h)
THRESHOLD = 128 * 1024  # glibc's own starting value


def keep_large_buffers_out_of_the_heap() -> bool:
    """Fix glibc's mmap threshold for this process; False where there is
    no glibc (or it refuses)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD))
