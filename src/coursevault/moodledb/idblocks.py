"""New row ids for a restore's batched inserts, given before the rows are sent.

A restore needs each row's new id at once (children and the id map name
it) but sends a table's rows together (``executemany``), so ids are given
out ahead of the insert -- and must be ones the site's own writers (Moodle
beside the restore) can never take:

- PostgreSQL: reserved from the table's own sequence, in blocks
  (``SELECT nextval(seq) FROM generate_series(1, n)``), as Moodle's inserts
  take them; a block doubles from 1 up to ``MAX_BLOCK`` so a table written
  once wastes nothing and a big one costs a round trip per thousand rows.
  Sequences are not transactional: a rolled-back restore leaves a gap, as
  any rolled-back insert does.
- SQLite: the table's first row of the restore is inserted at once (the
  database gives its id, ``max(id) + 1`` or past the AUTOINCREMENT
  counter), the next ones count up from it.  From that first insert the
  transaction holds SQLite's write lock until it ends, so no other writer
  can take an id in between.
- MariaDB/MySQL: none.  An AUTO_INCREMENT column has no sequence to reserve
  from, and ids chosen as ``max(id) + 1`` could be taken by Moodle's own
  inserts outside the transaction (InnoDB's counter is not transactional),
  so rows are inserted one at a time and the server gives each its id.
"""

from __future__ import annotations

from collections import deque

import sqlalchemy as sa

MAX_BLOCK = 1024


class IdBlocks:
    """Ids reserved ahead per table; ``next`` is None when the table's row
    must be inserted now (the database gives the id; then ``given``)."""

    def __init__(self, conn: sa.Connection, prefix: str) -> None:
        self.conn = conn
        self.prefix = prefix
        self.kind = conn.dialect.name
        self._free: dict[str, deque[int]] = {}
        self._block: dict[str, int] = {}
        self._counter: dict[str, int] = {}
        self._sequences: dict[str, str | None] = {}

    @property
    def batches(self) -> bool:
        """Whether this database's rows can be sent in batches at all."""
        return self.kind in ("postgresql", "sqlite")

    def next(self, table: str) -> int | None:
        if self.kind == "sqlite":
            last = self._counter.get(table)
            if last is None:
                return None
            self._counter[table] = last + 1
            return last + 1
        if self.kind == "postgresql":
            free = self._free.get(table)
            if not free:
                free = self._reserve(table)
                if free is None:
                    return None
            return free.popleft()
        return None

    def given(self, table: str, new_id: int) -> None:
        """The database gave ``new_id`` to a row inserted at once."""
        if self.kind == "sqlite":
            self._counter[table] = new_id

    def _reserve(self, table: str) -> deque[int] | None:
        if table not in self._sequences:
            self._sequences[table] = self.conn.execute(
                sa.text("SELECT pg_get_serial_sequence(:t, 'id')"),
                {"t": self.prefix + table}).scalar()
        sequence = self._sequences[table]
        if sequence is None:  # an id column without a sequence: the server's default
            return None
        size = self._block[table] = min(self._block.get(table, 0) * 2 or 1, MAX_BLOCK)
        rows = self.conn.execute(sa.text("SELECT nextval(:s) FROM generate_series(1, :n)"),
                                 {"s": sequence, "n": size})
        free = self._free[table] = deque(sorted(int(r[0]) for r in rows))
        return free

