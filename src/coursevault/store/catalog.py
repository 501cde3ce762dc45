"""The catalog: a rebuildable database cache of the repository's index and snapshots.

The repository files are the truth; the catalog makes questions fast: "is this
object stored?" (asked once per record during ingest), "where is it?", "which
snapshots does course X have?".  It is a SQLite file in the local cache by
default, or any SQLAlchemy URL (a site may share one PostgreSQL catalog among
its hosts).  ``coursevault index rebuild`` drops and recreates it from the
repository alone.

Hot lookups go through the DB-API connection directly: SQLAlchemy Core costs
tens of microseconds per statement, which would dominate ingest.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from coursevault.errors import CatalogError
from coursevault.store.ids import ObjectType
from coursevault.store.index import Row
from coursevault.store.pack import Location

SCHEMA_VERSION = "1"

_Id = sa.LargeBinary().with_variant(mysql.BINARY(32), "mysql", "mariadb")
_Key = sa.String(255)
# MariaDB's TEXT holds 64 KB, and truncates what is longer
_Text = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")

metadata = sa.MetaData()
meta_t = sa.Table(
    "cv_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text),
)
index_files_t = sa.Table(
    "cv_index_files", metadata, sa.Column("name", sa.String(80), primary_key=True)
)
_loc_cols = (
    ("type", sa.SmallInteger),
    ("pack", _Id),
    ("block_offset", sa.BigInteger),
    ("block_length", sa.Integer),
    ("offset", sa.Integer),
    ("length", sa.Integer),
)
objects_t = sa.Table(
    "cv_objects",
    metadata,
    sa.Column("id", _Id, primary_key=True),
    *(sa.Column(n, t, nullable=False) for n, t in _loc_cols),
    sqlite_with_rowid=False,
)
snapshots_t = sa.Table(
    "cv_snapshots",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("course", _Key, nullable=False, index=True),
    sa.Column("time", sa.String(40), nullable=False),
    sa.Column("epoch", sa.Float, nullable=False),
    sa.Column("root", sa.String(64), nullable=False),
    sa.Column("record", _Text, nullable=False),
)
refs_t = sa.Table(
    "cv_refs",
    metadata,
    sa.Column("name", _Key, primary_key=True),
    sa.Column("target", sa.String(64), nullable=False),
)

derived_t = sa.Table(
    "cv_stored_inputs",
    metadata,
    sa.Column("input_id", _Id, primary_key=True),
    sa.Column("content", _Id, nullable=False),
    sa.Column("snapshot", sa.String(64), nullable=False),
    sa.Column("info", _Text, nullable=False),
    sqlite_with_rowid=False,
)

LOC_NAMES = tuple(n for n, _ in _loc_cols)


@dataclass(frozen=True)
class SnapshotRow:
    id: str
    course: str
    time: str
    epoch: float
    root: str
    record: dict[str, Any]


def _create_tables(engine: sa.Engine) -> None:
    """create_all checks, then creates: two processes opening a new catalog at once
    can both decide to create.  The loser finds the tables made; retry once."""
    for attempt in range(5):
        try:
            metadata.create_all(engine)
            return
        except OperationalError:
            if attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))


def _enable_sqlite_wal(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.execute("PRAGMA cache_size=-4096")
    cur.close()


class Catalog:
    """One repository's catalog in one database."""

    _raw: Any  # the DB-API connection of the driver (sqlite3, psycopg, pymysql)

    def __init__(self, url: str) -> None:
        try:
            self.engine = sa.create_engine(url, future=True)
            if self.engine.dialect.name == "sqlite":
                sa.event.listen(self.engine, "connect", _enable_sqlite_wal)
            _create_tables(self.engine)
            self._pooled = self.engine.raw_connection()
            # the driver's own connection: the pool proxy costs microseconds per call
            driver: Any = self._pooled.driver_connection
            self._raw = driver
        except SQLAlchemyError as exc:
            raise CatalogError(f"cannot open catalog {url}: {exc}") from exc
        self.url = url
        self._ph = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        # raw SQL names columns as the dialect quotes them: "offset" and
        # "length" are reserved words in PostgreSQL and MariaDB
        self._q = self.engine.dialect.identifier_preparer.quote
        loc_fields = ", ".join(self._q(n) for n in LOC_NAMES)
        self._has_sql = f"SELECT 1 FROM cv_objects WHERE id = {self._ph}"
        self._loc_sql = f"SELECT {loc_fields} FROM cv_objects WHERE id = {self._ph}"
        self._cur = self._raw.cursor()

    def close(self) -> None:
        try:
            self._pooled.close()
        finally:
            self.engine.dispose()

    # -- dialect helpers -------------------------------------------------------------
    def _insert_ignore(self, table: str, cols: Sequence[str]) -> str:
        names = ", ".join(self._q(c) for c in cols)
        values = ", ".join([self._ph] * len(cols))
        dialect = self.engine.dialect.name
        if dialect in ("mysql", "mariadb"):
            return f"INSERT IGNORE INTO {table} ({names}) VALUES ({values})"
        if dialect == "sqlite":
            return f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({values})"
        return f"INSERT INTO {table} ({names}) VALUES ({values}) ON CONFLICT DO NOTHING"

    def _executemany(
        self, sql: str, rows: Iterable[Sequence[Any]], batch: int = 20000, commit: bool = True
    ) -> None:
        cur = self._raw.cursor()
        try:
            buf: list[Sequence[Any]] = []
            for row in rows:
                buf.append(row)
                if len(buf) >= batch:
                    cur.executemany(sql, buf)
                    buf.clear()
            if buf:
                cur.executemany(sql, buf)
            if commit:
                self._raw.commit()
        except Exception as exc:
            self._raw.rollback()
            raise CatalogError(f"catalog write failed: {exc}") from exc
        finally:
            cur.close()

    def commit(self) -> None:
        """End the transaction that ``add_index_file(..., commit=False)`` left open."""
        try:
            self._raw.commit()
        except Exception as exc:
            self._raw.rollback()
            raise CatalogError(f"catalog write failed: {exc}") from exc

    # -- objects ---------------------------------------------------------------------
    def has(self, oid: bytes) -> bool:
        self._cur.execute(self._has_sql, (oid,))
        return self._cur.fetchone() is not None

    def has_many(self, oids: Sequence[bytes]) -> set[bytes]:
        """Return the subset of ``oids`` that is stored (batched for speed)."""
        found: set[bytes] = set()
        cur = self._raw.cursor()
        for i in range(0, len(oids), 500):
            part = oids[i : i + 500]
            marks = ", ".join([self._ph] * len(part))
            cur.execute(f"SELECT id FROM cv_objects WHERE id IN ({marks})", tuple(part))
            found.update(bytes(r[0]) for r in cur.fetchall())
        cur.close()
        return found

    def lookup(self, oid: bytes) -> Location | None:
        self._cur.execute(self._loc_sql, (oid,))
        row = self._cur.fetchone()
        return _location(row) if row else None

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
        sql = self._insert_ignore("cv_objects", ("id", *LOC_NAMES))
        # sorted keys turn random B-tree inserts into mostly sequential ones
        rows.sort()
        self._executemany(sql, rows, commit=False)
        self._executemany(
            self._insert_ignore("cv_index_files", ("name",)), [(name,)], commit=commit
        )

    def index_files(self) -> set[str]:
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(sa.select(index_files_t.c.name))}

    def count_objects(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(objects_t)).scalar_one())

    def iter_objects(self) -> Iterator[tuple[bytes, Location]]:
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=10000).execute(
                sa.select(objects_t.c.id, *(objects_t.c[n] for n, _ in _loc_cols))
            )
            for row in result:
                yield bytes(row[0]), _location(row[1:])

    def clear_objects(self) -> None:
        with self._begin() as conn:
            conn.execute(sa.delete(objects_t))
            conn.execute(sa.delete(index_files_t))

    # -- what inputs were stored as --------------------------------------------------
    def derived(self, key: bytes) -> tuple[bytes, dict[str, Any]] | None:
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
        self._cur.execute(
            f"SELECT d.content, d.info FROM cv_stored_inputs d "
            f"JOIN cv_objects o ON o.id = d.content "
            f"JOIN cv_snapshots s ON s.id = d.snapshot "
            f"WHERE d.input_id = {self._ph}",
            (key,),
        )
        row = self._cur.fetchone()
        if row is None:
            return None
        try:
            info = json.loads(row[1])
        except ValueError:
            return None
        return bytes(row[0]), info if isinstance(info, dict) else {}

    def add_derived(
        self, snapshot: str, rows: Sequence[tuple[bytes, bytes, dict[str, Any]]]
    ) -> None:
        """Record (key, tree id, notes) rows of the session that committed
        ``snapshot`` (which reaches every tree named), replacing what the keys
        held: a key may name something that changes, as a member's
        checkpoints do from night to night."""
        latest = {k: (k, c, snapshot, json.dumps(i, sort_keys=True)) for k, c, i in rows}
        self._executemany(
            f"DELETE FROM cv_stored_inputs WHERE input_id = {self._ph}",
            [(k,) for k in latest],
            commit=False,
        )
        self._executemany(
            self._insert_ignore("cv_stored_inputs", ("input_id", "content", "snapshot", "info")),
            list(latest.values()),
        )

    # -- snapshots and refs ----------------------------------------------------------
    def add_snapshot(self, row: SnapshotRow) -> None:
        sql = self._insert_ignore(
            "cv_snapshots", ("id", "course", "time", "epoch", "root", "record")
        )
        record = json.dumps(row.record, sort_keys=True)
        self._executemany(sql, [(row.id, row.course, row.time, row.epoch, row.root, record)])

    def remove_snapshot(self, snap_id: str) -> None:
        self._run(sa.delete(snapshots_t).where(snapshots_t.c.id == snap_id))

    def snapshot_ids(self) -> set[str]:
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(sa.select(snapshots_t.c.id))}

    def snapshots(self, course: str | None = None) -> list[SnapshotRow]:
        q = sa.select(snapshots_t).order_by(snapshots_t.c.epoch, snapshots_t.c.id)
        if course is not None:
            q = q.where(snapshots_t.c.course == course)
        with self.engine.connect() as conn:
            return [
                SnapshotRow(r.id, r.course, r.time, r.epoch, r.root, json.loads(r.record))
                for r in conn.execute(q)
            ]

    def set_ref(self, name: str, target: str) -> None:
        with self._begin() as conn:
            conn.execute(sa.delete(refs_t).where(refs_t.c.name == name))
            conn.execute(sa.insert(refs_t).values(name=name, target=target))

    def refs(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            return {r.name: r.target for r in conn.execute(sa.select(refs_t))}

    def clear_snapshots(self) -> None:
        with self._begin() as conn:
            conn.execute(sa.delete(snapshots_t))
            conn.execute(sa.delete(refs_t))

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(meta_t.c.value).where(meta_t.c.key == key)
            ).scalar_one_or_none()

    def set_meta(self, key: str, value: str) -> None:
        with self._begin() as conn:
            conn.execute(sa.delete(meta_t).where(meta_t.c.key == key))
            conn.execute(sa.insert(meta_t).values(key=key, value=value))

    # -- plumbing --------------------------------------------------------------------
    def _begin(self) -> Any:
        return self.engine.begin()

    def _run(self, stmt: Any) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(stmt)
        except SQLAlchemyError as exc:
            raise CatalogError(f"catalog write failed: {exc}") from exc


def _loc_tuple(loc: Location) -> tuple[int, bytes, int, int, int, int]:
    return (int(loc.type), loc.pack, loc.block_offset, loc.block_length, loc.offset, loc.length)


_TYPES = {t.value: t for t in ObjectType}


def _location(row: Sequence[Any]) -> Location:
    t, pack, boff, blen, off, ln = row
    return Location(_TYPES[t], bytes(pack), boff, blen, off, ln)
