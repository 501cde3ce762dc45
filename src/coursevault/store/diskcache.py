"""A local disk cache of a remote repository's content-addressed files
(after restic's ``backend/cache``).

Packs, index files and snapshot records are named by the hash of what they
hold, so a name never changes its bytes -- it only goes away (prune).  What
was read of them once is therefore kept on local disk under the repository's
cache folder and served from there afterwards: a warm repository's ``log``,
``export`` or ``ls`` of a course read the catalog and these files, and
their requests to the service are then only the listing that tells new
files from known ones (docs/benchmarks.md counts them).  Mutable files
(config, locks, refs) always go to the service, and so do listings and
``exists``: they are how another machine's writes and deletes are seen.

A pack is read by block ranges; each range read is kept as its own file
(``<key>@<offset>+<length>``), a whole-file read as ``<key>``, which then
serves any range of it.  Index files and snapshot records written through
the cache are kept as written (their next reader is usually this machine).
The cache holds at most ``capacity`` bytes: past that, the least recently
used files go first.  It is only a cache: any file of it may be deleted at
any time, and one that cannot be written is skipped, never an error.

``check`` and the repairs judge what the service holds, not what this
machine kept of it: they run :func:`bypassed` (as restic's check does not
use the cache), reading every file from the service.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from coursevault.errors import CorruptionError
from coursevault.store.backend import Backend
from coursevault.store.wrappers import IMMUTABLE_PREFIXES, BackendWrapper

DEFAULT_CAPACITY = 2 * 1024 * 1024 * 1024
CACHE_FOLDER = "objects"  # below the repository's cache folder, beside its catalog
# written through: small, and read by the next command on this machine
_KEEP_ON_WRITE = ("index/", "snapshots/")


class DiskCache(BackendWrapper):
    """Reads of immutable files served from ``folder`` once read (module docstring)."""

    def __init__(self, inner: Backend, folder: Path, capacity: int = DEFAULT_CAPACITY) -> None:
        super().__init__(inner)
        self.folder = folder
        self.capacity = capacity
        self.hits = 0
        self.bypass = False  # see bypassed()
        self._size: int | None = None  # measured on the first store
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # a worker process opens its own
        state = dict(self.__dict__)
        del state["_lock"]
        state["_size"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _path(self, key: str, offset: int = 0, length: int | None = None) -> Path:
        if offset == 0 and length is None:
            return self.folder / key
        return self.folder / f"{key}@{offset}+{length if length is not None else 'end'}"

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        if self.bypass or not key.startswith(IMMUTABLE_PREFIXES):
            return self.inner.read(key, offset, length)
        cached = self._cached(key, offset, length)
        if cached is not None:
            self.hits += 1
            return cached
        data = self.inner.read(key, offset, length)
        self._store(self._path(key, offset, length), data)
        return data

    def _cached(self, key: str, offset: int, length: int | None) -> bytes | None:
        for path, whole in ((self._path(key, offset, length), False), (self._path(key), True)):
            try:
                with open(path, "rb") as f:
                    if whole and offset:
                        f.seek(offset)
                    data = f.read() if length is None or not whole else f.read(length)
                os.utime(path)  # recently used: evicted last
            except OSError:
                continue
            if length is None or len(data) == length:
                return data
        return None

    def write(self, key: str, data: bytes | bytearray | memoryview) -> None:
        self._forget(key)
        self.inner.write(key, data)
        if key.startswith(_KEEP_ON_WRITE):
            self._store(self._path(key), bytes(data))

    def delete(self, key: str) -> None:
        self._forget(key)
        self.inner.delete(key)

    def _forget(self, key: str) -> None:
        """Drop every cached read of ``key`` (its name is being reused or removed)."""
        path = self._path(key)
        with contextlib.suppress(OSError):
            for other in path.parent.glob(f"{path.name}@*"):
                other.unlink()
            path.unlink()

    def _store(self, path: Path, data: bytes) -> None:
        """Keep ``data`` at ``path`` (written whole under a temporary name, so a
        reader never sees part of it); evict the oldest files past capacity."""
        if len(data) > self.capacity:
            return
        tmp = path.parent / f".tmp-{secrets.token_hex(8)}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            return
        with self._lock:
            if self._size is None:
                self._size = sum(size for _, size, _ in self._files())
            else:
                self._size += len(data)
            if self._size > self.capacity:
                self._evict()

    def _files(self) -> list[tuple[float, int, Path]]:
        found = []
        for dirpath, _dirs, names in os.walk(self.folder):
            for name in names:
                path = Path(dirpath) / name
                with contextlib.suppress(OSError):
                    st = path.stat()
                    found.append((st.st_mtime, st.st_size, path))
        return found

    def _evict(self) -> None:
        """Delete the least recently used files until a quarter under capacity."""
        files = sorted(self._files())
        size = sum(s for _, s, _ in files)
        target = self.capacity * 3 // 4
        for _mtime, file_size, path in files:
            if size <= target:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                size -= file_size
        self._size = size


def disk_cache(backend: Backend, repository_cache: Path) -> Backend:
    """The wrap ``Repository.open`` applies to a remote backend: a disk
    cache in the repository's own cache folder (beside its catalog)."""
    return DiskCache(backend, repository_cache / CACHE_FOLDER)


def _cache_of(backend: Backend) -> DiskCache | None:
    """The :class:`DiskCache` in ``backend``'s stack of wrappers, if any."""
    cache: object = backend
    while not isinstance(cache, DiskCache) and isinstance(cache, BackendWrapper):
        cache = cache.inner
    return cache if isinstance(cache, DiskCache) else None


def read_checked(backend: Backend, key: str, ok: Callable[[bytes], bool]) -> bytes:
    """``backend.read(key)`` of a file whose name says what it holds (``ok``
    judges the bytes): bytes it rejects, or an encrypted file that does not
    open, are read once more from the service, the disk cache's copy
    dropped first.  The cache keeps what the service answered before anyone
    judged it, so a short or garbled answer (a 200 cut short, a proxy) was
    kept, and every later command on this machine took a sound file for a
    damaged one until the cache folder was deleted.  What the second read
    gives is returned as it is, for the caller to judge (real damage)."""
    cache = _cache_of(backend)
    try:
        data = backend.read(key)
        if cache is None or cache.bypass or ok(data):
            return data
    except CorruptionError:
        if cache is None or cache.bypass:
            raise
    cache._forget(key)
    return backend.read(key)


@contextlib.contextmanager
def bypassed(backend: Backend) -> Iterator[None]:
    """Within it, reads through ``backend`` go to the service and are not
    kept, whatever wraps the :class:`DiskCache` (an encrypted repository's
    sealing does): for check and the repairs, which must see the service's
    bytes, damage included."""
    cache = _cache_of(backend)
    if cache is None:
        yield
        return
    before, cache.bypass = cache.bypass, True
    try:
        yield
    finally:
        cache.bypass = before
