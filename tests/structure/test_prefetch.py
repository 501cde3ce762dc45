"""PrefetchWindow: the rows a task gets are the rows its window read, packed or not."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from coursevault.structure import prefetch
from coursevault.structure.prefetch import PrefetchWindow

VALUES = [str(v) for v in range(1, 121)]  # 120 tasks: three windows of 50, 50, 20


def _table() -> list[dict[str, Any]]:
    """Rows of several tasks interleaved, as an IN query without ORDER BY
    on the task column gives them; text, NULLs and empty strings."""
    return [
        {
            "id": str(i),
            "task": VALUES[(i * 7) % len(VALUES)],
            "userid": str(i % 13),
            "text": None if i % 5 == 0 else "x" * (i % 17),
            "status": "" if i % 3 else "new",
        }
        for i in range(1, 6001)
    ]


class _Reader:
    def __init__(self, table: list[dict[str, Any]]) -> None:
        self.table = table
        self.batches: list[list[str]] = []

    def fetch(self, batch: list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        self.batches.append(batch)
        wanted = set(batch)
        for row in self.table:
            if row["task"] in wanted:
                yield row["task"], dict(row)


@pytest.mark.parametrize("compact_after", [0, 1, 100, 10_000])
def test_rows_are_the_same_whatever_is_packed(
    monkeypatch: pytest.MonkeyPatch, compact_after: int
) -> None:
    monkeypatch.setattr(prefetch, "COMPACT_AFTER", compact_after)
    table = _table()
    reader = _Reader(table)
    window = PrefetchWindow(VALUES)
    for value in VALUES:
        got = window.rows(value, reader.fetch)
        want = [r for r in table if r["task"] == value]
        assert got == want
        assert [list(r) for r in got] == [list(r) for r in want]  # column order too
    # the same queries as a window of dicts: three windows of tasks
    assert [len(b) for b in reader.batches] == [50, 50, 20]


def test_a_task_asked_again_is_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefetch, "COMPACT_AFTER", 10)
    table = _table()
    reader = _Reader(table)
    window = PrefetchWindow(VALUES)
    for value in VALUES[:60]:
        window.rows(value, reader.fetch)
    again = window.rows(VALUES[0], reader.fetch)
    assert again == [r for r in table if r["task"] == VALUES[0]]
    assert len(reader.batches) == 3


def test_values_marshal_does_not_take_stay_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefetch, "COMPACT_AFTER", 0)
    odd = object()
    table = [{"id": "1", "task": "1", "v": odd}, {"id": "2", "task": "1", "v": "a"}]
    window = PrefetchWindow(["1"])
    got = window.rows("1", _Reader(table).fetch)
    assert got == table and got[0]["v"] is odd


def test_user_data_is_read_ahead_for_fewer_tasks() -> None:
    """Submissions of one module's activities (user data by ``activityid``)
    come USER_DATA_WINDOW tasks a query, and no more is held at once;
    everything else the usual PREFETCH_WINDOW."""
    from coursevault.structure.engine import _window

    assert _window("activityid", userinfo=True) == prefetch.USER_DATA_WINDOW < 50
    assert _window("contextid", userinfo=True) == prefetch.PREFETCH_WINDOW
    assert _window("activityid", userinfo=False) == prefetch.PREFETCH_WINDOW
    table = _table()
    reader = _Reader(table)
    window = PrefetchWindow(VALUES, prefetch.USER_DATA_WINDOW)
    for value in VALUES:
        assert window.rows(value, reader.fetch) == [r for r in table if r["task"] == value]
        assert len(window.held) <= prefetch.USER_DATA_WINDOW
    assert [len(b) for b in reader.batches] == [prefetch.USER_DATA_WINDOW] * 12
