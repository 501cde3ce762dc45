"""Backends that wrap a backend (after restic's ``backend/retry``, ``backend/cache``).

What a remote store needs around it -- retrying a call that failed on the
way, keeping what was read -- is written once here, not in every backend and
not in the repository: an S3 backend stays the few calls of ``backend.py``,
and the repository reads through whatever stack it is given.  Each wrapper is
a :class:`~coursevault.store.backend.Backend` and passes the contract suite
(``tests/store/test_backend_contract.py``).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from typing import TypeVar

from coursevault.errors import BackendError
from coursevault.store.backend import Backend

T = TypeVar("T")


class BackendWrapper:
    """Passes every call to ``inner``; a wrapper overrides what it changes."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner

    def location(self) -> str:
        return self.inner.location()

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        return self.inner.list(prefix)

    def list_temporary(self) -> Iterator[str]:
        return self.inner.list_temporary()

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        return self.inner.read(key, offset, length)

    def write(self, key: str, data: bytes | bytearray | memoryview) -> None:
        self.inner.write(key, data)

    def create(self, key: str, data: bytes) -> bool:
        return self.inner.create(key, data)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def compare_and_swap(self, key: str, expected: bytes | None, data: bytes) -> bool:
        return self.inner.compare_and_swap(key, expected, data)


class RetryingBackend(BackendWrapper):
    """Retries a call that raised :class:`BackendError` (a timeout, a 500), up
    to ``attempts`` times with pauses doubling from ``pause`` seconds.

    Never retried: a missing file (``FileNotFoundError`` is an answer, not a
    failure) and an error that says it is not ``retryable`` (``TruncatedError``,
    a file shorter than asked: damage, which does not heal; an S3 "access
    denied" or "no such bucket").  ``create`` and ``compare_and_swap`` may
    have taken effect before they failed (the service stored the PUT, its
    answer was lost) -- tried again as they are, they would answer "exists"
    or "changed meanwhile" for the caller's own write -- so what the failed
    try left is read first: the caller's bytes there, it is done; the
    expected ones (or none), it is tried again; others, another writer's,
    it lost.  The last failure is raised, never swallowed (restic #3646).
    A listing is retried only before it yielded anything.
    """

    def __init__(
        self,
        inner: Backend,
        attempts: int = 4,
        pause: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(inner)
        self.attempts = max(1, attempts)
        self.pause = pause
        self._sleep = sleep

    def _retry(self, call: Callable[[], T]) -> T:
        pause = self.pause
        for _attempt in range(self.attempts - 1):
            try:
                return call()
            except BackendError as exc:
                if not exc.retryable:  # a short file, access denied: no retry heals it
                    raise
                self._sleep(pause)
                pause *= 2
        return call()

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        def first() -> tuple[Iterator[tuple[str, int]], list[tuple[str, int]]]:
            listing = self.inner.list(prefix)
            return listing, list(itertools.islice(listing, 1))

        listing, head = self._retry(first)
        yield from head
        yield from listing

    def list_temporary(self) -> Iterator[str]:
        return iter(self._retry(lambda: list(self.inner.list_temporary())))

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        return self._retry(lambda: self.inner.read(key, offset, length))

    def write(self, key: str, data: bytes | bytearray | memoryview) -> None:
        self._retry(lambda: self.inner.write(key, data))

    def delete(self, key: str) -> None:
        self._retry(lambda: self.inner.delete(key))

    def create(self, key: str, data: bytes) -> bool:
        return self._conditional(key, None, data, lambda: self.inner.create(key, data))

    def compare_and_swap(self, key: str, expected: bytes | None, data: bytes) -> bool:
        return self._conditional(
            key, expected, data, lambda: self.inner.compare_and_swap(key, expected, data))

    def _conditional(
        self, key: str, expected: bytes | None, data: bytes, call: Callable[[], bool]
    ) -> bool:
        """``call`` (a create or a compare-and-swap of ``key`` from ``expected``
        to ``data``), tried again only when a read shows its failure did not
        take effect (the class docstring)."""
        pause = self.pause
        for _attempt in range(self.attempts - 1):
            try:
                return call()
            except BackendError as exc:
                if not exc.retryable:
                    raise
                self._sleep(pause)
                pause *= 2
            current: bytes | None
            try:
                current = self._retry(lambda: self.inner.read(key))
            except FileNotFoundError:
                current = None
            if current == bytes(data):
                return True  # the failed try was stored
            if current != expected:
                return False  # another writer's meanwhile
        return call()

    def exists(self, key: str) -> bool:
        return self._retry(lambda: self.inner.exists(key))


# Content-addressed files: a name's content never changes, it only goes away.
IMMUTABLE_PREFIXES = ("packs/", "index/", "snapshots/")


class CachingBackend(BackendWrapper):
    """Keeps the last ``capacity`` bytes of reads of content-addressed files
    (packs, index files, snapshot records) in memory, so reading them again
    costs no round trip.  Mutable files (config, locks, refs) always go to
    the backend.  A write or delete through this wrapper drops the key's
    reads; a file another process deletes stays readable here until
    evicted, as a copy read just before the delete would be.
    """

    def __init__(self, inner: Backend, capacity: int = 32 << 20) -> None:
        super().__init__(inner)
        self.capacity = capacity
        self._reads: OrderedDict[tuple[str, int, int | None], bytes] = OrderedDict()
        self._bytes = 0

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        if not key.startswith(IMMUTABLE_PREFIXES):
            return self.inner.read(key, offset, length)
        slot = (key, offset, length)
        hit = self._reads.get(slot)
        if hit is not None:
            self._reads.move_to_end(slot)
            return hit
        data = self.inner.read(key, offset, length)
        if len(data) <= self.capacity:
            self._reads[slot] = data
            self._bytes += len(data)
            while self._bytes > self.capacity:
                self._bytes -= len(self._reads.popitem(last=False)[1])
        return data

    def _drop(self, key: str) -> None:
        for slot in [s for s in self._reads if s[0] == key]:
            self._bytes -= len(self._reads.pop(slot))

    def write(self, key: str, data: bytes | bytearray | memoryview) -> None:
        self._drop(key)
        self.inner.write(key, data)

    def delete(self, key: str) -> None:
        self._drop(key)
        self.inner.delete(key)


class ConcurrencyLimiter(BackendWrapper):
    """At most ``connections`` calls in flight at once (restic's ``sema``):
    the writer's parallel uploads and a pool of readers share one bound, the
    ``--s3-connections`` a user set, whatever the layers above do.  A
    listing holds a slot only while it fetches a page."""

    def __init__(self, inner: Backend, connections: int) -> None:
        super().__init__(inner)
        self.connections = max(1, connections)
        self._slots = threading.BoundedSemaphore(self.connections)

    def __getstate__(self) -> dict[str, object]:  # a worker process has its own slots
        return {"inner": self.inner, "connections": self.connections}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._slots = threading.BoundedSemaphore(self.connections)

    def _limited(self, call: Callable[[], T]) -> T:
        with self._slots:
            return call()

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        listing = self.inner.list(prefix)
        while True:
            item = self._limited(lambda: next(listing, None))
            if item is None:
                return
            yield item

    def list_temporary(self) -> Iterator[str]:
        return iter(self._limited(lambda: list(self.inner.list_temporary())))

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        return self._limited(lambda: self.inner.read(key, offset, length))

    def write(self, key: str, data: bytes | bytearray | memoryview) -> None:
        self._limited(lambda: self.inner.write(key, data))

    def create(self, key: str, data: bytes) -> bool:
        return self._limited(lambda: self.inner.create(key, data))

    def delete(self, key: str) -> None:
        self._limited(lambda: self.inner.delete(key))

    def exists(self, key: str) -> bool:
        return self._limited(lambda: self.inner.exists(key))

    def compare_and_swap(self, key: str, expected: bytes | None, data: bytes) -> bool:
        return self._limited(lambda: self.inner.compare_and_swap(key, expected, data))


class CountingBackend(BackendWrapper):
    """Counts the calls that reach ``inner`` by kind and by the key's first
    folder (``read packs``, ``list index``...): what tests and benchmarks
    measure a command's traffic with.  Under the cache it counts what went
    to the service; a listing counts once per call, not per page."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, kind: str, key: str) -> None:
        folder = key.split("/", 1)[0] if "/" in key else key or "/"
        with self._lock:
            self.calls[f"{kind} {folder}"] += 1

    def __getstate__(self) -> dict[str, object]:  # a worker process counts its own
        return {"inner": self.inner, "calls": Counter()}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def total(self) -> int:
        return sum(self.calls.values())

    @property
    def requests(self) -> int:
        """Every call so far (what ``sync`` reports as requests)."""
        return self.total()

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        self._count("list", prefix)
        return self.inner.list(prefix)

    def list_temporary(self) -> Iterator[str]:
        self._count("list", "")
        return self.inner.list_temporary()

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        self._count("read", key)
        return self.inner.read(key, offset, length)

    def write(self, key: str, data: bytes | bytearray | memoryview) -> None:
        self._count("write", key)
        self.inner.write(key, data)

    def create(self, key: str, data: bytes) -> bool:
        self._count("create", key)
        return self.inner.create(key, data)

    def delete(self, key: str) -> None:
        self._count("delete", key)
        self.inner.delete(key)

    def exists(self, key: str) -> bool:
        self._count("exists", key)
        return self.inner.exists(key)

    def compare_and_swap(self, key: str, expected: bytes | None, data: bytes) -> bool:
        self._count("cas", key)
        return self.inner.compare_and_swap(key, expected, data)
