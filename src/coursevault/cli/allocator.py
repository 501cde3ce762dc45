"""glibc's allocator, held to fixed thresholds for a backup process.

glibc serves a request of at least its mmap threshold (128 KiB at first)
with a mapping of its own, returned to the system when freed -- and then
raises the threshold to that size, up to 32 MiB, so that the next ones come
from the heap.  A backup frees such buffers all along: a pack (16 MiB) as it
is written, zstd's outputs, a file's read window.  Once they come from the
heap, a pack grown by ``+=`` is moved as it grows and leaves holes the heap
keeps: a 1,000-user course's backup ended with 50-70 MB free inside its heap
(``mallinfo2``), part of its peak RSS, where a 100-user course's holds 30.

Fixing the threshold at 1 MiB (which turns the raising off) keeps every
buffer of a MiB or more in a mapping of its own, and the trim threshold at
8 MiB returns the heap's free top without trimming at every turn (at the
default 128 KiB, the system time of a backup doubled).  Only the process
does this (``app.run``): what a buffer of a MiB costs is its page faults,
which the heap's reuse saved -- no measurable CPU on a backup of either
size (docs/benchmarks.md, section 9).
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 20
TRIM_THRESHOLD = 8 << 20


def fix_thresholds() -> bool:
    """Set glibc's thresholds; False where there is no glibc to set them in
    (another libc, another system: its allocator is left as it is)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # musl, say: its mallopt does nothing
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
