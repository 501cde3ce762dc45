"""A write session's private index of objects in packs it wrote but has not committed.

It must answer "did this session already store X?" for every object put, and
list everything at commit -- for up to millions of objects in a 1 GB ingest,
so it cannot be a Python dict (hundreds of MB).  It is a throwaway SQLite file
in the temp folder, without journal or fsync: losing it in a crash loses
nothing, since uncommitted packs are unreferenced anyway.  Keeping it out of
the shared catalog also keeps other processes (and a PostgreSQL catalog) out
of the hot path.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator

from coursevault.store.ids import ObjectType
from coursevault.store.pack import Location

_TYPES = {t.value: t for t in ObjectType}


class PendingIndex:
    def __init__(self) -> None:
        fd, self._path = tempfile.mkstemp(prefix="coursevault-pending-", suffix=".sqlite")
        os.close(fd)
        self._db = sqlite3.connect(self._path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("PRAGMA cache_size=-4096")
        self._db.execute(
            "CREATE TABLE pending (id BLOB PRIMARY KEY, type INT, pack BLOB, block_offset INT,"
            " block_length INT, offset INT, length INT) WITHOUT ROWID"
        )
        self._cur = self._db.cursor()
        self.count = 0
        # A Bloom filter in front of the table: almost every object a session puts
        # is new, and "surely not pending" must not cost a query.  Ids are hashes,
        # so three 8-byte slices of an id are three independent bit positions.
        self._bits = bytearray(1 << 20)  # 8 Mbit; grown as the table grows
        self._mask = len(self._bits) * 8 - 1

    def _set(self, oid: bytes) -> None:
        bits, mask = self._bits, self._mask
        for i in (0, 8, 16):
            b = int.from_bytes(oid[i : i + 8], "little") & mask
            bits[b >> 3] |= 1 << (b & 7)

    def might_have(self, oid: bytes) -> bool:
        bits, mask = self._bits, self._mask
        for i in (0, 8, 16):
            b = int.from_bytes(oid[i : i + 8], "little") & mask
            if not bits[b >> 3] & (1 << (b & 7)):
                return False
        return True

    def _grow(self) -> None:
        """Keep at least 16 bits per entry (false positives under 0.2 %)."""
        self._bits = bytearray(len(self._bits) * 4)
        self._mask = len(self._bits) * 8 - 1
        for (oid,) in self._db.execute("SELECT id FROM pending"):
            self._set(oid)

    def add(self, entries: Iterable[tuple[bytes, Location]]) -> None:
        rows = sorted(
            (
                oid,
                int(loc.type),
                loc.pack,
                loc.block_offset,
                loc.block_length,
                loc.offset,
                loc.length,
            )
            for oid, loc in entries
        )
        self._db.execute("BEGIN")
        self._db.executemany("INSERT OR IGNORE INTO pending VALUES (?,?,?,?,?,?,?)", rows)
        self._db.execute("COMMIT")
        self.count += len(rows)
        if self.count * 16 > len(self._bits) * 8:
            self._grow()
        else:
            for row in rows:
                self._set(row[0])

    def lookup(self, oid: bytes) -> Location | None:
        self._cur.execute(
            "SELECT type, pack, block_offset, block_length, offset, length FROM pending WHERE id=?",
            (oid,),
        )
        row = self._cur.fetchone()
        if row is None:
            return None
        t, pack, boff, blen, off, ln = row
        return Location(_TYPES[t], pack, boff, blen, off, ln)

    def __iter__(self) -> Iterator[tuple[bytes, Location]]:
        cur = self._db.execute(
            "SELECT id, type, pack, block_offset, block_length, offset, length FROM pending"
            " ORDER BY pack, block_offset, offset"
        )
        for oid, t, pack, boff, blen, off, ln in cur:
            yield oid, Location(_TYPES[t], pack, boff, blen, off, ln)

    def close(self) -> None:
        try:
            self._db.close()
        finally:
            if os.path.exists(self._path):
                os.unlink(self._path)
