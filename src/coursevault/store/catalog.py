"""The catalog: a rebuildable database cache of the repository's index and snapshots.

The repository files are the truth; the catalog makes questions fast: "is this
object stored?" (asked once per record during ingest), "where is it?", "which
snapshots does series X have?".  It is a SQLite file in the local cache by
default, or any SQLAlchemy URL (a site may share one PostgreSQL catalog among
its hosts).  ``coursevault index rebuild`` drops and recreates it from the
repository alone.

Every statement goes through one DB-API connection as plain SQL: SQLAlchemy
Core costs tens of microseconds per statement, which would dominate ingest.
A SQLite catalog is opened with the ``sqlite3`` module alone; SQLAlchemy
(catalog_schema.py) creates and opens server catalogs only, so the default
catalog does not pay its import (0.18 s of a 0.45 s start-up).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from coursevault.errors import CatalogDamagedError, CatalogError
from coursevault.store.ids import TYPES
from coursevault.store.index import IndexTable, Row
from coursevault.store.pack import Location
from coursevault.urls import shown_url

# Tables of the first catalog format, left by earlier versions: their rows
# named each entry's pack by its id.  A SQLite catalog is this machine's own,
# so they are dropped (the entries are read again from the index files).
OLD_TABLES = ("cv_objects", "cv_index_files")
LOC_NAMES = ("type", "pack", "block_offset", "block_length", "offset", "length")
SQLITE_PREFIX = "sqlite:///"
STREAM_BATCH = 4096  # ids fetched at a time by the streamed listings
# ids asked about at a time by lookup_many, in IN lists of 8, 16, ... 512
LOOKUP_BATCH = 512
LOOKUP_MIN = 8
STORED_INPUTS_BATCH = 512  # stored-input rows written at a time (add_stored_inputs)
# location rows inserted at a time: a batch of 20,000 tuples was 4 MiB of a
# full backup's commit
ROW_BATCH = 4096

# The tables of catalog_schema.py as SQLAlchemy writes them for SQLite
# (tests/store/test_catalog.py compares the two).
SQLITE_TABLES = (
    """CREATE TABLE IF NOT EXISTS cv_indexed (
	name VARCHAR(80) NOT NULL,
	PRIMARY KEY (name)
)""",
    """CREATE TABLE IF NOT EXISTS cv_meta (
	"key" VARCHAR(64) NOT NULL,
	value TEXT,
	PRIMARY KEY ("key")
)""",
    """CREATE TABLE IF NOT EXISTS cv_locations (
	id BLOB NOT NULL,
	type SMALLINT NOT NULL,
	pack INTEGER NOT NULL,
	block_offset BIGINT NOT NULL,
	block_length INTEGER NOT NULL,
	"offset" INTEGER NOT NULL,
	length INTEGER NOT NULL,
	PRIMARY KEY (id)
) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS cv_packs (
	no INTEGER NOT NULL,
	id BLOB NOT NULL,
	PRIMARY KEY (no),
	UNIQUE (id)
)""",
    """CREATE TABLE IF NOT EXISTS cv_refs (
	name VARCHAR(255) NOT NULL,
	target VARCHAR(64) NOT NULL,
	PRIMARY KEY (name)
)""",
    """CREATE TABLE IF NOT EXISTS cv_snapshots (
	id VARCHAR(64) NOT NULL,
	course VARCHAR(255) NOT NULL,
	time VARCHAR(40) NOT NULL,
	epoch FLOAT NOT NULL,
	root VARCHAR(64) NOT NULL,
	record TEXT NOT NULL,
	PRIMARY KEY (id)
)""",
    "CREATE INDEX IF NOT EXISTS ix_cv_snapshots_course ON cv_snapshots (course)",
    """CREATE TABLE IF NOT EXISTS cv_stored_inputs (
	input_id BLOB NOT NULL,
	content BLOB NOT NULL,
	snapshot VARCHAR(64) NOT NULL,
	info TEXT NOT NULL,
	PRIMARY KEY (input_id)
) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS cv_runs (
	id VARCHAR(32) NOT NULL,
	course VARCHAR(255) NOT NULL,
	source TEXT NOT NULL,
	snapshot VARCHAR(64) NOT NULL,
	started FLOAT NOT NULL,
	seconds FLOAT NOT NULL,
	new_bytes BIGINT NOT NULL,
	new_objects BIGINT NOT NULL,
	outcome VARCHAR(16) NOT NULL,
	error TEXT NOT NULL,
	PRIMARY KEY (id)
)""",
    "CREATE INDEX IF NOT EXISTS ix_cv_runs_course ON cv_runs (course)",
)


def catalog_error(what: str, exc: Exception) -> CatalogError:
    """The error for a failed catalog statement: damaged when the database
    says its file is (SQLite's "malformed", "not a database"), as a busy or
    locked database is a reason to wait, not to rebuild."""
    damaged = isinstance(exc, sqlite3.DatabaseError) and not isinstance(
        exc, sqlite3.OperationalError
    )
    if damaged:
        return CatalogDamagedError(f"{what}: {exc} (run `coursevault index rebuild`)")
    return CatalogError(f"{what}: {exc}")


@dataclass(frozen=True)
class SnapshotRow:
    """A snapshot as the catalog lists it.  ``series`` is its series key (the
    record's and the catalog column's name for it is ``course``: the format
    keeps the word, the store's API does not)."""

    id: str
    series: str
    time: str
    epoch: float
    root: str
    record: dict[str, Any]


def _sqlite_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _open_sqlite(path: str) -> sqlite3.Connection:
    """Open (creating if need be) a SQLite catalog.

    Processes opening a new catalog at once race to turn on WAL and to
    create the tables; switching the journal mode can fail at once with
    "database is locked" rather than wait, so the loser tries again (as
    SQLAlchemy's create_all did here before).
    """
    for attempt in range(40):
        conn = sqlite3.connect(path, timeout=60)
        try:
            cur = conn.cursor()
            cur.execute("PRAGMA busy_timeout=60000")
            if cur.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cur.execute("PRAGMA journal_mode=WAL")  # kept in the file from then on
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA cache_size=-4096")
            for ddl in SQLITE_TABLES:  # IF NOT EXISTS: two processes may both get here
                cur.execute(ddl)
            for old in OLD_TABLES:
                cur.execute(f"DROP TABLE IF EXISTS {old}")
            conn.commit()
            cur.close()
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            if ("locked" not in str(exc) and "busy" not in str(exc)) or attempt == 39:
                raise
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


class Catalog:
    """One repository's catalog in one database."""

    _raw: Any  # the DB-API connection of the driver (sqlite3, psycopg, pymysql)

    def __init__(self, url: str) -> None:
        self.url = url
        self._close: Callable[[], None]
        if url.startswith(SQLITE_PREFIX) and "?" not in url:
            try:
                self._raw = _open_sqlite(url[len(SQLITE_PREFIX) :])
            except sqlite3.Error as exc:
                raise catalog_error(f"cannot open catalog {url}", exc) from exc
            self.dialect = "sqlite"
            self._ph = "?"
            self._q: Callable[[str], str] = _sqlite_quote
            self._close = self._raw.close
        else:
            from coursevault.store.catalog_schema import ServerConnection

            server = ServerConnection(url)
            self._raw = server.driver
            self.dialect = server.name
            self._ph = server.placeholder
            self._q = server.quote  # "offset" and "length" are reserved words there
            self._close = server.close
        self._loc_fields = ", ".join(self._q(n) for n in LOC_NAMES)
        self._has_sql = f"SELECT 1 FROM cv_locations WHERE id = {self._ph}"
        self._loc_sql = f"SELECT {self._loc_fields} FROM cv_locations WHERE id = {self._ph}"
        self._lookup_sqls: dict[tuple[str, int], str] = {}
        # cv_packs in memory, both ways (a repository has thousands of packs at most)
        self._pack_ids: dict[int, bytes] = {}
        self._pack_nos: dict[bytes, int] = {}
        self._cur = self._raw.cursor()

    @property
    def shown(self) -> str:
        """The catalog's URL as messages name it (without its password)."""
        return shown_url(self.url)

    def close(self) -> None:
        self._close()

    def limit_cache(self, kib: int) -> None:
        """Keep at most ``kib`` KiB of a SQLite catalog's pages in this process
        (4 MiB otherwise).  For a reader that looks each object up about once:
        a big repository's catalog fills any cache it is given, a small one's
        never does, so the cache is what a command's memory grows by from one
        to the other.  A server's catalog keeps its pages in the server."""
        if self.dialect == "sqlite":
            self._raw.execute(f"PRAGMA cache_size=-{int(kib)}")

    # -- dialect helpers -------------------------------------------------------------
    def _insert_ignore(self, table: str, cols: Sequence[str]) -> str:
        names = ", ".join(self._q(c) for c in cols)
        values = ", ".join([self._ph] * len(cols))
        if self.dialect in ("mysql", "mariadb"):
            return f"INSERT IGNORE INTO {table} ({names}) VALUES ({values})"
        if self.dialect == "sqlite":
            return f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({values})"
        return f"INSERT INTO {table} ({names}) VALUES ({values}) ON CONFLICT DO NOTHING"

    @contextlib.contextmanager
    def _writing(self, commit: bool = True) -> Iterator[Any]:
        """A cursor whose statements are committed (unless ``commit`` is
        False: the caller commits later), or rolled back on any error."""
        cur = self._raw.cursor()
        try:
            yield cur
            if commit:
                self._raw.commit()
        except Exception as exc:
            with contextlib.suppress(Exception):
                self._raw.rollback()
            raise catalog_error("catalog write failed", exc) from exc
        finally:
            cur.close()

    def _executemany(
        self, sql: str, rows: Iterable[Sequence[Any]], batch: int = 20000, commit: bool = True
    ) -> None:
        with self._writing(commit) as cur:
            buf: list[Sequence[Any]] = []
            for row in rows:
                buf.append(row)
                if len(buf) >= batch:
                    cur.executemany(sql, buf)
                    buf.clear()
            if buf:
                cur.executemany(sql, buf)

    def _write(self, *statements: tuple[str, Sequence[Any]]) -> None:
        """Run ``statements`` in one transaction and commit."""
        with self._writing() as cur:
            for sql, params in statements:
                cur.execute(sql, params)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Any]:
        """A cursor for reads, closed after; the driver's errors become
        catalog errors (:func:`catalog_error`), ours pass as they are.
        (``has`` and ``lookup``, once per object, translate inline instead.)"""
        cur = self._raw.cursor()
        try:
            yield cur
        except CatalogError:
            raise
        except Exception as exc:
            raise catalog_error("catalog read failed", exc) from exc
        finally:
            cur.close()

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._reading() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    def commit(self) -> None:
        """End the transaction that ``add_index_file(..., commit=False)`` left open."""
        try:
            self._raw.commit()
        except Exception as exc:
            with contextlib.suppress(Exception):
                self._raw.rollback()
            raise catalog_error("catalog write failed", exc) from exc

    # -- objects ---------------------------------------------------------------------
    def has(self, oid: bytes) -> bool:
        try:
            self._cur.execute(self._has_sql, (oid,))
            return self._cur.fetchone() is not None
        except Exception as exc:
            raise catalog_error("catalog read failed", exc) from exc

    def has_many(self, oids: Sequence[bytes]) -> set[bytes]:
        """Return the subset of ``oids`` that is stored (batched for speed)."""
        return set(self.lookup_many(oids, fields="id"))

    def lookup_many(self, oids: Sequence[bytes], fields: str = "") -> dict[bytes, Location | None]:
        """The locations of those of ``oids`` that are stored (batched for
        speed); ``fields="id"`` asks only which are (the values are None)."""
        found: dict[bytes, Location | None] = {}
        with self._reading() as cur:
            for i in range(0, len(oids), LOOKUP_BATCH):
                part = list(oids[i : i + LOOKUP_BATCH])
                size = max(LOOKUP_MIN, 1 << (len(part) - 1).bit_length())
                part += part[-1:] * (size - len(part))  # an id twice is found once
                cur.execute(self._lookup_sql(fields, size), part)
                for r in cur.fetchall():
                    found[bytes(r[0])] = self._location(r[1:]) if len(r) > 1 else None
        return found

    def _lookup_sql(self, fields: str, size: int) -> str:
        """The query of :meth:`lookup_many` for ``size`` ids.

        Sizes are powers of two, the ids padded to them: the drivers keep
        each statement text they prepare (sqlite3 128 of them), and one per
        batch length asked -- a backup asks about every block's new objects,
        any number of them -- held 9.8 MiB of SQLite's memory in compiled
        IN lists of up to 500 ids, a big course's and not a small one's."""
        key = (fields, size)
        sql = self._lookup_sqls.get(key)
        if sql is None:
            cols = "id" if fields == "id" else f"id, {self._loc_fields}"
            marks = ", ".join([self._ph] * size)
            sql = self._lookup_sqls[key] = f"SELECT {cols} FROM cv_locations WHERE id IN ({marks})"
        return sql

    def lookup(self, oid: bytes) -> Location | None:
        try:
            self._cur.execute(self._loc_sql, (oid,))
            row = self._cur.fetchone()
        except Exception as exc:
            raise catalog_error("catalog read failed", exc) from exc
        return self._location(row) if row else None

    def add_index_file(
        self, name: str, entries: Iterable[tuple[bytes, Location]], commit: bool = True
    ) -> None:
        """Record an index file and its entries (idempotent).

        ``commit=False`` leaves the transaction open for more index files (then
        call :meth:`commit`): one transaction for a whole write session writes
        each B-tree page once, where one per index file rewrote the same pages
        again and again (ids are random, so every batch touches every page).
        """
        self.add_index_rows(name, [(oid, *_loc_tuple(loc)) for oid, loc in entries], commit)

    def add_index_rows(self, name: str, rows: list[Row], commit: bool = True) -> None:
        """:meth:`add_index_file` for entries as flat rows (``index.Row``)."""
        # sorted keys turn random B-tree inserts into mostly sequential ones
        rows.sort()
        self._add_sorted(name, {row[2] for row in rows}, rows, commit)

    def add_index_table(self, name: str, table: IndexTable, commit: bool = True) -> None:
        """:meth:`add_index_file` for entries packed in an ``IndexTable``
        (a write session's commit): unpacked in id order as inserted."""
        self._add_sorted(name, set(table.packs), table.sorted_rows(), commit)

    def _add_sorted(self, name: str, packs: set[bytes], rows: Iterable[Row], commit: bool) -> None:
        nos = self._numbers(packs)
        sql = self._insert_ignore("cv_locations", ("id", *LOC_NAMES))
        self._executemany(
            sql,
            ((oid, t, nos[p], bo, bl, o, ln) for oid, t, p, bo, bl, o, ln in rows),
            batch=ROW_BATCH,
            commit=False,
        )
        self._executemany(self._insert_ignore("cv_indexed", ("name",)), [(name,)], commit=commit)

    def add_locations(self, rows: list[Row]) -> None:
        """Entries that no index file names yet (``repair index`` tries them
        before it writes one), committed."""
        nos = self._numbers({row[2] for row in rows})
        sql = self._insert_ignore("cv_locations", ("id", *LOC_NAMES))
        self._executemany(sql, ((o, t, nos[p], bo, bl, of, ln) for o, t, p, bo, bl, of, ln in rows))

    def remove_locations(self, oids: list[bytes]) -> None:
        self._executemany(f"DELETE FROM cv_locations WHERE id = {self._ph}", [(o,) for o in oids])

    def _numbers(self, packs: set[bytes]) -> dict[bytes, int]:
        """The cv_packs numbers of ``packs``, adding those not there yet (in
        the open transaction: the rows naming them follow in it)."""
        new = [p for p in packs if p not in self._pack_nos]
        if new:
            self._executemany(
                self._insert_ignore("cv_packs", ("id",)), [(p,) for p in new], commit=False
            )
            self._load_packs()
        return self._pack_nos

    def knows_pack(self, pack: bytes) -> bool:
        """Whether an index file named ``pack``: a writer must not delete a
        pack of its own whose bytes, and so id, another writer's index names."""
        if pack not in self._pack_nos:
            self._load_packs()
        return pack in self._pack_nos

    def _load_packs(self) -> None:
        for no, pack in self._query("SELECT no, id FROM cv_packs"):
            self._pack_ids[int(no)] = bytes(pack)
            self._pack_nos[bytes(pack)] = int(no)

    def _location(self, row: Sequence[Any]) -> Location:
        t, no, boff, blen, off, ln = row
        pack = self._pack_ids.get(no)
        if pack is None:  # numbered by another process since
            self._load_packs()
            pack = self._pack_ids.get(no)
            if pack is None:
                raise CatalogError(f"catalog: an entry names pack number {no}, which it lacks")
        return Location(TYPES[t], pack, boff, blen, off, ln)

    def index_files(self) -> set[str]:
        return {r[0] for r in self._query("SELECT name FROM cv_indexed")}

    def has_index_file(self, name: str) -> bool:
        """Whether index file ``name`` was loaded (one row, not the whole set:
        a warm sync asks this of each name the journal brings)."""
        return bool(self._query(f"SELECT 1 FROM cv_indexed WHERE name = {self._ph}", (name,)))

    def indexed_packs(self) -> set[bytes]:
        """The packs the index entries name (a scan of every entry)."""
        self._load_packs()
        rows = self._query("SELECT DISTINCT pack FROM cv_locations")
        return {self._pack_ids[int(no)] for (no,) in rows}

    def count_objects(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM cv_locations")[0][0])

    def iter_objects(self) -> Iterator[tuple[bytes, Location]]:
        """Every object and its location (on a server, fetched all at once)."""
        with self._reading() as cur:
            cur.execute(f"SELECT id, {self._loc_fields} FROM cv_locations")
            while rows := cur.fetchmany(10000):
                for row in rows:
                    yield bytes(row[0]), self._location(row[1:])

    def locations_after(self, after: bytes, limit: int = STREAM_BATCH) -> list[Row]:
        """The next ``limit`` objects after id ``after``, in id order, as
        index rows (id, type, pack, block offset, block length, offset,
        length): the whole catalog a batch at a time, on any server
        (``check`` merges it with the index files, both sorted by id)."""
        rows = self._query(
            f"SELECT id, {self._loc_fields} FROM cv_locations WHERE id > {self._ph} "
            f"ORDER BY id LIMIT {int(limit)}",
            (after,),
        )
        packs = self._pack_ids
        found: list[Row] = []
        for oid, t, no, boff, blen, off, ln in rows:
            pack = packs.get(no)
            if pack is None:
                pack = self._location((t, no, boff, blen, off, ln)).pack
            found.append((bytes(oid), t, pack, boff, blen, off, ln))
        return found

    def clear_objects(self) -> None:
        # cv_packs stays: another process reading this catalog holds its numbers,
        # which must keep naming the same packs (they are never reused)
        self._write(("DELETE FROM cv_locations", ()), ("DELETE FROM cv_indexed", ()))

    # -- what inputs were stored as (store/stored_inputs.py) --------------------------------------------------
    def stored_input(self, key: bytes) -> tuple[bytes, dict[str, Any]] | None:
        """What an input was stored as: (the id of its stored tree, the caller's
        notes), if an earlier session recorded it and the tree is whole.

        A cache for writers that would otherwise cut the same bytes again
        (ingest keys it by a hash of an XML member).  A row names the snapshot
        whose session stored the tree, and answers only while that snapshot
        is in the catalog: prune keeps all a snapshot reaches, but may keep
        other trees without their children (as a dictionary's content), so
        "indexed" alone would not mean "whole".  So a nightly forget and prune
        leave the last night's rows usable.
        """
        try:
            self._cur.execute(
                f"SELECT d.content, d.info FROM cv_stored_inputs d "
                f"JOIN cv_locations o ON o.id = d.content "
                f"JOIN cv_snapshots s ON s.id = d.snapshot "
                f"WHERE d.input_id = {self._ph}",
                (key,),
            )
            row = self._cur.fetchone()
        except Exception as exc:
            raise catalog_error("catalog read failed", exc) from exc
        if row is None:
            return None
        try:
            info = json.loads(row[1])
        except ValueError:
            return None
        return bytes(row[0]), info if isinstance(info, dict) else {}

    def add_stored_inputs(self, snapshot: str, rows: Iterable[tuple[bytes, bytes, str]]) -> None:
        """Record (key, tree id, notes as JSON) rows of the session that
        committed ``snapshot`` (which reaches every tree named), replacing
        what the keys held: a key may name something that changes, as a
        member's checkpoints do from night to night.  A later row of a key
        wins.  (store/stored_inputs.py encodes the notes.)

        ``rows`` is read once, a batch at a time, all in one transaction:
        a night's rows come from a spool on disk (stored_inputs.PendingInputs)
        and are never all in memory.  Each batch deletes its keys first, so a
        key met again in a later batch replaces the earlier batch's row."""
        with self._writing() as cur:
            batch: dict[bytes, tuple[bytes, bytes, str, str]] = {}
            for key, tree, info in rows:
                batch[key] = (key, tree, snapshot, info)
                if len(batch) >= STORED_INPUTS_BATCH:
                    self._replace_inputs(cur, batch)
                    batch = {}
            self._replace_inputs(cur, batch)

    def _replace_inputs(self, cur: Any, batch: dict[bytes, tuple[bytes, bytes, str, str]]) -> None:
        """One batch of :meth:`add_stored_inputs`: its keys' rows replaced."""
        if batch:
            cur.executemany(
                f"DELETE FROM cv_stored_inputs WHERE input_id = {self._ph}", [(k,) for k in batch]
            )
            columns = ("input_id", "content", "snapshot", "info")
            cur.executemany(self._insert_ignore("cv_stored_inputs", columns), list(batch.values()))

    # -- snapshots and refs ----------------------------------------------------------
    def add_snapshot(self, row: SnapshotRow) -> None:
        sql = self._insert_ignore(
            "cv_snapshots", ("id", "course", "time", "epoch", "root", "record")
        )
        record = json.dumps(row.record, sort_keys=True)
        self._executemany(sql, [(row.id, row.series, row.time, row.epoch, row.root, record)])

    def remove_snapshot(self, snap_id: str) -> None:
        self.remove_snapshots([snap_id])

    def remove_snapshots(self, snap_ids: Sequence[str]) -> None:
        """In one transaction: ``forget --all`` removes a batch of thousands
        (a commit each was a round trip each to a server catalog)."""
        with self._writing() as cur:
            cur.executemany(
                f"DELETE FROM cv_snapshots WHERE id = {self._ph}", [(i,) for i in snap_ids]
            )

    def snapshot_ids(self) -> set[str]:
        return {r[0] for r in self._query("SELECT id FROM cv_snapshots")}

    def snapshot_order(self) -> Iterator[str]:
        """Every snapshot id, by series then time: the order in which walks
        reuse each series' chain of dictionaries.  Fetched a batch at a
        time: the caller keeps what it needs (check and prune keep it on
        disk, store/scratch.py)."""
        return self._stream("SELECT id FROM cv_snapshots ORDER BY course, epoch, id")

    def series_keys(self) -> list[str]:
        """Every series with a snapshot, sorted (one row a course, not a snapshot)."""
        return [
            r[0] for r in self._query("SELECT DISTINCT course FROM cv_snapshots ORDER BY course")
        ]

    def iter_snapshot_ids(self) -> Iterator[str]:
        """:meth:`snapshot_ids` a batch at a time, in no particular order."""
        return self._stream("SELECT id FROM cv_snapshots")

    def _stream(self, sql: str) -> Iterator[str]:
        with self._reading() as cur:
            cur.execute(sql)
            while rows := cur.fetchmany(STREAM_BATCH):
                for r in rows:
                    yield r[0]

    def snapshots_by_prefix(self, prefix: str, limit: int = 2) -> list[SnapshotRow]:
        """Up to ``limit`` snapshots whose id starts with ``prefix`` (lower-case
        hex), by id: a range of the primary key, not a listing of them all."""
        cols = ", ".join(self._q(c) for c in ("id", "course", "time", "epoch", "root", "record"))
        rows = self._query(
            f"SELECT {cols} FROM cv_snapshots WHERE id >= {self._ph} AND id < {self._ph} "
            f"ORDER BY id LIMIT {int(limit)}",
            (prefix, prefix + "g"),  # 'g' sorts after every hex digit
        )
        return [SnapshotRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def has_snapshot(self, snap_id: str) -> bool:
        return bool(self._query(f"SELECT 1 FROM cv_snapshots WHERE id = {self._ph}", (snap_id,)))

    def snapshots(self, series: str | None = None) -> list[SnapshotRow]:
        cols = ", ".join(self._q(c) for c in ("id", "course", "time", "epoch", "root", "record"))
        sql = f"SELECT {cols} FROM cv_snapshots"
        params: tuple[str, ...] = ()
        if series is not None:
            sql += f" WHERE course = {self._ph}"
            params = (series,)
        rows = self._query(sql + " ORDER BY epoch, id", params)
        return [SnapshotRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def iter_snapshots(self, series: str | None = None) -> Iterator[SnapshotRow]:
        """:meth:`snapshots` a batch at a time: memory stays flat however
        many there are (``snapshots --json`` held 420 MB at 50,000)."""
        cols = ", ".join(self._q(c) for c in ("id", "course", "time", "epoch", "root", "record"))
        sql = f"SELECT {cols} FROM cv_snapshots"
        params: tuple[str, ...] = ()
        if series is not None:
            sql += f" WHERE course = {self._ph}"
            params = (series,)
        with self._reading() as cur:
            cur.execute(sql + " ORDER BY epoch, id", params)
            while rows := cur.fetchmany(256):
                for r in rows:
                    yield SnapshotRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]))

    def iter_snapshot_columns(self) -> Iterator[tuple[str, str, str, float, str, str]]:
        """Every row as stored (the record as its JSON text), a batch at a
        time: what ``check`` compares with the snapshot files."""
        cols = ", ".join(self._q(c) for c in ("id", "course", "time", "epoch", "root", "record"))
        with self._reading() as cur:
            cur.execute(f"SELECT {cols} FROM cv_snapshots")
            while rows := cur.fetchmany(STREAM_BATCH):
                for r in rows:
                    yield (r[0], r[1], r[2], float(r[3]), r[4], r[5])

    def tied_epochs(self, series: str | None = None) -> set[float]:
        """The times at which one series has more than one snapshot (an
        archive ingested again): only there does history order look past
        (epoch, id)."""
        sql = "SELECT epoch FROM cv_snapshots"
        params: tuple[str, ...] = ()
        if series is not None:
            sql += f" WHERE course = {self._ph}"
            params = (series,)
        sql += " GROUP BY epoch, course HAVING COUNT(*) > 1"
        return {float(r[0]) for r in self._query(sql, params)}

    def set_ref(self, name: str, target: str) -> None:
        self._write(
            (f"DELETE FROM cv_refs WHERE name = {self._ph}", (name,)),
            (f"INSERT INTO cv_refs (name, target) VALUES ({self._ph}, {self._ph})", (name, target)),
        )

    def refs(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self._query("SELECT name, target FROM cv_refs")}

    def clear_snapshots(self) -> None:
        # the journal position (catalog_sync.py) says what the catalog holds:
        # emptied, it must read the journal from its checkpoint again
        k = self._q("key")
        self._write(
            ("DELETE FROM cv_snapshots", ()),
            ("DELETE FROM cv_refs", ()),
            (f"DELETE FROM cv_meta WHERE {k} IN ('journal', 'journal_pending')", ()),
        )

    # -- backup runs (coursevault runs) ----------------------------------------------
    RUN_FIELDS = (
        "id",
        "course",
        "source",
        "snapshot",
        "started",
        "seconds",
        "new_bytes",
        "new_objects",
        "outcome",
        "error",
    )

    def add_run(self, run: dict[str, Any]) -> None:
        names = ", ".join(self.RUN_FIELDS)
        marks = ", ".join([self._ph] * len(self.RUN_FIELDS))
        self._write(
            (f"INSERT INTO cv_runs ({names}) VALUES ({marks})", [run[f] for f in self.RUN_FIELDS])
        )

    def runs(self, series: str | None = None) -> list[dict[str, Any]]:
        """Runs oldest first, of one series or all."""
        sql = f"SELECT {', '.join(self.RUN_FIELDS)} FROM cv_runs"
        params: list[Any] = []
        if series is not None:
            sql += f" WHERE course = {self._ph}"
            params.append(series)
        rows = self._query(sql + " ORDER BY started, id", params)
        return [dict(zip(self.RUN_FIELDS, row, strict=True)) for row in rows]

    def get_meta(self, key: str) -> str | None:
        k, v = self._q("key"), self._q("value")
        rows = self._query(f"SELECT {v} FROM cv_meta WHERE {k} = {self._ph}", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self.set_metas({key: value})

    def set_metas(self, values: dict[str, str]) -> None:
        """In one transaction (a catalog's journal position and the names it
        still waits on must move together, or a failed second write loses
        the names), a statement a key, so processes sharing a server catalog
        may set the same key at once (a delete then an insert raced into a
        duplicate key on PostgreSQL: both deletes saw the old row, both
        inserted)."""
        k, v = self._q("key"), self._q("value")
        insert = f"INSERT INTO cv_meta ({k}, {v}) VALUES ({self._ph}, {self._ph})"
        if self.dialect in ("mysql", "mariadb"):
            sql = f"{insert} ON DUPLICATE KEY UPDATE {v} = VALUES({v})"
        else:  # PostgreSQL, and SQLite since 3.24
            sql = f"{insert} ON CONFLICT ({k}) DO UPDATE SET {v} = excluded.{v}"
        self._write(*((sql, (key, value)) for key, value in values.items()))


def _loc_tuple(loc: Location) -> tuple[int, bytes, int, int, int, int]:
    return (int(loc.type), loc.pack, loc.block_offset, loc.block_length, loc.offset, loc.length)
