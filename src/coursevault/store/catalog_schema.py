"""The catalog's tables for database servers, as SQLAlchemy declares them.

A catalog on PostgreSQL or MariaDB (``--catalog URL``) is created and opened
through SQLAlchemy, which knows each server's types, quoting and drivers.
The default catalog, a SQLite file, is opened with the ``sqlite3`` module
alone (catalog.py writes the same tables out): importing SQLAlchemy was 0.18
s of every command's 0.45 s start-up.  ``tests/store/test_catalog.py``
checks that both declare the same SQLite schema.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError

from coursevault.errors import CatalogError
from coursevault.urls import refuse_unencoded_at, shown_url

_Id = sa.LargeBinary().with_variant(mysql.BINARY(32), "mysql", "mariadb")
_Key = sa.String(255)
# MariaDB's TEXT holds 64 KB, and truncates what is longer
_Text = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
# Times in seconds since the epoch: a double everywhere.  FLOAT is one on
# SQLite and PostgreSQL, but MariaDB's and MySQL's is 4 bytes, which kept
# 2023's times to 128 s: snapshots a minute apart tied, and selectors and
# parents went by id.
_Seconds = sa.Float().with_variant(sa.Double(), "mysql", "mariadb")

metadata = sa.MetaData()
meta_t = sa.Table(
    "cv_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    # the names a catalog waits on (catalog_sync.py): one forget entry can
    # name 4,096 snapshots, 280 kB, over MariaDB's TEXT
    sa.Column("value", _Text),
)
# The tables of index entries (format 2 of the catalog; format 1's were
# cv_index_files and cv_objects, which named each entry's pack by its 32-byte
# id: a third of a row, and of the time inserting a night's rows).
index_files_t = sa.Table("cv_indexed", metadata, sa.Column("name", sa.String(80), primary_key=True))
packs_t = sa.Table(
    "cv_packs",
    metadata,
    sa.Column("no", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", _Id, nullable=False, unique=True),
)
_loc_cols = (
    ("type", sa.SmallInteger),
    ("pack", sa.Integer),  # cv_packs.no
    ("block_offset", sa.BigInteger),
    ("block_length", sa.Integer),
    ("offset", sa.Integer),
    ("length", sa.Integer),
)
objects_t = sa.Table(
    "cv_locations",
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
    sa.Column("epoch", _Seconds, nullable=False),
    sa.Column("root", sa.String(64), nullable=False),
    sa.Column("record", _Text, nullable=False),
)
refs_t = sa.Table(
    "cv_refs",
    metadata,
    sa.Column("name", _Key, primary_key=True),
    sa.Column("target", sa.String(64), nullable=False),
)

stored_inputs_t = sa.Table(
    "cv_stored_inputs",
    metadata,
    sa.Column("input_id", _Id, primary_key=True),
    sa.Column("content", _Id, nullable=False),
    sa.Column("snapshot", sa.String(64), nullable=False),
    sa.Column("info", _Text, nullable=False),
    sqlite_with_rowid=False,
)

# One row per backup run of one course (``coursevault runs``): the catalog is
# a cache, so a rebuilt catalog starts this history afresh (docs/guide.md).
runs_t = sa.Table(
    "cv_runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("course", _Key, nullable=False, index=True),
    sa.Column("source", _Text, nullable=False),
    sa.Column("snapshot", sa.String(64), nullable=False),
    sa.Column("started", _Seconds, nullable=False),
    sa.Column("seconds", _Seconds, nullable=False),
    sa.Column("new_bytes", sa.BigInteger, nullable=False),
    sa.Column("new_objects", sa.BigInteger, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("error", _Text, nullable=False),
)


def _create_tables(engine: sa.Engine) -> None:
    """create_all checks, then creates: two processes opening a new catalog at once
    can both decide to create.  The loser's CREATE fails -- an operational
    error on SQLite, on PostgreSQL a duplicate row in its catalog of types
    (an integrity error) or "already exists" (a programming error) -- and
    its retry finds the tables made."""
    for attempt in range(5):
        try:
            metadata.create_all(engine)
            break
        except (OperationalError, IntegrityError, ProgrammingError):
            if attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))
    _widen_meta(engine)


def _widen_meta(engine: sa.Engine) -> None:
    """A MariaDB or MySQL catalog made by an earlier version gets its columns
    widened now: ``cv_meta.value`` to LONGTEXT (TEXT refused, error 1406,
    the waiting names of a large ``forget``, and a catalog that cannot save
    them cannot sync), and the times from 4-byte FLOAT to DOUBLE, each
    snapshot's epoch read again from the record the row holds."""
    if engine.dialect.name not in ("mysql", "mariadb"):
        return
    with engine.begin() as conn:

        def kind(table: str, column: str) -> str:
            found = conn.execute(
                sa.text(
                    "SELECT DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA ="
                    " DATABASE() AND TABLE_NAME = :t AND COLUMN_NAME = :c"
                ),
                {"t": table, "c": column},
            ).scalar()
            return str(found or "").lower()

        if kind("cv_meta", "value") not in ("", "longtext"):
            conn.execute(sa.text("ALTER TABLE cv_meta MODIFY value LONGTEXT"))
        if kind("cv_snapshots", "epoch") == "float":
            conn.execute(sa.text("ALTER TABLE cv_snapshots MODIFY epoch DOUBLE NOT NULL"))
            conn.execute(
                sa.text(
                    "UPDATE cv_snapshots SET epoch ="
                    " COALESCE(JSON_UNQUOTE(JSON_EXTRACT(record, '$.epoch')), 0) + 0"
                )
            )
        if kind("cv_runs", "started") == "float":
            conn.execute(
                sa.text(
                    "ALTER TABLE cv_runs MODIFY started DOUBLE NOT NULL,"
                    " MODIFY seconds DOUBLE NOT NULL"
                )
            )


class ServerConnection:
    """A server catalog's one DB-API connection (the driver's own), and what
    raw SQL needs of its dialect."""

    def __init__(self, url: str) -> None:
        refused = refuse_unencoded_at(url)
        if refused is not None:
            raise CatalogError(f"catalog {refused.removeprefix('database ')}")
        try:
            # Read committed (PostgreSQL's default; MariaDB's is repeatable
            # read): the catalog reads on its one connection while other hosts
            # write, and a write session must see their index files.
            options: dict[str, Any] = {}
            if sa.engine.make_url(url).get_backend_name() != "sqlite":  # (e.g. "?mode=...")
                options["isolation_level"] = "READ COMMITTED"
            self.engine = sa.create_engine(url, **options)
            _create_tables(self.engine)
            self._pooled = self.engine.raw_connection()
        except SQLAlchemyError as exc:
            raise CatalogError(f"cannot open catalog {shown_url(url)}: {exc}") from exc
        self.driver: Any = self._pooled.driver_connection
        dialect = self.engine.dialect
        self.name = dialect.name
        self.placeholder = "?" if dialect.paramstyle == "qmark" else "%s"
        self.quote = dialect.identifier_preparer.quote

    def close(self) -> None:
        try:
            self._pooled.close()
        finally:
            self.engine.dispose()
