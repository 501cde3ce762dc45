"""glibc's allocator held to fixed thresholds, for the processes whose big
buffers would otherwise fragment the heap (a backup, a restore).

glibc serves a request of at least its mmap threshold (128 KiB at first)
with a mapping of its own, returned to the system when freed -- and then
raises the threshold to that size, up to 32 MiB, so that the next ones come
from the heap, where the buffers and the small objects made between them
leave holes the heap keeps.  Setting the threshold turns the raising off.

- A backup frees packs (16 MiB), zstd's outputs and files' read windows all
  along: at 1 MiB, with the trim threshold at 8 MiB (the heap's free top
  returned without trimming at every turn: at the default 128 KiB a
  backup's system time doubled), a 1,000-user course's backup no longer
  ends with 50-70 MB free inside its heap (docs/benchmarks.md, section 9).
- A restore reads members of up to a few MB and decodes 1 MiB blocks one
  after another: at glibc's own 128 KiB an M course's restore peaks 2.4 MB
  lower on SQLite and 2.9 MB on PostgreSQL, for 0.4 s more system time
  (section 15).

What a buffer in a mapping of its own costs is its page faults, which the
heap's reuse saved.  Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_THRESHOLD = -3
BACKUP_MMAP_THRESHOLD = 1 << 20
BACKUP_TRIM_THRESHOLD = 8 << 20
RESTORE_MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value


def fix_thresholds(mmap_threshold: int, trim_threshold: int | None = None) -> bool:
    """Set glibc's mmap threshold (and trim threshold) for this process;
    False where there is no glibc to set them in (another libc, another
    system: its allocator is left as it is) or it refuses."""
    libc = _glibc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold))
    if trim_threshold is not None:
        done = bool(mallopt(M_TRIM_THRESHOLD, trim_threshold)) and done
    return done


class Trimmer:
    """Hands the heap's free pages back to the system (glibc's
    ``malloc_trim(0)``) once every ``every`` bytes of work.

    The trim threshold only returns free memory at the heap's top; what a
    stored member's buffers freed between longer-lived objects stays in the
    process.  A database backup stores a course's members one after another,
    and the night of the demo M course peaked 2.2 MB lower (4,000 users: 3.8
    MB) trimming every 4 MiB of members: 36 calls, 14 ms in all; trimming
    before every member (4,700 calls) cost 0.6 s.  Does nothing where there
    is no glibc."""

    def __init__(self, every: int) -> None:
        self.every = every
        self._since = 0
        self._trim = _malloc_trim()

    def add(self, size: int) -> None:
        """``size`` more bytes of work done: trim if they make ``every``."""
        self._since += size
        if self._since >= self.every:
            self.trim()

    def trim(self) -> None:
        self._since = 0
        if self._trim is not None:
            self._trim(0)


def _glibc() -> ctypes.CDLL | None:
    """This process's C library if it is glibc; None elsewhere (another
    system, or musl, say, whose mallopt does nothing)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "gnu_get_libc_version") else None


def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None (another libc, another system)."""
    libc = _glibc()
    if libc is None:
        return None
    trim = libc.malloc_trim
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def for_backup() -> bool:
    return fix_thresholds(BACKUP_MMAP_THRESHOLD, BACKUP_TRIM_THRESHOLD)


def for_restore() -> bool:
    return fix_thresholds(RESTORE_MMAP_THRESHOLD)
