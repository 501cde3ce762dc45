"""What the wrappers of wrappers.py add, beyond the contract they keep
(test_backend_contract.py runs that on them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from coursevault.errors import BackendError, TruncatedError
from coursevault.store.backend import LocalBackend
from coursevault.store.wrappers import BackendWrapper, CachingBackend, RetryingBackend


class Flaky(BackendWrapper):
    """Fails the next ``failures`` calls of each kind with ``error``; counts calls."""

    def __init__(self, inner: LocalBackend, failures: int, error: Exception) -> None:
        super().__init__(inner)
        self.failures = failures
        self.error = error
        self.calls: dict[str, int] = {}

    def _call(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if self.calls[name] <= self.failures:
            raise self.error

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        self._call("read")
        return super().read(key, offset, length)

    def write(self, key: str, data: bytes | bytearray | memoryview) -> None:
        self._call("write")
        super().write(key, data)

    def create(self, key: str, data: bytes) -> bool:
        self._call("create")
        return super().create(key, data)

    def compare_and_swap(self, key: str, expected: bytes | None, data: bytes) -> bool:
        self._call("cas")
        return super().compare_and_swap(key, expected, data)

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        self._call("list")
        return super().list(prefix)


@pytest.fixture
def local(tmp_path: Path) -> LocalBackend:
    backend = LocalBackend(tmp_path / "store")
    backend.write("packs/ab/ab01", bytes(range(50)))
    return backend


def test_retries_a_failing_call_until_it_succeeds(local: LocalBackend) -> None:
    flaky = Flaky(local, 2, BackendError("timed out"))
    pauses: list[float] = []
    b = RetryingBackend(flaky, attempts=3, pause=0.5, sleep=pauses.append)
    assert b.read("packs/ab/ab01", 0, 4) == bytes(range(4))
    assert flaky.calls["read"] == 3 and pauses == [0.5, 1.0]
    b.write("index/0001", b"x")
    assert dict(b.list("index/")) == {"index/0001": 1}


def test_gives_up_with_the_last_failure(local: LocalBackend) -> None:
    flaky = Flaky(local, 10, BackendError("HTTP 500"))
    b = RetryingBackend(flaky, attempts=4, sleep=lambda _s: None)
    with pytest.raises(BackendError, match="HTTP 500"):
        b.read("packs/ab/ab01")
    assert flaky.calls["read"] == 4


@pytest.mark.parametrize(
    "error", [FileNotFoundError("packs/ab/ab01"), TruncatedError("short read")]
)
def test_missing_or_truncated_is_an_answer_not_retried(
    local: LocalBackend, error: Exception
) -> None:
    flaky = Flaky(local, 1, error)
    b = RetryingBackend(flaky, sleep=lambda _s: pytest.fail("paused"))
    with pytest.raises(type(error)):
        b.read("packs/ab/ab01")
    assert flaky.calls["read"] == 1


def test_create_and_compare_and_swap_are_not_retried(local: LocalBackend) -> None:
    """Their failed attempt may have taken effect: a retry would answer
    "exists" for the caller's own write."""
    flaky = Flaky(local, 1, BackendError("timed out"))
    b = RetryingBackend(flaky, sleep=lambda _s: pytest.fail("paused"))
    with pytest.raises(BackendError):
        b.create("config", b"{}")
    with pytest.raises(BackendError):
        b.compare_and_swap("refs/heads/c", None, b"one")
    assert flaky.calls == {"create": 1, "cas": 1}


def test_the_cache_reads_content_addressed_files_once(local: LocalBackend) -> None:
    counting = Flaky(local, 0, BackendError("never"))
    b = CachingBackend(counting, capacity=1000)
    local.write("config", b"{}")
    for _ in range(3):
        assert b.read("packs/ab/ab01", 10, 5) == bytes(range(10, 15))
        assert b.read("config") == b"{}"  # mutable: always read
    assert counting.calls["read"] == 1 + 3
    b.delete("packs/ab/ab01")
    with pytest.raises(FileNotFoundError):
        b.read("packs/ab/ab01", 10, 5)


def test_the_cache_keeps_at_most_its_capacity(local: LocalBackend) -> None:
    counting = Flaky(local, 0, BackendError("never"))
    b = CachingBackend(counting, capacity=20)
    b.read("packs/ab/ab01", 0, 15)
    b.read("packs/ab/ab01", 15, 15)  # evicts the first
    b.read("packs/ab/ab01", 0, 15)
    assert counting.calls["read"] == 3
    b.read("packs/ab/ab01")  # larger than the cache: not kept
    b.read("packs/ab/ab01")
    assert counting.calls["read"] == 5


def test_the_concurrency_limit_bounds_calls_in_flight(local: LocalBackend) -> None:
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from coursevault.store.wrappers import ConcurrencyLimiter, CountingBackend

    in_flight = 0
    most = 0
    guard = threading.Lock()

    class Slow(BackendWrapper):
        def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
            nonlocal in_flight, most
            with guard:
                in_flight += 1
                most = max(most, in_flight)
            time.sleep(0.02)
            with guard:
                in_flight -= 1
            return super().read(key, offset, length)

    counted = CountingBackend(Slow(local))
    limited = ConcurrencyLimiter(counted, 3)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: limited.read("packs/ab/ab01", i, 1), range(24)))
    assert results == [bytes([i]) for i in range(24)]
    assert most == 3
    assert counted.calls == {"read packs": 24}


def test_an_error_that_says_it_cannot_heal_is_not_retried(local: LocalBackend) -> None:
    flaky = Flaky(local, 10, BackendError("S3 GetObject: AccessDenied (HTTP 403)", retryable=False))
    b = RetryingBackend(flaky, attempts=4, sleep=lambda _s: None)
    with pytest.raises(BackendError, match="AccessDenied"):
        b.read("packs/ab/ab01")
    assert flaky.calls["read"] == 1
