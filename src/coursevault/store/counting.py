"""A backend wrapper that counts the calls and bytes crossing it.

What ``sync`` reports as requests and bytes, and what the benchmarks count:
every call to the backend under it is one request (a listing is one call
here; an S3 backend pages it, 1,000 keys a request, so it counts a
little low there), and the bytes read and written are what crossed.
"""

from __future__ import annotations

from collections.abc import Iterator

from coursevault.store.backend import Backend
from coursevault.store.wrappers import BackendWrapper


class CountingBackend(BackendWrapper):
    """Counts requests, bytes read and bytes written through ``inner``."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.requests = 0
        self.bytes_read = 0
        self.bytes_written = 0

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        self.requests += 1
        return self.inner.list(prefix)

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        self.requests += 1
        data = self.inner.read(key, offset, length)
        self.bytes_read += len(data)
        return data

    def write(self, key: str, data: bytes | bytearray | memoryview) -> None:
        self.requests += 1
        self.inner.write(key, data)
        self.bytes_written += len(data)

    def create(self, key: str, data: bytes) -> bool:
        self.requests += 1
        created = self.inner.create(key, data)
        self.bytes_written += len(data)
        return created

    def delete(self, key: str) -> None:
        self.requests += 1
        self.inner.delete(key)

    def exists(self, key: str) -> bool:
        self.requests += 1
        return self.inner.exists(key)

    def compare_and_swap(self, key: str, expected: bytes | None, data: bytes) -> bool:
        self.requests += 2  # a read and a conditional write, on any backend
        swapped = self.inner.compare_and_swap(key, expected, data)
        self.bytes_written += len(data)
        return swapped
