"""Rows into Moodle's tables in batches, with ids given by the writer.

Ids are chosen here rather than by the database so that a demo site is the
same on SQLite, PostgreSQL and MariaDB for a seed (and rows can name each
other before they are written: a discussion its first post, a section its
modules).  Rows are buffered per table and written with one executemany per
batch; PostgreSQL's sequences are moved past the ids at the end (explicit
ids do not advance them), so a later insert without an id -- Moodle's, a
restore's -- does not collide.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa

from coursevault.moodledb.sitedata import Row, typed_row

BATCH_ROWS = 2000


class RowWriter:
    """Buffers rows per table (names without prefix) and hands out ids."""

    def __init__(self, conn: sa.Connection, metadata: sa.MetaData, prefix: str) -> None:
        self.conn = conn
        self.metadata = metadata
        self.prefix = prefix
        self._next_id: dict[str, int] = {}
        self._pending: dict[str, list[Row]] = defaultdict(list)
        self._touched: set[str] = set()

    def table(self, name: str) -> sa.Table:
        return self.metadata.tables[self.prefix + name]

    def next_id(self, name: str) -> int:
        """The next free id of a table (after what it holds when first asked)."""
        if name not in self._next_id:
            top = self.conn.execute(sa.select(sa.func.max(self.table(name).c.id))).scalar()
            self._next_id[name] = int(top or 0) + 1
        value = self._next_id[name]
        self._next_id[name] = value + 1
        return value

    def add(self, name: str, row: Row) -> int:
        """Queue a row, giving it the next id unless it has one; returns the id."""
        if row.get("id") is None:
            row["id"] = self.next_id(name)
        else:
            self._next_id[name] = max(self._next_id.get(name, 1), int(row["id"]) + 1)
        pending = self._pending[name]
        pending.append(row)
        if len(pending) >= BATCH_ROWS:
            self._write(name)
        return int(row["id"])

    def update(self, name: str, row_id: int, **values: Any) -> None:
        """Change one row now (churn's edits: a page, a resource's revision)."""
        self.flush()
        table = self.table(name)
        self.conn.execute(sa.update(table).where(table.c.id == row_id).values(**values))

    def flush(self) -> None:
        for name in list(self._pending):
            self._write(name)

    def _write(self, name: str) -> None:
        rows = self._pending.pop(name, [])
        if not rows:
            return
        table = self.table(name)
        self.conn.execute(sa.insert(table), [typed_row(table, r) for r in rows])
        self._touched.add(name)

    def finish(self) -> None:
        """Write what is queued and move PostgreSQL's sequences past the ids given."""
        self.flush()
        if self.conn.dialect.name != "postgresql":
            return
        for name in sorted(self._touched):
            full = self.prefix + name
            self.conn.execute(
                sa.text(
                    f"SELECT setval(pg_get_serial_sequence('{full}', 'id'), "
                    f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {full}), false)"
                )
            )
