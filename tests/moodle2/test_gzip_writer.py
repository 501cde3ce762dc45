"""The tgz writer's deflate thread (moodle2/archive_writer.py) when the
output fails: the error reaches the producer, never a hang.  A failed last
write (a small archive to a full disk, or `export -o - | head -c 10`) left
the thread waiting for a second end marker while close() joined it: the
export hung forever, holding its lock."""

from __future__ import annotations

import io
import threading

import pytest

from coursevault.moodle2.archive_writer import GzipWriter


class _FailingOut(io.RawIOBase):
    """Takes ``room`` bytes, then fails every write as a full disk does."""

    def __init__(self, room: int) -> None:
        self.room = room

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if len(data) > self.room:
            raise OSError(28, "No space left on device")
        self.room -= len(data)
        return len(data)


@pytest.mark.parametrize("size", [100, 3 << 20])  # failing at the last flush, or mid-stream
def test_a_failed_write_reaches_close_instead_of_hanging(size: int) -> None:
    outcome: list[BaseException | None] = []

    def export() -> None:
        writer = GzipWriter(_FailingOut(room=10), level=1)  # the header fits
        try:
            writer.write(bytes(range(256)) * (size // 256 + 1))
            writer.close()
        except OSError as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=export, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "the writer hung"
    assert isinstance(outcome[0], OSError) and outcome[0].errno == 28
