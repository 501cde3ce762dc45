"""PrefetchWindow: the rows a task gets are the rows its window read, packed or not."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from coursevault.structure import prefetch
from coursevault.structure.engine import prefetch_window
from coursevault.structure.prefetch import USER_DATA_WINDOW, PrefetchWindow

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


def _run_ctx() -> Any:
    return SimpleNamespace(run=SimpleNamespace(memo={}))


def test_user_data_is_read_ahead_for_fewer_tasks() -> None:
    """Submissions of one module's activities (user data by ``activityid``)
    come USER_DATA_WINDOW tasks a query at most, and no more is held at
    once; everything else the usual PREFETCH_WINDOW."""
    ctx = _run_ctx()
    assert prefetch_window(VALUES, "activityid", True, ctx).tasks == USER_DATA_WINDOW < 50
    assert prefetch_window(VALUES, "contextid", True, ctx).density is None
    assert prefetch_window(VALUES, "activityid", False, ctx).density is None
    table = _table()  # 50 rows a task: the whole window once a row is read
    reader = _Reader(table)
    window = prefetch_window(VALUES, "activityid", True, ctx)
    for value in VALUES:
        assert window.rows(value, reader.fetch) == [r for r in table if r["task"] == value]
        assert len(window.held) <= USER_DATA_WINDOW
    # one task while the run has read no row, then the most rows allow
    assert [len(b) for b in reader.batches] == [1] + [USER_DATA_WINDOW] * 11 + [9]


def test_a_course_of_many_users_reads_its_user_data_a_task_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A window of ten assignments of a 4,000-user course was 40,000
    submissions read ahead.  The rows a window reads at once are bounded by
    USER_ROWS_BUDGET as far as the rows per task read so far tell -- its
    own, and the run's for a window that has read nothing yet -- and the
    rows each task gets are the same."""
    monkeypatch.setattr(prefetch, "USER_ROWS_BUDGET", 100)
    ctx = _run_ctx()
    table = _table()  # 6,000 rows over 120 tasks: 50 a task
    reader = _Reader(table)
    window = prefetch_window(VALUES, "activityid", True, ctx)
    for value in VALUES[:20]:
        assert window.rows(value, reader.fetch) == [r for r in table if r["task"] == value]
    assert [len(b) for b in reader.batches] == [1] + [2] * 10
    # another table of the same run starts from what the run has seen
    other = _Reader(table)
    grades = prefetch_window(VALUES, "activityid", True, ctx)
    for value in VALUES[:4]:
        assert grades.rows(value, other.fetch) == [r for r in table if r["task"] == value]
    assert [len(b) for b in other.batches] == [2, 2]
    # an empty first task does not open the window wide in a run that knows better
    empty = _Reader([r for r in table if r["task"] != VALUES[0]])
    posts = prefetch_window(VALUES, "activityid", True, ctx)
    assert posts.rows(VALUES[0], empty.fetch) == []
    posts.rows(VALUES[2], empty.fetch)
    assert [len(b) for b in empty.batches] == [2, 2]
