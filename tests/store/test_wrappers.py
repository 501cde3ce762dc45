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


class Landing(BackendWrapper):
    """Stores the next ``failures`` creates and swaps, then fails them all
    the same (the service stored the PUT; its answer was lost)."""

    def __init__(self, inner: LocalBackend, failures: int) -> None:
        super().__init__(inner)
        self.failures = failures
        self.calls = 0

    def _landed(self, done: bool) -> bool:
        self.calls += 1
        if self.calls <= self.failures:
            raise BackendError("HTTP 500 after the PUT")
        return done

    def create(self, key: str, data: bytes) -> bool:
        return self._landed(super().create(key, data))

    def compare_and_swap(self, key: str, expected: bytes | None, data: bytes) -> bool:
        return self._landed(super().compare_and_swap(key, expected, data))


def test_create_and_compare_and_swap_are_retried_only_if_they_did_not_land(
    local: LocalBackend,
) -> None:
    """Their failed attempt may have taken effect: tried again as it is, it
    would answer "exists" (or "changed") for the caller's own write.  What
    is there says which it was."""
    pauses: list[float] = []
    flaky = Flaky(local, 1, BackendError("timed out"))  # failed before it took effect
    b = RetryingBackend(flaky, sleep=pauses.append)
    assert b.create("config", b"{}") is True
    assert b.compare_and_swap("refs/heads/c", None, b"one") is True
    # (its first read-back failed too, and was retried as a read)
    assert flaky.calls == {"create": 2, "cas": 2, "read": 3} and local.read("config") == b"{}"

    landing = RetryingBackend(Landing(local, 2), sleep=pauses.append)
    assert landing.create("journal/1", b"entry") is True
    assert landing.compare_and_swap("refs/heads/c", b"one", b"two") is True
    assert local.read("refs/heads/c") == b"two"

    other = RetryingBackend(Flaky(local, 1, BackendError("timed out")), sleep=pauses.append)
    local.write("refs/heads/d", b"another writer's")
    assert other.compare_and_swap("refs/heads/d", b"mine", b"new") is False
    assert local.read("refs/heads/d") == b"another writer's"

    never = Flaky(local, 10, BackendError("HTTP 500"))
    never.read = local.read  # type: ignore[method-assign]  # only the create fails, every time
    with pytest.raises(BackendError, match="HTTP 500"):
        RetryingBackend(never, attempts=3, sleep=pauses.append).create("journal/2", b"x")
    assert never.calls["create"] == 3 and not local.exists("journal/2")
    denied = Flaky(local, 1, BackendError("AccessDenied", retryable=False))
    with pytest.raises(BackendError, match="AccessDenied"):
        RetryingBackend(denied, sleep=pauses.append).create("journal/3", b"x")
    assert denied.calls == {"create": 1}


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
