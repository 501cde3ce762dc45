"""Pack uploads in the background (uploads.py): bounded, errors raised, drained."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from coursevault.errors import BackendError
from coursevault.store.backend import LocalBackend
from coursevault.store.spool import Spool
from coursevault.store.uploads import PackUploads
from coursevault.store.wrappers import BackendWrapper


class Slow(BackendWrapper):
    """Writes take 20 ms; records the most in flight; fails keys containing ``fail``."""

    def __init__(self, inner: LocalBackend) -> None:
        super().__init__(inner)
        self.in_flight = 0
        self.most = 0
        self.guard = threading.Lock()

    def write(self, key: str, data: bytes | bytearray | memoryview) -> None:
        with self.guard:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            time.sleep(0.02)
            if "fail" in key:
                raise BackendError(f"S3 PutObject {key}: InternalError (HTTP 500)")
            super().write(key, data)
        finally:
            with self.guard:
                self.in_flight -= 1


@pytest.fixture
def slow(tmp_path: Path) -> Slow:
    return Slow(LocalBackend(tmp_path / "store"))


def test_at_most_parallel_in_flight_and_all_written_after_drain(slow: Slow) -> None:
    uploads = PackUploads(slow, parallel=3)
    for i in range(12):
        uploads.write(f"packs/00/{i:02d}", Spool(bytes([i]) * 10))
    uploads.drain()
    assert slow.most == 3
    assert len(dict(slow.list("packs/"))) == 12
    uploads.close()


def test_a_failed_upload_is_raised_by_the_next_call(slow: Slow) -> None:
    uploads = PackUploads(slow, parallel=2)
    uploads.write("packs/00/fail", Spool(b"x"))
    uploads.write("packs/00/ok1", Spool(b"x"))
    with pytest.raises(BackendError, match="HTTP 500"):
        for i in range(10):  # a later write, or the drain, says so
            uploads.write(f"packs/00/more{i}", Spool(b"x"))
        uploads.drain()
    uploads.close()  # waits, ignores what is left
    assert slow.in_flight == 0


def test_one_at_a_time_writes_in_the_callers_thread(slow: Slow) -> None:
    uploads = PackUploads(slow, parallel=1)
    with pytest.raises(BackendError):
        uploads.write("packs/00/fail", Spool(b"x"))
    uploads.write("packs/00/ok", Spool(b"x"))
    assert slow.exists("packs/00/ok")  # no drain needed
