"""Moodle 4.5's tables as SQLAlchemy Core tables, under any table prefix.

The definitions are data (``schema45.txt``, read back from the reference
site's PostgreSQL schema by ``scripts/moodle_schema.py``), so the database
door can read a Moodle database on PostgreSQL, MariaDB/MySQL or SQLite with
the same ``Table`` objects, tests can compare them with a real site's schema
without running anything else, and a demo site is created through exactly
what a backup reads.  Types follow Moodle's XMLDB mapping: ``id`` is a bigint
serial key (an ``INTEGER PRIMARY KEY`` on SQLite, the only auto-increment
key SQLite has), text is ``LONGTEXT`` on MySQL as Moodle makes it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.schema import CreateIndex, CreateTable

DEFAULT_PREFIX = "mdl_"
SCHEMA_FILE = "schema45.txt"
MOODLE_VERSION = "2024100705.01"
MOODLE_RELEASE = "4.5.5+ (Build: 20250613)"


@dataclass(frozen=True)
class ColumnDef:
    """One column as ``schema45.txt`` writes it (see its header)."""

    name: str
    type_code: str
    nullable: bool
    default: str | None


@dataclass(frozen=True)
class IndexDef:
    name: str
    columns: tuple[str, ...]
    unique: bool


@dataclass(frozen=True)
class TableDef:
    """A table without its prefix: ``course``, not ``mdl_course``."""

    name: str
    pk_name: str
    serial: bool
    columns: tuple[ColumnDef, ...]
    indexes: tuple[IndexDef, ...]


def table_defs() -> Iterator[TableDef]:
    """Every table of the shipped schema, in name order."""
    text = resources.files(__package__).joinpath(SCHEMA_FILE).read_text("utf-8")
    return _parse(text.splitlines())


def _parse(lines: Iterable[str]) -> Iterator[TableDef]:
    head: list[str] | None = None
    columns: list[ColumnDef] = []
    indexes: list[IndexDef] = []
    for line in lines:
        if not line or line.startswith("#"):
            continue
        if line.startswith("table "):
            if head is not None:
                yield _table(head, columns, indexes)
            head, columns, indexes = line.split()[1:], [], []
        elif line.startswith(" @"):
            kind, name, cols = line[2:].split(" ")
            indexes.append(IndexDef(name, tuple(cols.split(",")), kind == "ux"))
        else:
            parts = line[1:].split(" ", 3)
            default = parts[3] if len(parts) == 4 else None
            columns.append(ColumnDef(parts[0], parts[1], parts[2] == "?", default))
    if head is not None:
        yield _table(head, columns, indexes)


def _table(head: list[str], columns: list[ColumnDef], indexes: list[IndexDef]) -> TableDef:
    return TableDef(head[0], head[1], "noseq" not in head[2:], tuple(columns), tuple(indexes))


def column_type(code: str) -> sa.types.TypeEngine[object]:
    """The SQLAlchemy type of a type code of ``schema45.txt``."""
    kind, size = code[0], code[1:]
    if kind == "I":
        return {"2": sa.SmallInteger(), "4": sa.Integer(), "8": sa.BigInteger()}[size]  # type: ignore[return-value]
    if kind == "C":
        return sa.String(int(size))  # type: ignore[return-value]
    if kind == "X":
        return sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")  # type: ignore[return-value]
    if kind == "N":
        precision, scale = size.split(",")
        return sa.Numeric(int(precision), int(scale), asdecimal=True)  # type: ignore[return-value]
    if kind == "F":
        return sa.REAL() if size == "4" else sa.DOUBLE_PRECISION()
    raise ValueError(f"unknown column type code {code!r}")


def moodle_metadata(
    prefix: str = DEFAULT_PREFIX, tables: Iterable[str] | None = None
) -> sa.MetaData:
    """Moodle 4.5's tables (all, or the ones named, without prefix) on one MetaData.

    Index and key names carry the prefix as Moodle's installer names them
    (``mdl_cour_cat_ix``), so a site created here and one Moodle installed
    have the same schema, name for name.  Made once a process for each
    prefix and set of tables (494 tables took 1 s to make, for each demo
    site a test or script built), so it is shared: add nothing to it.
    """
    return _metadata(prefix, None if tables is None else frozenset(tables))


@functools.lru_cache(maxsize=16)
def _metadata(prefix: str, wanted: frozenset[str] | None) -> sa.MetaData:
    metadata = sa.MetaData()
    for tdef in table_defs():
        if wanted is None or tdef.name in wanted:
            add_table(metadata, tdef, prefix)
    if wanted is not None and len(metadata.tables) != len(wanted):
        missing = wanted - {t[len(prefix) :] for t in metadata.tables}
        raise ValueError(f"not Moodle 4.5 tables: {', '.join(sorted(missing))}")
    return metadata


def add_table(metadata: sa.MetaData, tdef: TableDef, prefix: str) -> sa.Table:
    id_type = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    items: list[sa.schema.SchemaItem] = [
        sa.Column("id", id_type, primary_key=True, autoincrement=tdef.serial),
        sa.PrimaryKeyConstraint("id", name=prefix + tdef.pk_name),
    ]
    for cdef in tdef.columns:
        default = None if cdef.default is None else sa.text(cdef.default)
        items.append(
            sa.Column(
                cdef.name,
                column_type(cdef.type_code),
                nullable=cdef.nullable,
                server_default=default,
            )
        )
    for idef in tdef.indexes:
        items.append(sa.Index(prefix + idef.name, *idef.columns, unique=idef.unique))
    return sa.Table(prefix + tdef.name, metadata, *items)


def create_schema(conn: sa.Connection, metadata: sa.MetaData) -> None:
    """Create the tables and their indexes, in as few round trips as each database allows.

    ``metadata.create_all`` sends one statement per table and per index:
    1,606 for Moodle's schema.  On MariaDB each ``CREATE INDEX`` rebuilds
    its table, so the indexes go inside ``CREATE TABLE`` instead (30 s ->
    2.7 s, measured on the test server); PostgreSQL takes the whole schema
    as one string in its transaction.  SQLite takes them one by one (0.5 s).
    """
    for statement in _ddl(metadata, conn.dialect):
        conn.exec_driver_sql(statement)


def _ddl(metadata: sa.MetaData, dialect: sa.Dialect) -> list[str]:
    """The statements that make ``metadata``'s tables on ``dialect``, kept
    on the metadata (compiling them took 1 s of a demo site's 3.7)."""
    cache: dict[object, list[str]] = metadata.info.setdefault("coursevault_ddl", {})
    key = (dialect.name, getattr(dialect, "server_version_info", None))
    if key in cache:
        return cache[key]
    tables = metadata.sorted_tables
    if dialect.name in ("mysql", "mariadb"):
        statements = [_mysql_create_table(table, dialect) for table in tables]
    else:
        creates = [str(CreateTable(t).compile(dialect=dialect)).strip() for t in tables]
        indexes = [
            str(CreateIndex(i).compile(dialect=dialect)).strip()
            for t in tables
            for i in sorted(t.indexes, key=lambda i: str(i.name))
        ]
        statements = creates + indexes
        if dialect.name == "postgresql":
            statements = [";\n".join(statements)]
    cache[key] = statements
    return statements


def _mysql_create_table(table: sa.Table, dialect: sa.Dialect) -> str:
    quote = dialect.identifier_preparer.quote
    ddl = str(CreateTable(table).compile(dialect=dialect)).rstrip()
    end = ddl.rindex(")")
    keys = [
        f"{'UNIQUE ' if ix.unique else ''}KEY {quote(str(ix.name))} "
        f"({', '.join(quote(c.name) for c in ix.columns)})"
        for ix in sorted(table.indexes, key=lambda i: str(i.name))
    ]
    return ddl[:end].rstrip() + "".join(f",\n\t{k}" for k in keys) + "\n" + ddl[end:]
