"""Scratch sets of names on local disk, for the commands that look at every
snapshot of a repository (``check``, ``prune``, ``forget``).

Those commands compare listings, journals and catalogs name by name.  Held as
Python sets, each name is about 150 bytes: ``check`` held 248 MB at 160,000
snapshots, four or five such sets at once, and a site of 10,000 courses
keeping a year of nights has 3.65 million.  Here they are tables of a
temporary SQLite file (deleted on close, never part of the repository) whose
page cache is bounded (``CACHE_KIB``): memory stays flat however many names
there are, and SQLite does the set differences and the ordering.

Names are stored as they are given (hex text); nothing here is durable or
shared, so the file is written with no journal and no fsync.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

CACHE_KIB = 16 * 1024  # SQLite's page cache for the scratch file
LEFTOVER_SECONDS = 7 * 86400  # a scratch file this old was left by a killed process
BATCH = 4096  # rows inserted per executemany, and fetched per fetchmany


class Scratch:
    """A temporary SQLite database of named tables of names.

    ``folder``: where the file lives (the repository's cache folder, on local
    disk); the system's temporary folder if None.
    """

    def __init__(self, folder: Path | None = None) -> None:
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            _remove_leftovers(folder)
        fd, name = tempfile.mkstemp(prefix="scratch-", suffix=".sqlite", dir=folder)
        os.close(fd)
        self.path = Path(name)
        self._db = sqlite3.connect(name, isolation_level=None)
        for pragma in (
            "journal_mode = OFF",
            "synchronous = OFF",
            "temp_store = FILE",
            f"cache_size = -{CACHE_KIB}",
        ):
            self._db.execute(f"PRAGMA {pragma}")

    def __enter__(self) -> Scratch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        for suffix in ("", "-journal", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.path}{suffix}")

    def table(
        self, name: str, columns: str = "name TEXT PRIMARY KEY", *, rowid: bool = False
    ) -> None:
        """Create (or empty) table ``name`` with ``columns``; WITHOUT ROWID
        unless ``rowid`` (a table kept in insertion order needs one)."""
        self._db.execute(f"DROP TABLE IF EXISTS {name}")
        tail = "" if rowid else " WITHOUT ROWID"
        self._db.execute(f"CREATE TABLE {name} ({columns}){tail}")

    def fill(self, sql: str, rows: Iterable[Any]) -> int:
        """Run ``sql`` (an INSERT) for every row of ``rows``, a batch at a
        time in one transaction; how many rows there were."""
        count = 0
        rest = iter(rows)
        self._db.execute("BEGIN")
        try:
            while batch := list(itertools.islice(rest, BATCH)):
                self._db.executemany(sql, batch)
                count += len(batch)
        finally:
            self._db.execute("COMMIT")
        return count

    def names(self, table: str, names: Iterable[str]) -> int:
        """A fresh table ``table`` of the distinct ``names``; how many were given."""
        self.table(table)
        return self.fill(f"INSERT OR IGNORE INTO {table} VALUES (?)", ((n,) for n in names))

    def has_table(self, name: str) -> bool:
        return bool(
            self.count(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
            )
        )

    def execute(self, sql: str, params: Iterable[Any] = ()) -> None:
        self._db.execute(sql, tuple(params))

    def rows(self, sql: str, params: Iterable[Any] = ()) -> Iterator[Any]:
        """The rows ``sql`` selects, fetched a batch at a time."""
        cur = self._db.execute(sql, tuple(params))
        try:
            while batch := cur.fetchmany(BATCH):
                yield from batch
        finally:
            cur.close()

    def batches(self, sql: str, columns: int = 1) -> Iterator[Any]:
        """The rows of ``sql`` -- a SELECT whose first column is an integer
        key, with two parameters: the last key read, and a row limit -- read
        a batch per query, so that no statement is open between batches and
        the caller may write to other tables meanwhile.  Yields the column
        after the key, or (``columns`` > 1) a tuple of the columns after it."""
        last = -(1 << 62)
        while batch := self._db.execute(sql, (last, BATCH)).fetchall():
            last = batch[-1][0]
            for row in batch:
                yield row[1] if columns == 1 else row[1 : 1 + columns]

    def column(self, sql: str, params: Iterable[Any] = ()) -> Iterator[Any]:
        """The first column of the rows ``sql`` selects."""
        return (row[0] for row in self.rows(sql, params))

    def count(self, sql: str, params: Iterable[Any] = ()) -> int:
        row = self._db.execute(sql, tuple(params)).fetchone()
        return int(row[0]) if row else 0


def _remove_leftovers(folder: Path) -> None:
    """Scratch files a killed process left (untouched for a week: no
    command runs that long); they hold nothing the repository does not."""
    now = time.time()
    for path in folder.glob("scratch-*.sqlite*"):
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime > LEFTOVER_SECONDS:
                path.unlink()
