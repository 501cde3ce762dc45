"""Rows read ahead for the plan's tasks, a window of tasks at a time.

Every activity task asks the same tables by its own module or context id;
the engine (``_task_rows``, keyed SQL) and the activity grades read them for
a window of tasks in one query.  The window is counted in tasks, so its rows
grow with the course's users: a course of 1,000 users reads 30,000
submissions for one window of 50 assignments, and the submissions, their
grades and the grade items' grades of that window (60,000 rows) were 57 MB
of dicts of strings -- the largest thing a database backup held, and memory
CPython's allocator then kept for the rest of the run.

So a window keeps its first :data:`COMPACT_AFTER` rows of a query as dicts
and each further row as the
``marshal`` of its values, about 100 bytes where its dict took 700 (its
column names once per window).  A row is made again as a dict when its task
asks, with the same names in the same order and the same strings.  The
queries, their rows and their order are exactly those of a window of dicts:
only how the rows wait differs.
"""

from __future__ import annotations

import marshal
from collections.abc import Callable, Iterable

from coursevault.structure.elements import Row

# How many tasks' rows one prefetching query reads at once: a handful of
# queries per table for a course, and memory bounded by the window, not by
# the course (a course of 1,000 users and 100 assignments has 100,000 grades).
PREFETCH_WINDOW = 50
# The same for user data (submissions, grades: rows per task grow with the
# course's users).  A window of 50 assignments of a 1,000-user course held
# 30,000 submissions, 15,000 assignment grades and 15,000 grade_grades while
# one assignment was written -- about 15 MB of an M course's 77 MB heap at
# its peak (docs/benchmarks.md section 9, session bmem-s18).  Ten keep a
# course of up to ten assignments (gen_s) at one query a table.
USER_DATA_WINDOW = 10
# Rows of user data one window reads at most, as far as the run can tell:
# a window of user data is sized from the rows per task the run has read so
# far (USER_DATA_WINDOW tasks at most), and the run's first such window is
# one task.  Ten assignments of a 4,000-user course were 40,000 submissions
# read ahead (5.4 MiB packed) at the peak of its night.
USER_ROWS_BUDGET = 4096
# Rows of one query kept as dicts before the rest are packed.  It was 2,048,
# more than a course of 100 users reads in any one window -- so a course of
# 1,000 users held 2,048 dicts in each of its windows (submissions, their
# grades, grade_grades...), some 10 MB of its 31 MB heap while making
# members, which a small course never reaches: the peak grew with the
# course (issue 21).  256 keep the rows a task of a small course asks for
# as they were; M's night 106.6 -> 103.4 MB, its full backup 135 -> 130.
COMPACT_AFTER = 256

# a task's rows as they wait: dicts, or the marshal of a row's values
Waiting = list[Row | bytes]
Fetch = Callable[[list[str]], Iterable[tuple[str, Row]]]


class Density:
    """Rows per task the run's user-data windows have read: the most any
    window read, on average over its tasks (None: no row read yet).  Shared
    by the run's windows of user data, so that each one's first query is
    sized by what the run has seen -- a course of 100 users reads all its
    assignments' submissions at once, one of 4,000 users one at a time."""

    __slots__ = ("rows_per_task",)

    def __init__(self) -> None:
        self.rows_per_task: float | None = None


class PrefetchWindow:
    """Rows of one query shape for the plan's tasks, read a window of tasks
    at a time.  Tasks run in plan order and ask in that order, so a window
    drops the rows of the tasks before it; one asked again later (the final
    task asking for the course context) is read again, from the same
    transaction's snapshot, so it is the same rows.

    ``fetch`` reads the rows of a batch of values, each with the value it
    belongs to, in the database's order (which each value's rows keep).

    ``density``: a window of user data, read at most USER_ROWS_BUDGET rows
    at a time as far as the rows per task read so far tell (the more of its
    own last query's and the run's most), and ``tasks`` tasks at most."""

    def __init__(
        self, values: list[str], tasks: int = PREFETCH_WINDOW, density: Density | None = None
    ) -> None:
        self.values = values
        self.tasks = tasks
        self.density = density
        self._rate: float | None = None  # rows per task of this window's last query
        self.position = {v: i for i, v in enumerate(values)}
        self.groups: dict[str, Waiting] = {}
        self.held: set[str] = set()
        self._names: tuple[str, ...] | None = None  # the packed rows' columns

    def rows(self, value: str, fetch: Fetch) -> list[Row]:
        """The rows of ``value`` (new dicts where they were packed)."""
        if value not in self.held:
            start = self.position[value]
            for old in [v for v in self.held if self.position[v] < start]:
                self.held.discard(old)
                self.groups.pop(old, None)
            batch = [v for v in self.values[start : start + self._size()] if v not in self.held]
            read = self._take(batch, fetch(batch))
            self.held.update(batch)
            if self.density is not None and batch:
                self._rate = rate = read / len(batch)
                known = self.density.rows_per_task
                if read and (known is None or rate > known):
                    self.density.rows_per_task = rate
        waiting = self.groups.get(value, [])
        names = self._names
        if names is None:  # nothing packed
            return waiting  # type: ignore[return-value]
        loads = marshal.loads
        return [
            r if isinstance(r, dict) else dict(zip(names, loads(r), strict=True)) for r in waiting
        ]

    def _size(self) -> int:
        """Tasks the next query reads: ``tasks``, or for user data as many
        as USER_ROWS_BUDGET rows would take at the most rows per task read
        so far (this window's last, the run's most).  One while the run has
        read no row of user data: a table empty for its first task may be
        full for the next."""
        if self.density is None:
            return self.tasks
        seen = self.density.rows_per_task
        if seen is None:
            return 1
        rate = seen if self._rate is None else max(self._rate, seen)
        return max(1, min(self.tasks, int(USER_ROWS_BUDGET / max(rate, 1.0))))

    def _take(self, batch: list[str], rows: Iterable[tuple[str, Row]]) -> int:
        """File ``rows`` by their value; how many there were."""
        groups = self.groups
        for v in batch:
            groups.pop(v, None)
        count = 0
        for count, (key, row) in enumerate(rows, 1):
            waiting: Row | bytes = row
            if count > COMPACT_AFTER:
                waiting = self._packed(row)
            group = groups.get(key)
            if group is None:
                groups[key] = [waiting]
            else:
                group.append(waiting)
        return count

    def _packed(self, row: Row) -> Row | bytes:
        """The row's values marshalled, or the row itself where they cannot
        be (a value marshal does not take) or its columns are not the
        window's (never, for rows of one query shape: a safeguard)."""
        names = tuple(row)
        if self._names is None:
            self._names = names
        elif names != self._names:
            return row
        try:
            return marshal.dumps(tuple(row.values()))
        except ValueError:
            return row
